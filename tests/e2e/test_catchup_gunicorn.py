"""A tail's catch-up on a 200 MB running log through gunicorn with the gevent worker, in both formats:
every stored character once, and the worker grows by under 100 MB meanwhile; lines written during a
catch-up arrive exactly once, though the journal writer commits pages past the snapshot's end while
it is read. (/healthz latency during the catch-up is measured by `bench --only catchup`, not asserted
here.)"""

import threading
import time
import urllib.request

import pytest

from bench import procstat
from testkit import scenarios
from testkit.wsclient import TailClient

pytestmark = pytest.mark.e2e

MEGABYTES = 200
GROWTH_LIMIT_MB = 100
ROW = b"0123456789abcdef" * 63
NS = 1_000_000_000
BASE = 1_772_359_200 * NS  # 2026-03-01T10:00:00Z


def _fill(kube, pod: str, megabytes: int) -> int:
    """`megabytes` MB of ~1 KB lines in the pod's log, a MB a second of past time (a capture resuming
    at the stored position's whole second reads one MB again, not the whole log); its size."""
    for index in range(megabytes):
        block = b"".join(b"%05d-%04d " % (index, n) + ROW + b"\n" for n in range(1024))
        kube.write_log(pod, "main", block, ts=BASE + index * NS)
    return megabytes * 1024 * (len(ROW) + 12)


def _store(gunicorn, task_id: str, size: int) -> None:
    """One GET of the running task through a worker that then stops: the log is in the store."""
    storer = gunicorn(TASKLOGS_KUBE_READ_TIMEOUT=300)
    stored = 0
    path = f"/api/v1/tasks/{task_id}/logs?format=text"
    with urllib.request.urlopen(storer.url(path), timeout=300) as response:
        while chunk := response.read(1 << 20):
            stored += len(chunk)
    storer.stop()
    assert stored == size


class Rebuilt:
    """The log as the client rebuilds it; any gap or repeat fails at once."""

    def __init__(self, pod: str):
        self.pod, self.text, self.line = pod, [], 1
        self.chars = 0

    def take(self, frame: dict) -> None:
        entries = frame["logs"] if frame["type"] == "snapshot" else [frame]
        for entry in entries:
            if entry.get("pod") != self.pod or frame["type"] not in ("snapshot", "append", "lines"):
                continue
            if isinstance(entry.get("lines"), list):
                if entry["lines"]:
                    assert entry["line"] == self.line, "a line missing or repeated"
                self.line += len(entry["lines"])
                piece = "".join(line["text"] + "\n" for line in entry["lines"])
            else:
                assert entry["offset"] == self.chars, "a gap or a repeat"
                piece = entry.get("logs", entry.get("data", ""))
            self.text.append(piece)
            self.chars += len(piece)


class RssPeak(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0.0, threading.Event()

    def run(self):
        while not self.stopped.wait(0.05):
            self.peak = max(self.peak, procstat.rss_mb(self.pid))


def _catch_up(server, kube, wf, output: str, live: bool = False) -> float:
    """Tail from the start (while lines are written, if `live`) until the client has the whole log;
    return the worker's growth (MB)."""
    worker = procstat.children(server.process.pid)[0]
    warm = TailClient(server.url(f"/ws/tasks/{wf.task_id}-small/logs?format={output}", "ws"))
    assert warm.frame()["type"] == "snapshot"  # the first tail's costs (imports, pools) are paid
    warm.close()
    before = procstat.rss_mb(worker)
    sampler = RssPeak(worker)
    sampler.start()
    stop_writing = threading.Event()

    def write_live():
        n = 0
        while not stop_writing.wait(0.01):
            kube.write_log(wf.pod(), "main", f"live {output} {n}\n".encode())
            n += 1

    writer = threading.Thread(target=write_live, daemon=True)
    client = TailClient(
        server.url(f"/ws/tasks/{wf.task_id}/logs?format={output}", "ws"),
        timeout=60,
        skip_utf8_validation=True,
    )
    rebuilt = Rebuilt(wf.pod())
    try:
        if live:
            writer.start()
        stored = len(kube.log_bytes(wf.pod(), "main"))
        while rebuilt.chars < stored:
            frame = client.frame()
            assert frame is not None, (client.close_code, client.close_reason)
            rebuilt.take(frame)
        stop_writing.set()
        if live:
            writer.join()
        expected = kube.log_bytes(wf.pod(), "main").decode()
        deadline = time.monotonic() + 30
        while rebuilt.chars < len(expected) and time.monotonic() < deadline:
            rebuilt.take(client.frame())
        sampler.stopped.set()
        sampler.join()
        assert rebuilt.chars == len(expected) and "".join(rebuilt.text) == expected
    finally:
        stop_writing.set()
        client.close()
    return sampler.peak - before


def test_a_catch_up_of_a_200_mb_running_log_is_exact_and_bounded(gunicorn, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    small = scenarios.workflow(kube, f"{task_id}-small")
    kube.write_log(small.pod(), "main", b"small\n")
    size = _fill(kube, wf.pod(), MEGABYTES)
    _store(gunicorn, task_id, size)
    growth = {}
    for output in ("append", "lines"):
        server = gunicorn()
        growth[output] = _catch_up(server, kube, wf, output)
        server.stop()
    print(f"\nRSS growth during the catch-up of {MEGABYTES} MB: {growth}")
    assert all(mb < GROWTH_LIMIT_MB for mb in growth.values()), growth


@pytest.mark.parametrize("output", ["append", "lines"])
def test_lines_written_during_a_catch_up_arrive_exactly_once(gunicorn, kube, task_id, output):
    wf = scenarios.workflow(kube, task_id)
    small = scenarios.workflow(kube, f"{task_id}-small")
    kube.write_log(small.pod(), "main", b"small\n")
    _store(gunicorn, task_id, _fill(kube, wf.pod(), 20))
    _catch_up(gunicorn(), kube, wf, output, live=True)
