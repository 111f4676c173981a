"""WebSocket plumbing under flask-sock: whole-frame writes, JSON frames, close codes.

simple-websocket writes each frame with one `socket.send()` and ignores partial writes; under gevent a
slow client can then receive a corrupt frame, and a ping can interleave with a data frame. Every write
here is a `sendall()` under one lock per connection.
"""
import json
import threading
import time

# Close codes (RFC 6455 and the private 4000-4999 range).
NORMAL = 1000
GOING_AWAY = 1001
POLICY = 1008
TOO_BIG = 1009
INTERNAL = 1011
TRY_AGAIN = 1013
SLOW_CLIENT = 4008


class SerializedSocket:
    """Proxy of the client socket whose `send` writes everything, one frame at a time."""

    def __init__(self, sock):
        self._sock = sock
        self._lock = threading.Lock()
        self.sending_since = None  # monotonic time a write started, while one is under way

    def send(self, data) -> int:
        with self._lock:
            self.sending_since = time.monotonic()
            try:
                self._sock.sendall(data)
            finally:
                self.sending_since = None
        return len(data)

    def abort(self) -> None:
        """Cut the connection now (a client that stopped reading): pending writes fail at once."""
        try:
            self._sock.shutdown(2)
        except OSError:
            pass

    def __getattr__(self, name):
        return getattr(self._sock, name)


def serialize_writes(environ: dict) -> SerializedSocket | None:
    """Wrap the server's client socket in the WSGI environ before flask-sock builds its WebSocket on it."""
    for key in ("gunicorn.socket", "werkzeug.socket"):
        sock = environ.get(key)
        if sock is not None:
            if not isinstance(sock, SerializedSocket):
                environ[key] = SerializedSocket(sock)
            return environ[key]
    return None


def send_json(ws, frame: dict) -> None:
    """Send one JSON text frame."""
    ws.send(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))


def close(ws, code: int = NORMAL, reason: str = "") -> None:
    """Close with a code, if the connection is still open."""
    if ws.connected:
        try:
            ws.close(reason=code, message=reason[:120])
        except Exception:  # noqa: BLE001 - the peer may be gone already
            pass


def on_disconnect(ws, callback) -> threading.Thread:
    """Call `callback` as soon as the client closes or drops the connection (messages it sends are ignored)."""
    def watch():
        try:
            while ws.connected:
                ws.receive(timeout=None)
        except Exception:  # noqa: BLE001 - ConnectionClosed or a broken socket: either way it is gone
            pass
        callback()

    thread = threading.Thread(target=watch, name="ws-disconnect-watch", daemon=True)
    thread.start()
    return thread


def send_error(ws, error) -> None:
    """Report a TasklogsError as `{"type": "error", ...}` and close: 1008 for the client's fault, else 1013."""
    if not ws.connected:
        return
    send_json(ws, {"type": "error", "status": error.status, "error": error.code, "message": error.message})
    close(ws, POLICY if error.status < 500 else TRY_AGAIN, error.message)
