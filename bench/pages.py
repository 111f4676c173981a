"""Stored logs as indexed pages (`--only pages`): downloads, line access, grep and disk use, each beside
a reference.

The fake cluster (its own process, `bench.kubeproc`) holds finished one-pod tasks whose logs are
`bench.loglines` output, one write per line, each line stamped with its simulated print time. One fresh
gunicorn worker (as every run starts it) stores each log on a first `format=text` GET (a Succeeded
workflow is saved on that GET), a `format=json` GET must then say `complete` and `source: database`.
Then, with everything served from the database:

1. downloads of the download log (`format=text` and `format=json`) beside the raw read: the pages' text
   through a server-side psycopg2 cursor (itersize 64), summing `len()`;
2. line access (`tail`, a `since`/`until` minute, `from_line` in the middle and near the end) on a small
   and a large log, median and p95 of `REPEAT` requests taking the two logs in turn, beside the fake
   cluster's own `tailLines=100`;
3. `grep` of a rare word over the download log beside GNU `grep -c` over the same bytes in a file;
4. on-disk bytes of the log tables per log byte, from the size delta around each log's storing.

Every answer is checked against the fake's lines first (SHA-256); a measurement that fails says why in
its cell and the run goes on (an API that is not there yet answers 400).
"""

import hashlib
import http.client
import json
import os
import statistics
import subprocess
import time
import urllib.parse
from functools import partial

import psycopg2
import yaml

from testkit.fakekube.gotime import format_nano

from . import procstat
from .kubeproc import RemoteCluster
from .largelog import GET_TIMEOUT, READ_BYTES, JsonLogDigest, service_health
from .loglines import RARE_WORD
from .measure import Bench, disk_bytes_sql
from .servers import Service, recreate_database

REPEAT = 20  # timed requests per line-access query (after one that is checked)
DOWNLOADS = 5  # rounds of timed downloads and raw reads (and greps); the median counts
WINDOW_NS = 60 * 10**9  # the since/until window: one minute
LIMIT = 1000  # lines per from_line request
TAIL = 100
COMPLETE_WAIT = 60  # seconds a stored log may take to say complete after its first GET
# The fake renders a whole-log read before its first byte (about 15 s for 500 MB), past the service's
# default read timeout of 10 s; a real kubelet streams at once.
SERVICE_ENVIRONMENT = {"TASKLOGS_KUBE_READ_TIMEOUT": "300"}
SIZES_SQL = disk_bytes_sql("log_pages", "task_logs")


class Unhashed:
    """A digest that does nothing: the download is timed alone."""

    def update(self, piece: bytes) -> None:
        pass


class HttpReader:
    """GETs to one HTTP server, a fresh connection each; the body hashed (and kept when asked)."""

    def __init__(self, port: int, headers: dict | None = None):
        self.port, self.headers = port, headers or {}

    def get(self, path: str, digest=None, keep: bool = False) -> dict:
        """{"status", "bytes", "seconds", "sha256", "body" (kept bodies only)}."""
        digest = digest or hashlib.sha256()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=GET_TIMEOUT)
        began = time.perf_counter()
        connection.request("GET", path, headers=self.headers)
        response = connection.getresponse()
        size, kept = 0, []
        while piece := response.read(READ_BYTES):
            size += len(piece)
            (digest.feed if hasattr(digest, "feed") else digest.update)(piece)
            if keep or response.status != 200:
                kept.append(piece)
        seconds = time.perf_counter() - began
        connection.close()
        body = b"".join(kept)
        answer = {"status": response.status, "bytes": size, "seconds": seconds, "body": body}
        if hasattr(digest, "hexdigest"):
            answer["sha256"] = digest.hexdigest()
        return answer


def logs_path(task_id: str, **query) -> str:
    return f"/api/v1/tasks/{task_id}/logs?" + urllib.parse.urlencode(query)


def failure(answer: dict) -> str:
    """`HTTP 400: <the error's message, or the start of the body>`."""
    body = answer["body"].decode(errors="replace")
    try:
        body = json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        pass
    body = body.strip().replace("\n", " ")
    return f"HTTP {answer['status']}: {body[:70]}{'...' * (len(body) > 70)}"


def milliseconds(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
    }


# --- the logs and their storing ---


def new_log(kube: RemoteCluster, kind: str, size: int, seed: int) -> dict:
    """A finished one-pod task with about `size` bytes of `kind` lines; its digests."""
    task = kube.call("workflows", count=1, steps=["a"])[0]
    pod = task["pods"][0]
    written = kube.call("generate", pod=pod, kind=kind, size=size, seed=seed)
    kube.call("finish", task_ids=[task["task_id"]])
    digest = kube.call("digests", pods=[pod])[pod]
    return {"task_id": task["task_id"], "pod": pod, "kind": kind, **written, "digest": digest}


def store(bench: Bench, reader: HttpReader, log: dict) -> dict:
    """The first GET (the service reads the fake and stores the log), until a JSON GET says complete
    from the database; the log tables' growth meanwhile."""
    before = bench.sql(SIZES_SQL)
    first = reader.get(logs_path(log["task_id"], format="text"))
    stored = {
        "first_get_s": round(first["seconds"], 2),
        "first_get_exact": first["status"] == 200 and first["sha256"] == log["digest"]["sha256"],
    }
    if first["status"] != 200:
        return {**stored, "error": failure(first)}
    deadline = time.monotonic() + COMPLETE_WAIT
    while True:
        digest = JsonLogDigest()
        reader.get(logs_path(log["task_id"], format="json"), digest)
        fields = digest.result()["fields"]
        complete = fields.get("source") == "database" and fields.get("complete") is True
        if complete or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    disk = bench.sql(SIZES_SQL) - before
    return {
        **stored,
        "fields": fields,
        "complete": complete,
        "disk_bytes": disk,
        "disk_per_log_byte": round(disk / log["bytes"], 3),
    }


# --- 1. downloads beside the raw read ---


def raw_read(database_url: str, task_id: str) -> dict:
    """The stored pages' text through a named cursor (itersize 64), summing len(); seconds."""
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM task_logs WHERE task_id = %s", (task_id,))
            (log_id,) = cursor.fetchone()
        began = time.perf_counter()
        with connection.cursor(name="raw_read") as cursor:
            cursor.itersize = 64
            cursor.execute(
                "SELECT text FROM log_pages WHERE log_id = %s ORDER BY start_offset", (log_id,)
            )
            chars = sum(len(row[0]) for row in cursor)
        return {"seconds": time.perf_counter() - began, "chars": chars}
    finally:
        connection.close()


def timed(measure, times: int = DOWNLOADS) -> dict:
    """`measure()` `times` times; the median seconds and the first answer's other fields."""
    answers = [measure() for _ in range(times)]
    return {**answers[0], "seconds": statistics.median(answer["seconds"] for answer in answers)}


def downloads(bench: Bench, reader: HttpReader, log: dict) -> dict:
    """MB/s of log (the log's bytes / seconds) for both formats and the raw read, and the ratios. Each
    format is checked once; then the raw read and the two downloads are timed in turn, DOWNLOADS
    rounds, so that the machine's drift over the run weighs on the reference and the downloads alike."""
    megabytes = log["bytes"] / 1e6
    paths = {output: logs_path(log["task_id"], format=output) for output in ("text", "json")}
    exact = {output: checked(reader, path, output, log) for output, path in paths.items()}

    def raw() -> dict:
        try:
            return raw_read(bench.database_url, log["task_id"])
        except psycopg2.Error as error:
            return {"error": f"raw read: {str(error).strip().splitlines()[0]}"}

    def download(path: str) -> dict:
        # timed as the raw read is: the body is counted and dropped, never kept or hashed
        return reader.get(path, Unhashed())

    measures = {"raw": raw, **{output: partial(download, path) for output, path in paths.items()}}
    answers: dict[str, list[dict]] = {name: [] for name in measures}
    for _ in range(DOWNLOADS):
        for name, measure in measures.items():
            answers[name].append(measure())
    found = {"raw": rate(answers["raw"], megabytes)}
    if "mb_per_s" in found["raw"]:
        found["raw"]["chars"] = answers["raw"][0]["chars"]
    for output in paths:
        found[output] = {**rate(answers[output], megabytes), "exact": exact[output]}
        found[output]["body_bytes"] = answers[output][0]["bytes"]
        if "mb_per_s" in found["raw"] and "mb_per_s" in found[output]:
            found[output]["ratio"] = round(found[output]["mb_per_s"] / found["raw"]["mb_per_s"], 2)
    return found


def rate(answers: list[dict], megabytes: float) -> dict:
    """MB/s of the median seconds, or the first failure's error."""
    failed = [answer for answer in answers if "error" in answer or answer.get("status", 200) != 200]
    if failed:
        return {"error": failed[0].get("error") or failure(failed[0])}
    seconds = statistics.median(answer["seconds"] for answer in answers)
    return {"mb_per_s": round(megabytes / seconds, 1)}


def checked(reader: HttpReader, path: str, output: str, log: dict) -> bool:
    """Whether one GET of `path` is the log byte for byte (JSON: the entry's string, and its `lines`
    the log's line count)."""
    digest = JsonLogDigest() if output == "json" else hashlib.sha256()
    answer = reader.get(path, digest)
    if output == "json":
        result = digest.result()
        lines = result.get("fields", {}).get("lines")
        return answer["status"] == 200 and (result["sha256"], lines) == (
            log["digest"]["json_sha256"],
            log["lines"],
        )
    return answer["status"] == 200 and answer["sha256"] == log["digest"]["sha256"]


# --- 2. line access beside the fake cluster's own tail ---


def line_queries(kube: RemoteCluster, log: dict) -> dict:
    """name -> (query parameters, {interpretation: expected {"sha256", "lines"}})."""
    middle, near_end = log["lines"] // 2, max(0, log["lines"] - LIMIT - 500)
    (since,) = kube.call("stamps", pod=log["pod"], lines=[middle])
    until = since + WINDOW_NS
    expected = kube.call(
        "expect",
        pod=log["pod"],
        queries={
            "tail": {"tail": TAIL},
            "since closed": {"since": since, "until": until, "closed": True},
            "since open": {"since": since, "until": until, "closed": False},
            **{
                f"{name} {base}-based": {"start": line - base, "count": LIMIT}
                for name, line in (("middle", middle), ("end", near_end))
                for base in (0, 1)
            },
        },
    )
    candidates = lambda prefix: {k: v for k, v in expected.items() if k.startswith(prefix)}  # noqa: E731
    return {
        "tail": ({"tail": TAIL}, candidates("tail")),
        "since": ({"since": format_nano(since), "until": format_nano(until)}, candidates("since")),
        "middle": ({"from_line": middle, "limit": LIMIT}, candidates("middle")),
        "end": ({"from_line": near_end, "limit": LIMIT}, candidates("end")),
    }


def line_access(kube: RemoteCluster, reader: HttpReader, fake: HttpReader, logs: dict) -> dict:
    """Every line query (format=text) on each of `logs` (name -> log), and the fake's tailLines beside
    tail. Each query is checked once on every log, then timed REPEAT times taking the logs in turn, so
    that whatever else the machine does meanwhile weighs on every log alike (timed one log after the
    other, the ratio between them moved by 1.5 from run to run with the machine alone)."""
    found: dict = {name: {} for name in logs}
    queries = {name: line_queries(kube, log) for name, log in logs.items()}
    for query_name in next(iter(queries.values())):
        paths, firsts = {}, {}
        for name, log in logs.items():
            query, expected = queries[name][query_name]
            paths[name] = logs_path(log["task_id"], format="text", **query)
            firsts[name] = (reader.get(paths[name], keep=True), expected)
        times: dict = {name: [] for name in logs}
        for _ in range(REPEAT):
            for name in logs:
                times[name].append(reader.get(paths[name])["seconds"])
        for name, (first, expected) in firsts.items():
            found[name][query_name] = checked_times(first, expected, times[name])
    for name, log in logs.items():
        path = (
            f"/api/v1/namespaces/argo/pods/{log['pod']}/log?"
            f"container=main&tailLines={TAIL}&timestamps=true"
        )
        fake_times = [fake.get(path)["seconds"] for _ in range(REPEAT + 1)][1:]
        found[name]["fake_tail"] = milliseconds(fake_times)
    return found


def checked_times(first: dict, expected: dict, times: list[float]) -> dict:
    """The figures of one query on one log: which interpretation its first answer matched, and times."""
    if first["status"] != 200:
        return {"error": failure(first)}
    matches = [name for name, want in expected.items() if want["sha256"] == first["sha256"]]
    return {
        **milliseconds(times),
        "lines": first["body"].count(b"\n"),
        "expected_lines": sorted({want["lines"] for want in expected.values()}),
        "exact": matches[0] if matches else None,
    }


# --- 3. grep beside GNU grep ---


def grep_run(bench: Bench, kube: RemoteCluster, reader: HttpReader, log: dict) -> dict:
    """MB/s of log scanned by `grep=RARE_WORD` (the log's bytes / response time) and by `grep -c`."""
    path = os.path.join(bench.directory, f"{log['pod']}.log")
    kube.call("save", pod=log["pod"], path=path)
    try:
        command = ["grep", "-c", RARE_WORD, path]
        subprocess.run(command, capture_output=True)  # the file into the page cache

        def gnu():
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            return {"seconds": time.perf_counter() - began, "count": int(done.stdout or 0)}

        reference = timed(gnu)
    finally:
        os.remove(path)
    megabytes = log["bytes"] / 1e6
    found = {
        "word": RARE_WORD,
        "gnu": {
            "mb_per_s": round(megabytes / reference["seconds"], 1),
            "count": reference["count"],
        },
    }
    query = logs_path(log["task_id"], format="text", grep=RARE_WORD)
    answer = timed(lambda: reader.get(query, keep=True))
    if answer["status"] != 200:
        return {**found, "error": failure(answer)}
    lines = answer["body"].count(b"\n")
    found.update(
        mb_per_s=round(megabytes / answer["seconds"], 1),
        lines=lines,
        exact=lines == reference["count"],
        ratio=round(megabytes / answer["seconds"] / found["gnu"]["mb_per_s"], 3),
    )
    return found


# --- the run ---


def fake_reader(kube: RemoteCluster) -> HttpReader:
    """An HTTP client of the fake API server, with the token of its kubeconfig."""
    with open(kube.kubeconfig) as file:
        token = yaml.safe_load(file)["users"][0]["user"]["token"]
    return HttpReader(urllib.parse.urlsplit(kube.url).port, {"Authorization": f"Bearer {token}"})


def measure_stored(bench, kube, service: Service, logs: dict) -> dict:
    """Parts 1 to 3 on the stored logs, with the CPU of every party over them."""
    reader = HttpReader(service.port)
    cpu = procstat.CpuWindow(
        {
            "worker": lambda: [service.worker_pid],
            "clients": lambda: [os.getpid()],
            "fake_k8s": lambda: [kube.pid],
            "postgres": bench.postgres_pids,
        }
    ).start()
    found = {
        "downloads": downloads(bench, reader, logs["download"]),
        "lines": line_access(
            kube, reader, fake_reader(kube), {name: logs[name] for name in ("small", "large")}
        ),
        "grep": grep_run(bench, kube, reader, logs["download"]),
    }
    return {**found, "cpu": cpu.stop()}


def pages_run(bench: Bench, download_bytes: int, line_bytes: tuple, random_bytes: int) -> dict:
    """Store the logs in a fresh database through a fresh worker, then measure them."""
    recreate_database()
    specs = {
        "download": ("realistic", download_bytes, 1),
        "random": ("random", random_bytes, 2),
        "small": ("realistic", line_bytes[0], 3),
        "large": ("realistic", line_bytes[1], 4),
    }
    with RemoteCluster(bench.directory) as kube:
        began = time.monotonic()
        logs = {name: new_log(kube, *spec) for name, spec in specs.items()}
        fill_s = time.monotonic() - began
        with bench.service(
            "tasklogs", kubeconfig=kube.kubeconfig, environment=SERVICE_ENVIRONMENT
        ) as service:
            reader = HttpReader(service.port)
            for log in logs.values():
                log["stored"] = store(bench, reader, log)
            measured = measure_stored(bench, kube, service, logs)
            health = service_health(service)
    for log in logs.values():
        log.pop("digest")
    return {
        "kind": "pages",
        "service": "tasklogs",
        "fill_s": round(fill_s, 1),
        "logs": logs,
        **measured,
        "health": health,
    }
