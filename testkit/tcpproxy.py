"""A TCP proxy in front of PostgreSQL that tests can cut and restore: "the database went away"."""

import socket
import threading


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.port = None
        self._listener = None
        self._connections: set[socket.socket] = set()
        self._orphans: set[socket.socket] = (
            set()
        )  # server sides kept open by stop(server_notices=False)
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        """Accept connections again (on the same port once one was chosen)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self, server_notices: bool = True) -> None:
        """Refuse new connections and cut every open one. With `server_notices=False` PostgreSQL's side
        of each connection stays open (a network partition the server has not noticed): its sessions,
        and the advisory locks they hold, live on."""
        listener, self._listener = self._listener, None
        if listener:
            _cut(listener)  # also wakes the thread blocked in accept()
        with self._lock:
            connections, self._connections = self._connections, set()
            if not server_notices:
                self._orphans.update(
                    c for c in connections if c.getpeername()[1] == self.upstream[1]
                )
        for connection in connections:
            if server_notices or connection not in self._orphans:
                _reset(connection)

    def close(self) -> None:
        """Stop, and cut the server sides `stop(server_notices=False)` kept open too: a test's
        partition must not leave sessions (and their locks) behind for the tests after it."""
        self.stop()
        with self._lock:
            orphans, self._orphans = self._orphans, set()
        for connection in orphans:
            _reset(connection)

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._connections.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source, target) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for end in (source, target):
            if end not in self._orphans:
                _reset(end)
            with self._lock:
                self._connections.discard(end)


def _cut(sock) -> None:
    """Shut the socket down for real even while another thread is blocked reading it (a bare close()
    would leave the connection open until that read returns)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _reset(sock) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    _cut(sock)
