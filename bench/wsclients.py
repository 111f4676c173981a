"""Many WebSocket clients in one process: `testkit.wsclient.TailConnection`s on one epoll loop.

Run by `bench.fleet` as `python -m bench.wsclients URL COUNT [--concurrency N] [--no-latency]`; it speaks
JSON lines on stdout:

    {"event": "connected", ...}   once every client has its snapshot frame (or failed to connect)
    {"event": "result", ...}      once every connection is closed, or after "stop" on stdin

While the tail runs a client only stamps and keeps each frame's payload (`time.time_ns()` right after the
`recv`); the frames are decoded and checked afterwards, so that decoding does not delay what is measured.
A frame identical for many clients (the server's shared frame) is decoded once.
"""

import argparse
import hashlib
import json
import select
import sys
import time
from urllib.parse import urlsplit

from websocket import WebSocketException

from testkit.wsclient import TailConnection


class Fleet:
    """`count` connections to one URL, at most `concurrency` of them connecting at a time."""

    def __init__(self, url: str, count: int, concurrency: int):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.count, self.concurrency = count, concurrency
        self.connections: list[TailConnection] = []
        self.by_fd: dict[int, TailConnection] = {}
        self.poller = select.epoll()
        self.poller.register(sys.stdin.fileno(), select.EPOLLIN)
        self.stopping = False

    def connect(self, timeout: float) -> dict:
        """Open every connection; return once each has its first frame (the snapshot) or failed."""
        began, deadline = time.monotonic(), time.monotonic() + timeout
        while (
            len(self.connections) < self.count or self._connecting()
        ) and time.monotonic() < deadline:
            while len(self.connections) < self.count and self._connecting() < self.concurrency:
                self._open()
            self._poll(0.5)
        ready = [c for c in self.connections if c.state == "open" and c.frames]
        errors = sorted(
            {c.error or f"closed {c.close_code}" for c in self.connections if c not in ready}
        )
        return {
            "event": "connected",
            "ok": len(ready),
            "failed": self.count - len(ready),
            "seconds": round(time.monotonic() - began, 2),
            "errors": errors[:5],
        }

    def run(self, timeout: float) -> None:
        """Receive until every connection is closed, "stop" comes on stdin, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not self.stopping and self.by_fd and time.monotonic() < deadline:
            self._poll(0.5)
        for connection in list(self.by_fd.values()):
            self._drop(connection)

    def _connecting(self) -> int:
        return sum(
            1 for c in self.by_fd.values() if c.state in ("connecting", "handshake") or not c.frames
        )

    def _open(self) -> None:
        connection = TailConnection(self.host, self.port, self.path)
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
        """ "stop" ends the receive phase; so does the end of stdin (the bench went away)."""
        if not line:
            self.poller.unregister(sys.stdin.fileno())
        self.stopping = self.stopping or line.strip() in ("stop", "")

    def _ready(self, connection: TailConnection, events: int) -> None:
        try:
            if connection.state == "connecting":
                connection.send_request()
                self.poller.modify(connection.fileno(), select.EPOLLIN)
            elif not connection.receive():
                self._drop(connection)
        except (OSError, WebSocketException) as error:
            connection.error = connection.error or f"{type(error).__name__}: {error}"
            self._drop(connection)

    def _drop(self, connection: TailConnection) -> None:
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


def client_report(connection: TailConnection, decode: Decoder, latency: bool) -> dict:
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
            pod, text = (
                f"{entry['pod']}/{entry['container']}",
                entry["logs"] if kind == "snapshot" else entry["data"],
            )
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
    digests = {
        pod: hashlib.sha256("".join(texts).encode()).hexdigest() for pod, texts in pieces.items()
    }
    return {
        "digests": digests,
        "kinds": kinds,
        "close_code": connection.close_code,
        "error": connection.error,
        "problems": problems[:3],
        "complete": kinds.get("complete", 0) == 1,
        "latencies_ns": latencies,
    }


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
    return {
        "event": "result",
        "clients": len(fleet.connections),
        "frames": frames,
        "outcomes": outcomes,
        "close_codes": close_codes,
        "problems": sorted(set(problems))[:10],
        "latencies_us": latencies,
    }


def outcome_key(complete: bool, digests: dict[str, str]) -> str:
    """A client's outcome as one string: equal strings, equal outcomes."""
    return json.dumps({"complete": complete, "logs": digests}, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument(
        "--concurrency", type=int, default=50, help="connections handshaking at once"
    )
    parser.add_argument("--connect-timeout", type=float, default=120)
    parser.add_argument("--timeout", type=float, default=600, help="longest receive phase, seconds")
    parser.add_argument(
        "--no-latency", action="store_true", help="log lines are not `<seq> <ns>` lines"
    )
    args = parser.parse_args()
    fleet = Fleet(args.url, args.count, args.concurrency)
    print(json.dumps(fleet.connect(args.connect_timeout)), flush=True)
    fleet.run(args.timeout)
    print(json.dumps(fleet_result(fleet, not args.no_latency)), flush=True)


if __name__ == "__main__":
    main()
