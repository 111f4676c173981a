"""Many WebSocket clients in one process: raw non-blocking sockets on one epoll loop, no library.

Run by `bench.fleet` as `python -m bench.wsclients URL COUNT [--concurrency N] [--no-latency]`; it speaks
JSON lines on stdout:

    {"event": "connected", ...}   once every client has its snapshot frame (or failed to connect)
    {"event": "result", ...}      once every connection is closed, or after "stop" on stdin

While the tail runs a client only stamps and keeps each frame's payload (`time.time_ns()` right after the
`recv`); the frames are decoded and checked afterwards, so that decoding does not delay what is measured.
A frame identical for many clients (the server's shared frame) is decoded once.
"""
import argparse
import base64
import hashlib
import json
import os
import select
import socket
import sys
import time
from urllib.parse import urlsplit

TEXT, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x0, 0x8, 0x9, 0xA
RECV_BYTES = 1 << 18


class ProtocolError(Exception):
    pass


def parse_frames(buffer: bytearray) -> list[tuple[int, int, bytes]]:
    """Complete server frames at the start of `buffer` as (fin, opcode, payload); removes them from it."""
    frames, pos, size = [], 0, len(buffer)
    while size - pos >= 2:
        first, second = buffer[pos], buffer[pos + 1]
        length, head = second & 0x7F, 2
        if length == 126:
            if size - pos < 4:
                break
            length, head = int.from_bytes(buffer[pos + 2:pos + 4], "big"), 4
        elif length == 127:
            if size - pos < 10:
                break
            length, head = int.from_bytes(buffer[pos + 2:pos + 10], "big"), 10
        if second & 0x80:
            raise ProtocolError("a server frame must not be masked")
        end = pos + head + length
        if end > size:
            break
        frames.append((first & 0x80, first & 0x0F, bytes(buffer[pos + head:end])))
        pos = end
    if pos:
        del buffer[:pos]
    return frames


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame (control frames only: payload < 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


class Connection:
    """One client: handshake, then frames stamped with their receive time."""

    def __init__(self, host: str, port: int, path: str):
        self.host, self.port, self.path = host, port, path
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect_ex((host, port))
        self.state = "connecting"       # connecting -> handshake -> open -> closed
        self.buffer = bytearray()
        self.frames: list[tuple[int, bytes]] = []
        self.fragments: list[bytes] | None = None
        self.close_code: int | None = None
        self.error: str | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def send_request(self) -> None:
        failure = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if failure:
            raise OSError(failure, os.strerror(failure))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.send((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                       .encode())
        self.state = "handshake"

    def receive(self) -> bool:
        """Read what the socket holds; False once the connection is over."""
        data = self.sock.recv(RECV_BYTES)
        now = time.time_ns()
        if not data:
            self.close_code = self.close_code or 1006
            return False
        self.buffer += data
        if self.state == "handshake" and not self._upgraded():
            return self.state == "handshake"
        for fin, opcode, payload in parse_frames(self.buffer):
            if not self._frame(now, fin, opcode, payload):
                return False
        return True

    def _upgraded(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = bytes(self.buffer[:self.buffer.find(b"\r\n")]).decode("latin-1")
        if " 101 " not in status + " ":
            self.error, self.state = f"handshake refused: {status}", "closed"
            return False
        del self.buffer[:end + 4]
        self.state = "open"
        return True

    def _frame(self, now: int, fin: int, opcode: int, payload: bytes) -> bool:
        if opcode == PING:
            self.sock.send(client_frame(PONG, payload))
        elif opcode == CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            try:
                self.sock.send(client_frame(CLOSE, payload[:2]))
            except OSError:
                pass
            return False
        elif opcode in (TEXT, CONTINUATION):
            self._message(now, fin, opcode, payload)
        return True

    def _message(self, now: int, fin: int, opcode: int, payload: bytes) -> None:
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


class Fleet:
    """`count` connections to one URL, at most `concurrency` of them connecting at a time."""

    def __init__(self, url: str, count: int, concurrency: int):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.count, self.concurrency = count, concurrency
        self.connections: list[Connection] = []
        self.by_fd: dict[int, Connection] = {}
        self.poller = select.epoll()
        self.poller.register(sys.stdin.fileno(), select.EPOLLIN)
        self.stopping = False

    def connect(self, timeout: float) -> dict:
        """Open every connection; return once each has its first frame (the snapshot) or failed."""
        began, deadline = time.monotonic(), time.monotonic() + timeout
        while (len(self.connections) < self.count or self._connecting()) and time.monotonic() < deadline:
            while len(self.connections) < self.count and self._connecting() < self.concurrency:
                self._open()
            self._poll(0.5)
        ready = [c for c in self.connections if c.state == "open" and c.frames]
        errors = sorted({c.error or f"closed {c.close_code}" for c in self.connections if c not in ready})
        return {"event": "connected", "ok": len(ready), "failed": self.count - len(ready),
                "seconds": round(time.monotonic() - began, 2), "errors": errors[:5]}

    def run(self, timeout: float) -> None:
        """Receive until every connection is closed, "stop" comes on stdin, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not self.stopping and self.by_fd and time.monotonic() < deadline:
            self._poll(0.5)
        for connection in list(self.by_fd.values()):
            self._drop(connection)

    def _connecting(self) -> int:
        return sum(1 for c in self.by_fd.values() if c.state in ("connecting", "handshake") or not c.frames)

    def _open(self) -> None:
        connection = Connection(self.host, self.port, self.path)
        self.connections.append(connection)
        self.by_fd[connection.fileno()] = connection
        self.poller.register(connection.fileno(), select.EPOLLOUT)

    def _poll(self, timeout: float) -> None:
        for fd, events in self.poller.poll(timeout):
            if fd == sys.stdin.fileno():
                self._command(sys.stdin.readline())
                continue
            connection = self.by_fd.get(fd)
            if connection is not None:
                self._ready(connection, events)

    def _command(self, line: str) -> None:
        """"stop" ends the receive phase; so does the end of stdin (the bench went away)."""
        if not line:
            self.poller.unregister(sys.stdin.fileno())
        self.stopping = self.stopping or line.strip() in ("stop", "")

    def _ready(self, connection: Connection, events: int) -> None:
        try:
            if connection.state == "connecting":
                connection.send_request()
                self.poller.modify(connection.fileno(), select.EPOLLIN)
            elif not connection.receive():
                self._drop(connection)
        except (OSError, ProtocolError) as error:
            connection.error = connection.error or f"{type(error).__name__}: {error}"
            self._drop(connection)

    def _drop(self, connection: Connection) -> None:
        self.by_fd.pop(connection.fileno(), None)
        try:
            self.poller.unregister(connection.fileno())
        except (OSError, ValueError):
            pass
        connection.close()


# --- afterwards: decoding, checking, latencies ---

class Decoder:
    """json.loads with a cache: the server sends the same frame bytes to every client in step."""

    def __init__(self):
        self._cache: dict[bytes, dict] = {}

    def __call__(self, payload: bytes) -> dict:
        frame = self._cache.get(payload)
        if frame is None:
            frame = self._cache[payload] = json.loads(payload)
        return frame


def client_report(connection: Connection, decode: Decoder, latency: bool) -> dict:
    """What one client got: per `pod/container` the digest of its rebuilt log, the frame kinds, and its line
    latencies."""
    pieces: dict[str, list[str]] = {}
    lengths: dict[str, int] = {}
    partial: dict[str, str] = {}
    latencies, problems, kinds = [], [], {}
    for received, payload in connection.frames:
        frame = decode(payload)
        kind = frame["type"]
        kinds[kind] = kinds.get(kind, 0) + 1
        entries = frame["logs"] if kind == "snapshot" else [frame] if kind == "append" else []
        for entry in entries:
            pod, text = f"{entry['pod']}/{entry['container']}", entry["logs"] if kind == "snapshot" else entry["data"]
            if entry["offset"] != lengths.get(pod, 0):
                problems.append(f"{pod}: offset {entry['offset']} != {lengths.get(pod, 0)}")
            pieces.setdefault(pod, []).append(text)
            lengths[pod] = lengths.get(pod, 0) + len(text)
            if kind == "append" and latency:
                lines = (partial.get(pod, "") + text).split("\n")
                partial[pod] = lines.pop()
                latencies += [received - int(line.split(" ")[1]) for line in lines]
            else:
                partial[pod] = (partial.get(pod, "") + text).rsplit("\n", 1)[-1]
        if kind == "error":
            problems.append(f"error frame: {frame.get('message')}")
    digests = {pod: hashlib.sha256("".join(texts).encode()).hexdigest() for pod, texts in pieces.items()}
    return {"digests": digests, "kinds": kinds, "close_code": connection.close_code, "error": connection.error,
            "problems": problems[:3], "complete": kinds.get("complete", 0) == 1, "latencies_ns": latencies}


def fleet_result(fleet: Fleet, latency: bool) -> dict:
    """Every client's report folded into one: how many clients got each outcome (complete or not, and the
    digest of each pod's rebuilt log), close codes, frame count and all line latencies (microseconds)."""
    decode, outcomes, close_codes, problems, latencies = Decoder(), {}, {}, [], []
    frames = 0
    for connection in fleet.connections:
        report = client_report(connection, decode, latency)
        frames += len(connection.frames)
        outcome = outcome_key(report["complete"], report["digests"])
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        close_codes[str(report["close_code"])] = close_codes.get(str(report["close_code"]), 0) + 1
        problems += report["problems"] + ([report["error"]] if report["error"] else [])
        latencies += [nanos // 1000 for nanos in report["latencies_ns"]]
    return {"event": "result", "clients": len(fleet.connections), "frames": frames, "outcomes": outcomes,
            "close_codes": close_codes, "problems": sorted(set(problems))[:10], "latencies_us": latencies}


def outcome_key(complete: bool, digests: dict[str, str]) -> str:
    """A client's outcome as one string: equal strings, equal outcomes."""
    return json.dumps({"complete": complete, "logs": digests}, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("--concurrency", type=int, default=50, help="connections handshaking at once")
    parser.add_argument("--connect-timeout", type=float, default=120)
    parser.add_argument("--timeout", type=float, default=600, help="longest receive phase, seconds")
    parser.add_argument("--no-latency", action="store_true", help="log lines are not `<seq> <ns>` lines")
    args = parser.parse_args()
    fleet = Fleet(args.url, args.count, args.concurrency)
    print(json.dumps(fleet.connect(args.connect_timeout)), flush=True)
    fleet.run(args.timeout)
    print(json.dumps(fleet_result(fleet, not args.no_latency)), flush=True)


if __name__ == "__main__":
    main()
