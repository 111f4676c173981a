"""Memory of a worker serving a large log over REST (`--only rest`).

A finished one-pod task holds a large log (100 MB by default) in the fake cluster (its own process,
`bench.kubeproc`). A fresh gunicorn worker serves it twice: the first GET reads the log from Kubernetes,
stores it and answers from the database; the second is served from the database alone. A streaming
client reads each body in pieces, hashes it and keeps none of it, while the worker's VmRSS is sampled.
Once with `format=json`, once with `format=text`, each with a fresh task and a fresh worker.
"""

import hashlib
import http.client
import json
import os
import re
import time

from . import procstat
from .kubeproc import RemoteCluster
from .measure import SERVICE_WARNINGS, Bench
from .servers import Service, recreate_database

LINE_CHARS = 100  # random hex characters per line (plus "\n")
READ_BYTES = 1 << 20  # the client reads the body in pieces of this size
RSS_INTERVAL = 0.05  # seconds between two samples of the worker's VmRSS
SETTLE = 1.0  # seconds after the body's end before RSS "after" is read
GET_TIMEOUT = 900  # seconds a GET may take


# The content of a JSON string up to its closing quote (or the end of what came so far): runs of plain
# characters and escapes, each a backslash and the character after it.
STRING_CONTENT = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)


class JsonLogDigest:
    """Hashes the text of the one log entry of a JSON body as the body streams by.

    The body is `{"task_id": ..., "logs": [{"node": ..., "logs": "<the log as a JSON string>", ...}]}`;
    only its head (up to the entry's `"logs": "`) and what follows the string are kept. The hash covers the
    JSON string's content, so it equals the SHA-256 of `json.dumps(text)[1:-1]`. A backslash at the end of
    a piece waits for the next one: the character after it is part of its escape."""

    MARK = b'"logs": "'

    def __init__(self):
        self.head, self.tail, self._held, self._started = b"", None, b"", False
        self._hash = hashlib.sha256()

    def feed(self, piece: bytes) -> None:
        if self.tail is not None:
            self.tail += piece
            return
        if not self._started:
            self.head += piece
            at = self.head.find(self.MARK)
            if at < 0:
                return
            at += len(self.MARK)
            self.head, piece, self._started = self.head[:at], self.head[at:], True
        data = self._held + piece
        end = STRING_CONTENT.match(data).end()
        self._hash.update(data[:end])
        if data[end : end + 1] == b'"':
            self.tail = data[end:]
        else:
            self._held = data[end:]  # empty, or an escape's backslash whose character comes next

    def result(self) -> dict:
        """{"sha256" (None if the body was not one entry), "fields": source, complete and the entry's
        line count when it has one}."""
        if self.tail is None:
            return {"sha256": None, "fields": {}}
        body = json.loads(self.head + self.tail)
        fields = {key: body[key] for key in ("source", "complete")}
        if "lines" in body["logs"][0]:
            fields["lines"] = body["logs"][0]["lines"]
        return {"sha256": self._hash.hexdigest(), "fields": fields}


class TextLogDigest:
    """Hashes a `format=text` body (one pod: the body is its log, nothing else)."""

    def __init__(self):
        self._hash = hashlib.sha256()

    def feed(self, piece: bytes) -> None:
        self._hash.update(piece)

    def result(self) -> dict:
        return {"sha256": self._hash.hexdigest(), "fields": {}}


def download(
    bench: Bench, service: Service, kube: RemoteCluster, task_id: str, output: str
) -> dict:
    """GET the task's log in `output` format with a streaming client, sampling the worker's RSS meanwhile;
    return sizes, times, RSS before / peak / after, CPU of every party, and the body's hash."""
    worker = service.worker_pid
    rss = procstat.RssSampler(worker, RSS_INTERVAL)
    digest = JsonLogDigest() if output == "json" else TextLogDigest()
    before = procstat.rss_mb(worker)
    rss.start()
    cpu = procstat.CpuWindow(
        {
            "worker": lambda: [worker],
            "clients": lambda: [os.getpid()],
            "fake_k8s": lambda: [kube.pid],
            "postgres": bench.postgres_pids,
        }
    ).start()
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=GET_TIMEOUT)
    connection.request("GET", f"/api/v1/tasks/{task_id}/logs?format={output}")
    response = connection.getresponse()
    headers_after, size = time.monotonic() - began, 0
    while piece := response.read(READ_BYTES):
        size += len(piece)
        digest.feed(piece)
    elapsed = time.monotonic() - began
    connection.close()
    usage = cpu.stop()
    time.sleep(SETTLE)
    rss.stop()
    after = procstat.rss_mb(worker)
    peak = max(rss.peak(), before, after)
    return {
        "format": output,
        "status": response.status,
        "body_bytes": size,
        "seconds": round(elapsed, 2),
        "first_byte_s": round(headers_after, 2),
        "mb_per_s": round(size / 1e6 / elapsed, 1),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_after_mb": round(after, 1),
        "rss_growth_mb": round(peak - before, 1),
        "cpu": usage,
        **digest.result(),
    }


def finished_task(kube: RemoteCluster, size: int) -> dict:
    """A finished one-pod task whose log is about `size` bytes of hex lines, written 1 MB at a time."""
    task = kube.call("workflows", count=1, steps=["a"])[0]
    pod = task["pods"][0]
    pieces = max(1, round(size / (1 << 20)))
    written = kube.call(
        "fill", pod=pod, pieces=pieces, piece_bytes=max(1, size // pieces), line_chars=LINE_CHARS
    )
    kube.call("finish", task_ids=[task["task_id"]])
    return {"task_id": task["task_id"], "pod": pod, **written}


def largelog_run(bench: Bench, size: int, output: str) -> dict:
    """A finished task with a `size`-byte log; a fresh worker serves it twice in `output` format.

    The worker first serves a small task once: what any first request costs (imports of the Kubernetes
    client, connection pools) is then in `rss_before_mb`, not in the large log's growth."""
    recreate_database()
    with RemoteCluster(bench.directory) as kube:
        small, task = finished_task(kube, 1000), finished_task(kube, size)
        expected = kube.call("digests", pods=[task["pod"]])[task["pod"]]
        with bench.service("tasklogs", kubeconfig=kube.kubeconfig) as service:
            idle = procstat.rss_mb(service.worker_pid)
            warm_up = download(bench, service, kube, small["task_id"], output)
            gets = [
                download(bench, service, kube, task["task_id"], output) for _ in ("first", "second")
            ]
            health = service_health(service)
    wanted = expected["json_sha256" if output == "json" else "sha256"]
    for get, nth, source in zip(
        gets, ("first", "second"), ("kubernetes", "database"), strict=False
    ):
        get.update(
            get=nth, expected_source=source, exact=get["status"] == 200 and get["sha256"] == wanted
        )
    return {
        "kind": "rest",
        "service": "tasklogs",
        "format": output,
        "log_bytes": task["bytes"],
        "log_lines": expected["lines"],
        "fill_s": task["seconds"],
        "rss_idle_mb": round(idle, 1),
        "rss_after_warm_up_mb": warm_up["rss_after_mb"],
        "gets": gets,
        "health": health,
    }


def service_health(service: Service) -> dict:
    with open(service.log_path, errors="replace") as log:
        warnings = [line.strip() for line in log if SERVICE_WARNINGS.search(line)]
    return {
        "worker_survived": service.alive(),
        "warnings": len(warnings),
        "first_warnings": warnings[:3],
    }
