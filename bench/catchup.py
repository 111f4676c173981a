"""A tail's catch-up on a large running log (`--only catchup`): the worker's memory and /healthz meanwhile.

The fake cluster (its own process, `bench.kubeproc`) holds a running one-pod task whose log is `size`
bytes of random lines (`bench.loglines`). A first service stores it (one REST GET of a running task
refreshes it into the store) and stops. Then, for each format (`append`, `lines`), a fresh gunicorn
worker first serves one small tail (what any first tail costs: imports, pools), then one WebSocket
client tails the large task from its start while:

- the worker's VmRSS is sampled every 50 ms (growth = the peak during the catch-up minus the value before);
- a probe in a process of its own GETs `/healthz` every 20 ms on a fresh connection (p50, p99, max);
- the client rebuilds the log from the frames (offsets contiguous, lines numbered in order) and hashes it.

The catch-up ends when the client holds the whole stored log. The same is done for `--catchup-before`
(a commit, exported with `git archive`; default: the last one before the bounded catch-up), so one run
prints before and after side by side. The stored log is shared by every run of a size.
"""

import hashlib
import http.client
import json
import multiprocessing
import statistics
import subprocess
import tempfile
import time

from testkit.wsclient import TailClient

from . import procstat
from .kubeproc import RemoteCluster
from .largelog import READ_BYTES, service_health
from .measure import Bench
from .servers import ROOT, Service, recreate_database

BEFORE = "27240d1be89640d58475b32999e131bab46df7b3"  # the last commit before the bounded catch-up
FORMATS = ("append", "lines")
RSS_INTERVAL = 0.05
PROBE_INTERVAL = 0.02  # seconds between two /healthz requests
PROBE_TIMEOUT = 30.0
CATCH_UP_TIMEOUT = 600.0  # seconds for one catch-up
# A 200 MB one-shot read of the fake renders the whole log before its first byte.
SERVICE_ENVIRONMENT = {"TASKLOGS_KUBE_READ_TIMEOUT": "300"}


# --- the /healthz probe, in a process of its own (the client's JSON parsing holds this one's GIL) ---


def _probe(port: int, stop, results) -> None:
    latencies, failures = [], 0
    while not stop.is_set():
        began = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
            connection.request("GET", "/healthz")
            ok = connection.getresponse().status == 200
            connection.close()
        except OSError:
            ok = False
        latencies.append(time.perf_counter() - began)
        failures += not ok
        time.sleep(PROBE_INTERVAL)
    results.put((latencies, failures))


class HealthProbe:
    """GETs /healthz every PROBE_INTERVAL from `start()` to `stop()`; `stop()` returns the latencies."""

    def __init__(self, port: int):
        context = multiprocessing.get_context("spawn")
        self._stop, self._results = context.Event(), context.Queue()
        self._process = context.Process(
            target=_probe, args=(port, self._stop, self._results), daemon=True
        )

    def start(self) -> "HealthProbe":
        self._process.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        latencies, failures = self._results.get(timeout=PROBE_TIMEOUT + 10)
        self._process.join()
        ordered = sorted(latencies)

        def at(share: float) -> float:
            return round(1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)

        return {
            "requests": len(ordered),
            "failures": failures,
            "p50_ms": round(1000 * statistics.median(ordered), 1) if ordered else None,
            "p99_ms": at(0.99) if ordered else None,
            "max_ms": round(1000 * ordered[-1], 1) if ordered else None,
        }


# --- the client ---


class CatchUp:
    """The log as the client rebuilds it from a tail's frames: offsets must follow each other."""

    def __init__(self, pod: str):
        self.pod, self.chars, self.frames, self.largest = pod, 0, 0, 0
        self.next_line, self.error = 1, None
        self._hash = hashlib.sha256()

    def take(self, frame: dict, size: int) -> None:
        self.frames += 1
        self.largest = max(self.largest, size)
        if frame["type"] == "snapshot":
            for entry in frame["logs"]:
                self._entry(entry, entry.get("line"))
        elif frame["type"] in ("append", "lines"):
            self._entry(frame, frame.get("line"))

    def _entry(self, entry: dict, line: int | None) -> None:
        if entry["pod"] != self.pod:
            return
        if isinstance(entry.get("lines"), list):  # the lines format: whole lines, numbered
            if entry["lines"] and line != self.next_line:
                self.error = self.error or f"line {line} where {self.next_line} was due"
            text = "".join(item["text"] + "\n" for item in entry["lines"])
            self.next_line += len(entry["lines"])
        else:
            text = entry.get("logs", entry.get("data", ""))
            if entry["offset"] != self.chars:
                self.error = self.error or f"offset {entry['offset']} where {self.chars} was due"
        self.chars += len(text)
        self._hash.update(text.encode())

    def sha256(self) -> str:
        return self._hash.hexdigest()


def tail_client(service: Service, task: dict, output: str, timeout: float) -> TailClient:
    """A tail of the task from its start. websocket-client's own UTF-8 check of text frames is pure
    Python (about 5 MB/s): it would make the client the bottleneck, so the JSON decoding checks instead."""
    return TailClient(
        f"{service.ws_url(task['task_id'])}?format={output}",
        timeout=timeout,
        skip_utf8_validation=True,
    )


def catch_up(service: Service, task: dict, output: str) -> dict:
    """One client tails the task from its start until it holds `task["bytes"]` characters."""
    rss = procstat.RssSampler(service.worker_pid, RSS_INTERVAL)
    before = procstat.rss_mb(service.worker_pid)
    probe = HealthProbe(service.port).start()
    time.sleep(0.5)  # the probe's interpreter is up: its first requests are not the catch-up's
    rss.start()
    client, rebuilt = None, CatchUp(task["pod"])
    began = time.monotonic()
    try:
        client = tail_client(service, task, output, timeout=120)
        while rebuilt.chars < task["bytes"] and time.monotonic() - began < CATCH_UP_TIMEOUT:
            opcode, data = client.ws.recv_data()
            if opcode == 8:  # close
                rebuilt.error = rebuilt.error or f"closed: {data[2:].decode(errors='replace')}"
                break
            rebuilt.take(json.loads(data), len(data))
    finally:
        seconds = time.monotonic() - began
        if client:
            client.close()
        rss.stop()
        health = probe.stop()
    peak = max(rss.peak(), before)
    return {
        "format": output,
        "seconds": round(seconds, 2),
        "mb_per_s": round(rebuilt.chars / 1e6 / max(seconds, 1e-9), 1),
        "frames": rebuilt.frames,
        "largest_frame_bytes": rebuilt.largest,
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_growth_mb": round(peak - before, 1),
        "healthz": health,
        "exact": rebuilt.error is None
        and rebuilt.chars == task["bytes"]
        and rebuilt.sha256() == task["sha256"],
        "error": rebuilt.error,
    }


def warm_up(service: Service, task: dict, output: str) -> None:
    """One small tail to its end: the worker's first-tail costs are paid before `rss_before_mb`."""
    client = tail_client(service, task, output, timeout=30)
    try:
        rebuilt = CatchUp(task["pod"])
        while rebuilt.chars < task["bytes"]:
            rebuilt.take(client.frame() or {"type": "closed"}, 0)
    finally:
        client.close()


# --- the runs ---


def running_task(kube: RemoteCluster, size: int, seed: int) -> dict:
    """A running one-pod task whose log is about `size` bytes of random lines, printed on a simulated
    clock (`bench.loglines`: about 10 KB a second) as a long job prints them, so that a capture resuming
    from the stored position (`sinceTime`, whole seconds) reads a few lines again, not the whole log."""
    task = kube.call("workflows", count=1, steps=["a"])[0]
    pod = task["pods"][0]
    kube.call("generate", pod=pod, kind="random", size=size, seed=seed)
    digest = kube.call("digests", pods=[pod])[pod]
    return {"task_id": task["task_id"], "pod": pod, **digest}


def store(bench: Bench, kube: RemoteCluster, tasks: list[dict]) -> float:
    """One GET of each running task through a service that then stops: the logs are in the store."""
    began = time.monotonic()
    with bench.service("tasklogs", kube.kubeconfig, SERVICE_ENVIRONMENT) as service:
        for task in tasks:
            connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=900)
            connection.request("GET", f"/api/v1/tasks/{task['task_id']}/logs?format=text")
            response = connection.getresponse()
            size = 0
            while piece := response.read(READ_BYTES):
                size += len(piece)
            connection.close()
            if response.status != 200 or size != task["bytes"]:
                raise RuntimeError(f"storing {task['task_id']}: HTTP {response.status}, {size} B")
    return round(time.monotonic() - began, 1)


def export_tree(commit: str, directory: str) -> str:
    """The source tree of `commit` (git archive), in a fresh directory under `directory`."""
    tree = tempfile.mkdtemp(prefix=f"tree-{commit[:8]}-", dir=directory)
    archive = subprocess.run(
        ["git", "archive", commit], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    return tree


def catchup_run(bench: Bench, size: int, before: str | None) -> dict:
    """A running task with a `size`-byte stored log, caught up in both formats by fresh workers of this
    tree (`after`) and of commit `before` (skipped when None)."""
    recreate_database()
    trees = {"after": bench.tasklogs_root}
    if before:
        trees["before"] = export_tree(before, bench.directory)
    with RemoteCluster(bench.directory) as kube:
        small, task = running_task(kube, 1000, 1), running_task(kube, size, 2)
        stored_s = store(bench, kube, [small, task])
        tails = []
        for label, root in trees.items():
            for output in FORMATS:
                bench_root, bench.tasklogs_root = bench.tasklogs_root, root
                try:
                    with bench.service("tasklogs", kube.kubeconfig, SERVICE_ENVIRONMENT) as service:
                        warm_up(service, small, output)
                        tail = catch_up(service, task, output)
                        tails.append({"tree": label, **tail, "health": service_health(service)})
                finally:
                    bench.tasklogs_root = bench_root
    return {
        "kind": "catchup",
        "service": "tasklogs",
        "log_bytes": task["bytes"],
        "log_lines": task["lines"],
        "store_s": stored_s,
        "before_commit": before,
        "tails": tails,
        "health": {
            "worker_survived": all(tail["health"]["worker_survived"] for tail in tails),
            "warnings": sum(tail["health"]["warnings"] for tail in tails),
        },
    }
