"""Driving the client processes (`bench.wsclients`) from the bench, and folding their answers."""

import json
import os
import queue
import subprocess
import sys
import threading

from .servers import ROOT


class ClientProcess:
    """One `python -m bench.wsclients` subprocess; its JSON lines arrive on a queue."""

    def __init__(self, url: str, count: int, concurrency: int, latency: bool):
        command = [
            sys.executable,
            "-m",
            "bench.wsclients",
            url,
            str(count),
            "--concurrency",
            str(concurrency),
        ]
        if not latency:
            command.append("--no-latency")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
        self.pid = self.process.pid
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def next(self, event: str, timeout: float) -> dict:
        """The next message, which must be `event`."""
        try:
            message = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"client process {self.pid}: no {event!r} in {timeout:.0f}s"
            ) from None
        if message is None or message.get("event") != event:
            raise RuntimeError(
                f"client process {self.pid} ended without {event!r} (exit {self.process.poll()})"
            )
        return message

    def stop(self) -> None:
        """Ask it to stop receiving (it then reports)."""
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ClientFleet:
    """`count` WebSocket clients of one URL spread over `processes` client processes."""

    def __init__(
        self,
        url: str,
        count: int,
        *,
        processes: int = 1,
        concurrency: int = 50,
        latency: bool = True,
    ):
        shares = [count // processes + (index < count % processes) for index in range(processes)]
        self.clients = [
            ClientProcess(url, share, max(1, concurrency // processes), latency)
            for share in shares
            if share
        ]

    @property
    def pids(self) -> list[int]:
        return [client.pid for client in self.clients]

    def wait_connected(self, timeout: float = 180) -> dict:
        """{ok, failed, seconds, errors} once every client has its snapshot (or failed)."""
        answers = [client.next("connected", timeout) for client in self.clients]
        return {
            "ok": sum(a["ok"] for a in answers),
            "failed": sum(a["failed"] for a in answers),
            "seconds": max(a["seconds"] for a in answers),
            "errors": sorted({error for answer in answers for error in answer["errors"]}),
        }

    def result(self, timeout: float) -> dict:
        """Every client's outcome, once all connections closed (or `timeout` passed: they are told to
        stop)."""
        answers = []
        for client in self.clients:
            try:
                answers.append(client.next("result", timeout))
            except TimeoutError:
                client.stop()
                answers.append(client.next("result", 120))
        return merge_results(answers)

    def close(self) -> None:
        for client in self.clients:
            client.stop()
            client.close()


def merge_results(answers: list[dict]) -> dict:
    merged = {
        "clients": 0,
        "frames": 0,
        "outcomes": {},
        "close_codes": {},
        "problems": [],
        "latencies_us": [],
    }
    for answer in answers:
        merged["clients"] += answer["clients"]
        merged["frames"] += answer["frames"]
        for key in ("outcomes", "close_codes"):
            for value, number in answer[key].items():
                merged[key][value] = merged[key].get(value, 0) + number
        merged["problems"] += answer["problems"]
        merged["latencies_us"] += answer["latencies_us"]
    return merged
