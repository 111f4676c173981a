"""The WebSocket client side, for the tests and the bench, over websocket-client.

`TailClient`: one blocking client for a test (websocket-client's connection): JSON frames in, close code out.
`TailConnection`: one of many clients on a non-blocking socket, driven by an epoll loop (bench/wsclients.py):
the upgrade request and its check, and the client frames (pong, close), are websocket-client's; only the
receive side is parsed here, by `server_frames`, because websocket-client's `frame_buffer` wants a blocking
`recv` and costs 6 to 8 times as much per frame (measured: 1.0 us against 8.0 us for a 219-byte frame), which
1000 clients on one loop would pay while their latency is measured.
"""

import json
import os
import socket
import time

import websocket
from websocket import ABNF, WebSocketProtocolException
from websocket._handshake import _get_handshake_headers, _validate


class TailClient:
    def __init__(self, url: str, timeout: float = 10, **options):
        self.ws = websocket.create_connection(url, timeout=timeout, **options)
        self.close_code = None
        self.close_reason = ""

    def frame(self) -> dict | None:
        """The next JSON frame, or None once the server closed (close_code then says how)."""
        opcode, data = self.ws.recv_data(control_frame=True)
        while opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            opcode, data = self.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            self.close_reason = data[2:].decode("utf-8", "replace")
            return None
        return json.loads(data)

    def frames_until(self, predicate, limit: int = 1000) -> list[dict]:
        """Frames up to and including the first that satisfies `predicate` (or the close)."""
        frames = []
        for _ in range(limit):
            frame = self.frame()
            if frame is None:
                return frames
            frames.append(frame)
            if predicate(frame):
                return frames
        raise AssertionError(f"no matching frame in {limit}")

    def rest(self) -> list[dict]:
        """Every frame until the server closes."""
        return self.frames_until(lambda frame: False)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass


def log_text(frames: list[dict], pod: str, base: str = "") -> str:
    """Rebuild one pod's log from a snapshot and appends, checking offsets are contiguous."""
    text = base
    for frame in frames:
        entries = (
            frame.get("logs", [])
            if frame["type"] == "snapshot"
            else [frame]
            if frame["type"] == "append"
            else []
        )
        for entry in entries:
            if entry["pod"] != pod:
                continue
            piece = entry.get("logs", entry.get("data", ""))
            assert entry["offset"] == len(text), (
                f"offset {entry['offset']} != {len(text)}: gap or duplicate"
            )
            text += piece
    return text


def server_frames(buffer: bytearray) -> list[tuple[int, int, bytes]]:
    """Complete server frames at the start of `buffer` as (fin, opcode, payload); removes them from it."""
    frames, pos, size = [], 0, len(buffer)
    while size - pos >= 2:
        first, second = buffer[pos], buffer[pos + 1]
        length, head = second & 0x7F, 2
        if length == 126:
            if size - pos < 4:
                break
            length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if size - pos < 10:
                break
            length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
        if second & 0x80:
            raise WebSocketProtocolException("a server frame must not be masked")
        end = pos + head + length
        if end > size:
            break
        frames.append((first & 0x80, first & 0x0F, bytes(buffer[pos + head : end])))
        pos = end
    if pos:
        del buffer[:pos]
    return frames


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame, by websocket-client."""
    return ABNF.create_frame(payload, opcode).format()


class TailConnection:
    """One client on a non-blocking socket: the upgrade, then each message stamped with its receive time
    (`time.time_ns()` right after the `recv`) and kept as bytes, undecoded. Pings are answered, a close
    is echoed. The owner polls `fileno()`: writable once to `send_request()`, then readable to `receive()`."""

    RECV_BYTES = 1 << 18

    def __init__(self, host: str, port: int, path: str):
        self.host, self.port, self.path = host, port, path
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect_ex((host, port))
        self.state = "connecting"  # connecting -> handshake -> open -> closed
        self.buffer = bytearray()
        self.frames: list[tuple[int, bytes]] = []
        self.fragments: list[bytes] | None = None
        self.close_code: int | None = None
        self.error: str | None = None
        self.key = ""

    def fileno(self) -> int:
        return self.sock.fileno()

    def send_request(self) -> None:
        """Send the upgrade request once the connect completed (raise OSError if it failed)."""
        failure = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if failure:
            raise OSError(failure, os.strerror(failure))
        url = f"ws://{self.host}:{self.port}{self.path}"
        lines, self.key = _get_handshake_headers(
            self.path, url, self.host, self.port, {"suppress_origin": True}
        )
        self.sock.send("\r\n".join(lines).encode())
        self.state = "handshake"

    def receive(self) -> bool:
        """Read what the socket holds; False once the connection is over."""
        data = self.sock.recv(self.RECV_BYTES)
        now = time.time_ns()
        if not data:
            self.close_code = self.close_code or 1006
            return False
        self.buffer += data
        if self.state == "handshake" and not self._upgraded():
            return self.state == "handshake"
        for fin, opcode, payload in server_frames(self.buffer):
            if not self._frame(now, fin, opcode, payload):
                return False
        return True

    def _upgraded(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        status, *fields = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (f.partition(":") for f in fields)
        }
        if status.split(" ")[1:2] != ["101"] or not _validate(headers, self.key, None)[0]:
            self.error, self.state = f"handshake refused: {status}", "closed"
            return False
        del self.buffer[: end + 4]
        self.state = "open"
        return True

    def _frame(self, now: int, fin: int, opcode: int, payload: bytes) -> bool:
        if opcode == ABNF.OPCODE_PING:
            self.sock.send(client_frame(ABNF.OPCODE_PONG, payload))
        elif opcode == ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            try:
                self.sock.send(client_frame(ABNF.OPCODE_CLOSE, payload[:2]))
            except OSError:
                pass
            return False
        elif opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_CONT):
            self._message(now, fin, payload)
        return True

    def _message(self, now: int, fin: int, payload: bytes) -> None:
        if not fin or self.fragments is not None:
            self.fragments = (self.fragments or []) + [payload]
            if not fin:
                return
            payload, self.fragments = b"".join(self.fragments), None
        self.frames.append((now, payload))

    def close(self) -> None:
        self.state = "closed"
        try:
            self.sock.close()
        except OSError:
            pass
