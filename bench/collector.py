"""The collector's capture lag, CPU and memory under many concurrent workflows (`--only collector`).

One `flask --app wsgi collect` process captures N running workflows of 3 pods each while the fake cluster
(in its own process, `bench.kubeproc`) writes `rate` timed lines per second to every pod. A sampler in the
bench process reads the journal (`log_pages`) as it grows and measures each line's capture lag. Then the
workflows end, the collector runs the final saves, and every pod's stored log is fetched over REST and
compared with what the fake holds.
"""

import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psycopg2

from . import procstat
from .kubeproc import RemoteCluster
from .measure import SERVICE_WARNINGS, Bench, percentiles, timed_tail
from .profiling import GC_PROBE, Profile, gc_pauses
from .servers import recreate_database

FLASK = os.path.join(os.path.dirname(sys.executable), "flask")
SAMPLE_INTERVAL = 0.05  # seconds between the sampler's reads of the journal
LAG_PARTS = 6  # the lag-over-time row cuts the writing's span in this many parts
STARTUP_TIMEOUT = 180  # seconds for the collector to open every follow stream
DRAIN_TIMEOUT = 120  # seconds after the last write for every line to reach the journal
FINAL_SAVE_TIMEOUT = 300  # seconds after the workflows ended for every final save
NEW_ROWS = (
    "SELECT id, log_id, text, (extract(epoch FROM created_at) * 1e6)::bigint FROM log_pages "
    "WHERE id > %s ORDER BY id"
)
LATE_ROWS = (
    "SELECT id, log_id, text, (extract(epoch FROM created_at) * 1e6)::bigint FROM log_pages "
    "WHERE id > %s AND id <> ALL(%s::bigint[]) ORDER BY id"
)


class JournalSampler(threading.Thread):
    """Reads the journal's new rows every `interval` seconds and, for every line they complete, records
    its capture lag: the wall-clock time just before the read that first returned the line, minus the
    write time written inside the line.

    A read returns the rows committed before its snapshot, so the lag measured is the time from the write
    to the commit plus 0 to `interval` (plus the query's own few milliseconds). `created_us` holds, per
    line, the lag to the `created_at` of its row instead: the collector stamps it while building the row,
    before the commit, so it is a lower bound.

    Rows are read in id order after the last id seen (`after_id` at first): the collector has one journal
    writer, whose flushes commit one after the other, so ids grow in commit order."""

    def __init__(
        self,
        database_url: str,
        after_id: int = 0,
        interval: float = SAMPLE_INTERVAL,
        reorder: int = 0,
    ):
        """`reorder` > 0: several writers (collectors) commit, so ids need not grow in commit order;
        every read looks back that many ids and skips the rows it has seen."""
        super().__init__(name="journal-sampler", daemon=True)
        self.reorder = reorder
        self._after = after_id  # rows up to here were there before the window: never read
        self._seen: set[int] = set()
        self.by_log: dict[int, list[int]] = collections.defaultdict(list)  # log_id -> its lags
        self.database_url, self.interval = database_url, interval
        self.written_us: list[int] = []  # per line: its write time
        self.visible_us: list[int] = []  # per line: its capture lag
        self.created_us: list[int] = []  # per line: its lag to its row's created_at
        self.lines: collections.Counter = collections.Counter()  # log_id -> complete lines seen
        self.polls = self.rows = 0
        self.error: str | None = None
        self._partial: dict[int, str] = {}  # log_id -> its text after the last newline seen
        self._last_id = after_id
        self._stopped = threading.Event()

    @property
    def total_lines(self) -> int:
        return sum(self.lines.values())

    def run(self) -> None:
        connection = psycopg2.connect(self.database_url)
        connection.autocommit = True
        try:
            while not self._stopped.is_set():
                began = time.monotonic()
                self._poll(connection)
                self._stopped.wait(max(0.0, self.interval - (time.monotonic() - began)))
        except Exception as error:  # noqa: BLE001 - reported with the run
            self.error = f"{type(error).__name__}: {error}"
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopped.set()
        self.join()

    def _poll(self, connection) -> None:
        seen_us = time.time_ns() // 1000
        floor = max(self._after, self._last_id - self.reorder)
        with connection.cursor() as cursor:
            if self.reorder:
                self._seen = {row_id for row_id in self._seen if row_id > floor}
                cursor.execute(LATE_ROWS, (floor, list(self._seen)))
            else:
                cursor.execute(NEW_ROWS, (self._last_id,))
            rows = cursor.fetchall()
        for row_id, log_id, data, created_us in rows:
            self._take(log_id, data, seen_us, created_us)
            self._last_id = max(self._last_id, row_id)
            if self.reorder:
                self._seen.add(row_id)
        self.polls, self.rows = self.polls + 1, self.rows + len(rows)

    def _take(self, log_id: int, data: str, seen_us: int, created_us: int) -> None:
        """The lines of one row: `<seq> <write time ns> <filler>` each (a row may end inside a line)."""
        lines = (self._partial.pop(log_id, "") + data).split("\n")
        self._partial[log_id] = lines.pop()
        for line in lines:
            written_us = int(line.split(" ", 2)[1]) // 1000
            self.written_us.append(written_us)
            self.visible_us.append(seen_us - written_us)
            self.created_us.append(created_us - written_us)
            self.by_log[log_id].append(seen_us - written_us)
        self.lines[log_id] += len(lines)

    def lag_p99_over_time(self, parts: int = LAG_PARTS) -> tuple[float, list[float]]:
        """(seconds per part, p99 lag in s of the lines written in each part): the writing's span cut in
        `parts`."""
        if not self.written_us:
            return 0.0, []
        first = min(self.written_us)
        width = max(1, (max(self.written_us) - first) // parts + 1)
        buckets: list[list[int]] = [[] for _ in range(parts)]
        for written, lag in zip(self.written_us, self.visible_us, strict=True):
            buckets[(written - first) // width].append(lag)
        return width / 1e6, [percentiles(bucket).get("p99", 0) / 1000 for bucket in buckets]


# --- the collector process ---


def start_collector(bench: Bench, kubeconfig: str, log_base: str) -> subprocess.Popen:
    """`flask --app wsgi collect` from the measured source tree, with the service's defaults."""
    environment = {
        **os.environ,
        "DATABASE_URL": bench.database_url,
        "KUBECONFIG": kubeconfig,
        "TASKLOGS_NAMESPACE": "argo",
        "TASKLOGS_LOG_LEVEL": "WARNING",
        "TASKLOGS_METRICS_PORT": "0",  # several collectors side by side (the shards runs)
        "PYTHONPATH": bench.tasklogs_root,
    }
    if bench.gc_probe:
        environment.update(
            PYTHONPATH=f"{GC_PROBE}:{bench.tasklogs_root}", BENCH_GC_LOG=log_base + ".gc"
        )
    with open(log_base + ".log", "ab") as log:
        return subprocess.Popen(
            [FLASK, "--app", "wsgi", "collect"],
            cwd=bench.tasklogs_root,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def finish_and_wait(bench, kube, tasks: list[dict]) -> bool:
    """End every task's workflow and wait until the final save of each has run."""
    kube.call("finish", task_ids=[task["task_id"] for task in tasks])
    return wait_for(
        lambda: bench.sql("SELECT count(*) FROM tasks WHERE complete") == len(tasks),
        FINAL_SAVE_TIMEOUT,
        interval=0.5,
    )


def stop_collector(process: subprocess.Popen) -> int:
    """SIGTERM (the collector flushes and exits); its exit code (-9 if it had to be killed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -9


def wait_for(condition, timeout: float, interval: float = 0.25) -> float | None:
    """Seconds until `condition()` held, or None after `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return round(time.monotonic() - began, 2)
        time.sleep(interval)
    return None


def collector_health(log_path: str, exit_code: int) -> dict:
    """Exit code after SIGTERM and the WARNING/ERROR lines of the collector's log."""
    with open(log_path, errors="replace") as log:
        warnings = [line.strip() for line in log if SERVICE_WARNINGS.search(line)]
    return {
        "worker_survived": exit_code == 0,
        "exit_code": exit_code,
        "warnings": len(warnings),
        "first_warnings": warnings[:3],
    }


# --- the journal, and what was stored ---


def stored_lines(bench: Bench) -> int:
    """Newlines in the whole journal: the lines the database holds, counted without the sampler."""
    return int(
        bench.sql(
            "SELECT coalesce(sum(length(text) - length(replace(text, E'\\n', ''))), 0) FROM log_pages"
        )
    )


def last_chunk_id(bench: Bench) -> int:
    return int(bench.sql("SELECT coalesce(max(id), 0) FROM log_pages"))


def verify_stored(bench: Bench, kube: RemoteCluster, tasks: list[dict]) -> dict:
    """Every task's REST answer (a fresh gunicorn worker): complete, from the database, and each pod's
    log byte for byte what the fake holds (SHA-256 of the text)."""
    expected = kube.call("digests", pods=[pod for task in tasks for pod in task["pods"]])
    with bench.service("tasklogs", kubeconfig=kube.kubeconfig) as service:

        def check(task: dict) -> tuple[int, bool, list[str]]:
            url = f"http://127.0.0.1:{service.port}/api/v1/tasks/{task['task_id']}/logs"
            with urllib.request.urlopen(url, timeout=120) as response:
                body = json.load(response)
            stored = {entry["pod"]: entry["logs"] for entry in body["logs"]}
            wrong = [
                pod
                for pod in task["pods"]
                if text_sha256(stored.get(pod)) != expected[pod]["sha256"]
            ]
            return (
                len(task["pods"]) - len(wrong),
                body["complete"] and body["source"] == "database",
                wrong,
            )

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(check, tasks))
    return {
        "pods_exact": sum(exact for exact, _, _ in answers),
        "pods": sum(len(t["pods"]) for t in tasks),
        "tasks_complete_from_database": sum(complete for _, complete, _ in answers),
        "tasks": len(tasks),
        "wrong_pods": [pod for _, _, wrong in answers for pod in wrong][:5],
        "bytes_expected": sum(digest["bytes"] for digest in expected.values()),
    }


def text_sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


# --- the run ---


def collector_run(
    bench: Bench, workflows: int, steps: int, rate: float, seconds: float, line_chars: int
) -> dict:
    """`workflows` running workflows of `steps` pods, `rate` lines/s to every pod for `seconds`, one
    collector.

    Before the window every pod gets one line and the bench waits until the journal holds them all (the
    collector's first save of each pod is done): the window measures the collector in its steady state."""
    recreate_database()
    with RemoteCluster(bench.directory) as kube:
        tasks = kube.call(
            "workflows", count=workflows, steps=[chr(ord("a") + i) for i in range(steps)]
        )
        pods = [pod for task in tasks for pod in task["pods"]]
        log_base = bench.log_base("collector")
        collector = start_collector(bench, kube.kubeconfig, log_base)
        rss = procstat.RssSampler(collector.pid, 0.5)
        rss.start()
        try:
            started = wait_for(
                lambda: collector.poll() is None and kube.call("open_streams") == len(pods),
                STARTUP_TIMEOUT,
            )
            if started is None:
                raise RuntimeError(
                    f"the collector did not open {len(pods)} follow streams; see {log_base}.log"
                )
            warm_up = warm_up_journal(bench, kube, pods, line_chars)
            captured = capture_window(
                bench, kube, collector.pid, log_base, pods, rate, seconds, line_chars
            )
            final_save = finish_and_wait(bench, kube, tasks)
        finally:
            exit_code = stop_collector(collector)
            rss.stop()
        verified = verify_stored(bench, kube, tasks)
    captured["rss_mb"].update(peak=round(rss.peak(), 1))
    return {
        "kind": "collector",
        "service": "tasklogs",
        "workflows": workflows,
        "pods": len(pods),
        "rate": rate,
        "seconds": seconds,
        "line_chars": line_chars,
        "startup_s": started,
        "warm_up_s": warm_up,
        "final_save_s": final_save,
        **captured,
        "verify": verified,
        "health": collector_health(log_base + ".log", exit_code),
    }


def collector_profile(bench: Bench, pid: int, seconds: float) -> Profile | None:
    """With --profile: py-spy samples the thread holding the GIL 20 times a second (more would slow the
    collector's hundreds of threads down noticeably)."""
    if not bench.profile_dir:
        return None
    return Profile(
        pid, seconds, os.path.join(bench.profile_dir, "profile-collector.txt"), rate=20, gil=True
    )


def warm_up_journal(
    bench: Bench, kube: RemoteCluster, pods: list[str], line_chars: int
) -> float | None:
    """One line to every pod; seconds until the journal holds them all."""
    kube.call("write", pods=pods, rate=1, seconds=1, line_chars=line_chars)
    return wait_for(lambda: stored_lines(bench) >= len(pods), DRAIN_TIMEOUT)


def capture_window(
    bench: Bench,
    kube: RemoteCluster,
    collector: int,
    log_base: str,
    pods: list[str],
    rate: float,
    seconds: float,
    line_chars: int,
) -> dict:
    """Write for `seconds` while sampling the journal; CPU and WAL over the writing, then wait (DRAIN_TIMEOUT
    at most) until the journal holds every line written."""
    sampler = JournalSampler(bench.database_url, after_id=last_chunk_id(bench))
    sampler.start()
    rss_ready = procstat.rss_mb(collector)
    cpu = procstat.CpuWindow(
        {
            "worker": lambda: [collector],
            "clients": lambda: [os.getpid()],
            "fake_k8s": lambda: [kube.pid],
            "postgres": bench.postgres_pids,
        }
    ).start()
    began, wal_before = time.time(), bench.sql("SELECT pg_current_wal_lsn()")
    spy = collector_profile(bench, collector, seconds)
    writer = kube.call("write", pods=pods, rate=rate, seconds=seconds, line_chars=line_chars)
    usage = cpu.stop()
    wal = int(bench.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{wal_before}')"))
    rss_end = procstat.rss_mb(collector)
    drain = wait_for(
        lambda: sampler.total_lines >= writer["lines"] or sampler.error is not None,
        DRAIN_TIMEOUT,
        interval=0.05,
    )
    sampler.stop()
    return {
        "writer": writer,
        "lines_written": writer["lines"],
        "lines_in_journal": stored_lines(bench) - len(pods),
        "drain_s": drain,
        **lag_summary(sampler),
        "cpu": usage,
        "server_wal_bytes": wal,
        "rss_mb": {"ready": round(rss_ready, 1), "end_of_window": round(rss_end, 1)},
        "gc": gc_pauses(
            log_base + ".gc" if bench.gc_probe else None, collector, began, time.time()
        ),
        "profile": spy.summary() if spy else None,
    }


def lag_summary(sampler: JournalSampler) -> dict:
    """What the sampler saw: lines, lag percentiles (ms), p99 lag over the writing (s), its own activity."""
    part_s, lag_per_part = sampler.lag_p99_over_time()
    return {
        "lines_captured": sampler.total_lines,
        "lag_ms": percentiles(sampler.visible_us),
        "lag_created_ms": percentiles(sampler.created_us),
        "lag_part_s": round(part_s, 2),
        "lag_p99_s_per_part": lag_per_part,
        "sampler": {
            "interval_s": sampler.interval,
            "polls": sampler.polls,
            "rows": sampler.rows,
            "error": sampler.error,
        },
    }


# --- a live tail that follows the collector's journal ---


def followed_tail_run(
    bench: Bench, viewers: int, rate: float, seconds: float, window: float
) -> dict:
    """The deployment with a collector: it captures a 2-pod task, and `viewers` clients of a web worker
    tail it. The worker opens no stream of its own: it follows the collector's journal (LISTEN/NOTIFY) and
    announces its viewers, so the collector commits that task's lines as soon as it reads them."""
    task = bench.cluster.new_task(("a", "b"))
    kube = bench.cluster.kube
    log_base = bench.log_base("followed-collector")
    collector = start_collector(bench, bench.cluster.kubeconfig, log_base)
    try:
        if (
            wait_for(lambda: collector.poll() is None and kube.open_streams() >= 2, STARTUP_TIMEOUT)
            is None
        ):
            raise RuntimeError(f"the collector did not follow the task; see {log_base}.log")
        with bench.service("tasklogs") as service:
            tail = timed_tail(bench, service, task, viewers, rate, seconds, window)
    finally:
        exit_code = stop_collector(collector)
    return {
        "kind": "followed",
        "service": "tasklogs",
        **tail,
        "collector_health": collector_health(log_base + ".log", exit_code),
    }
