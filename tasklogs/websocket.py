"""WebSocket plumbing under flask-sock: whole-frame writes, JSON frames, close codes.

simple-websocket writes each frame with one `socket.send()` and ignores partial writes; under gevent a
slow client can then receive a corrupt frame, and a ping can interleave with a data frame. Every write
here is a `sendall()` under one lock per connection.
"""

import logging
import threading
import time
import weakref

from simple_websocket import ConnectionClosed

from . import accesslog
from .engine import frames
from .engine.frames import NORMAL, POLICY, TRY_AGAIN, SharedFrame
from .errors import TasklogsError

log = logging.getLogger(__name__)


class SerializedSocket:
    """Proxy of the client socket whose `send` writes everything, one frame at a time; a write blocked
    longer than `send_timeout` (a client that stopped reading) gets the connection cut by the watchdog."""

    def __init__(self, sock, send_timeout: float):
        self._sock = sock
        self._lock = threading.Lock()
        self.send_timeout = send_timeout
        self.sent = 0  # bytes written, for the access log
        self.sending_since: float | None = (
            None  # monotonic time a write started, while one is under way
        )
        _watchdog.watch(self)

    def send(self, data) -> int:
        with self._lock:
            self.sending_since = time.monotonic()
            try:
                self._sock.sendall(data)
                self.sent += len(data)
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


class SendWatchdog:
    """One thread per process that cuts connections whose write has been blocked too long."""

    def __init__(self):
        self._sockets: weakref.WeakSet[SerializedSocket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, sock: SerializedSocket) -> None:
        with self._lock:
            self._sockets.add(sock)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ws-send-watchdog", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with self._lock:
                stalled = [
                    s
                    for s in self._sockets
                    if s.sending_since and now - s.sending_since > s.send_timeout
                ]
            for sock in stalled:
                log.info(
                    "cutting a WebSocket whose client has not read for %.0f s", sock.send_timeout
                )
                sock.abort()


_watchdog = SendWatchdog()


def serialize_writes(environ: dict, send_timeout: float) -> SerializedSocket | None:
    """Wrap the server's client socket in the WSGI environ before flask-sock builds its WebSocket on it."""
    for key in ("gunicorn.socket", "werkzeug.socket"):
        sock = environ.get(key)
        if sock is not None:
            if not isinstance(sock, SerializedSocket):
                environ[key] = SerializedSocket(sock, send_timeout)
            return environ[key]
    return None


def send_frame(ws, frame: str | SharedFrame) -> None:
    """Send a frame: a str through the WebSocket, a SharedFrame's prebuilt bytes straight to the socket."""
    if isinstance(frame, str):
        ws.send(frame)
        return
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.send(frame.wire)


def close(ws, code: int = NORMAL, reason: str = "") -> None:
    """Close with a code, if the connection is still open (the access log gets the code either way:
    ours, or the client's when it closed first)."""
    if not ws.connected:
        note_close(ws)
        return
    accesslog.note(ws.environ, close=code)
    try:
        ws.close(reason=code, message=reason[:120])
    except Exception:  # noqa: BLE001 - the peer may be gone already
        pass


def note_close(ws) -> None:
    """Give the access log the close code the client sent (1005 when it sent none)."""
    accesslog.note(ws.environ, close=int(ws.close_reason))


def on_disconnect(ws, callback) -> threading.Thread:
    """Call `callback` as soon as the client closes or drops the connection (its messages are ignored)."""

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


def send_error(ws, error: TasklogsError) -> None:
    """Report a TasklogsError as an `error` frame and close: 1008 for the client's fault, else 1013."""
    if not ws.connected:
        note_close(ws)
        return
    ws.send(frames.error(error.status, error.code, error.message))
    close(ws, POLICY if error.status < 500 else TRY_AGAIN, error.message)
