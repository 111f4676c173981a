"""The measurements. Each run starts a fresh service (one gunicorn gevent worker), a fresh task on the fake
cluster and fresh clients, and returns a plain dict that `bench.report` turns into the table."""

import hashlib
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import create_engine, text

from testkit.databases import psycopg2_url
from testkit.waiting import wait_for

from . import procstat
from .cluster import CONTAINER, BenchCluster, SteadyWriter, hex_lines, timed_line
from .fleet import ClientFleet
from .profiling import Profile, gc_pauses
from .servers import ROOT, Service
from .walmeter import WalMeter
from .wsclients import outcome_key

HEX_LINE_CHARS = 100  # random hex characters per line in the WAL runs (plus "\n")
WAL_PIECES_PER_SECOND = 20  # the WAL runs write their log in this many pieces per second
SETTLE = 1.0  # seconds between the last client's snapshot and the first timed line
WARM_UP = 1.0  # seconds of log writing before a resources window opens
SERVICE_WARNINGS = re.compile(r"WARNING|ERROR|Traceback|CRITICAL")


@dataclass
class Bench:
    """What every run shares: the fake cluster, the database, a scratch directory and the options."""

    cluster: BenchCluster
    database_url: str
    directory: str
    client_processes: int = 1
    connect_concurrency: int = 50
    tasklogs_root: str = ROOT
    profile_dir: str | None = None  # --profile: py-spy output goes here
    gc_probe: bool = False
    runs: int = 0
    _postmaster: int | None = field(default=None, repr=False)

    def log_base(self, name: str) -> str:
        """A fresh path prefix in the scratch directory for one process's logs (`.log`, `.gc`)."""
        self.runs += 1
        return os.path.join(self.directory, f"{self.runs:02d}-{name}")

    def service(
        self, name: str, kubeconfig: str | None = None, environment: dict | None = None
    ) -> Service:
        """A fresh service on the bench database and the in-process fake cluster (or the one of
        `kubeconfig`), with `environment` added to its settings."""
        log = self.log_base(name)
        return Service(
            name,
            self.database_url,
            kubeconfig or self.cluster.kubeconfig,
            log + ".log",
            self.tasklogs_root,
            gc_log=log + ".gc" if self.gc_probe else None,
            environment=environment,
        )

    def sql(self, statement: str, autocommit: bool = False):
        """Run one statement on the bench database; the first column of the first row."""
        engine = create_engine(
            psycopg2_url(self.database_url),
            isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
        )
        try:
            with engine.begin() as connection:
                result = connection.execute(text(statement))
                row = result.first() if result.returns_rows else None
                return row[0] if row else None
        finally:
            engine.dispose()

    def postgres_pids(self) -> list[int]:
        """The PostgreSQL server's processes: its postmaster and every child (backends, writers,
        checkpointer)."""
        if self._postmaster is None:
            checkpointer = self.sql(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
            )
            self._postmaster = procstat.parent(checkpointer)
        return [self._postmaster, *procstat.children(self._postmaster)]

    def listeners(self) -> int:
        """Connections LISTENing on the bench database: one per tasklogs live-tail engine (0 for the
        baseline)."""
        return self.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query ILIKE 'LISTEN%'"
        )


# --- pieces every run uses ---


def disk_bytes_sql(*names: str) -> str:
    """SQL for the bytes on disk of these tables (with their TOAST and indexes) or indexes; for a
    partitioned one, its partitions' (the parent's own size is 0: `log_pages` is partitioned by day)."""
    trees = " UNION ALL ".join(
        f"SELECT relid FROM pg_partition_tree(to_regclass('{name}'))" for name in names
    )
    return f"SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint FROM ({trees}) AS tree"


@contextmanager
def tail_clients(bench: Bench, service: Service, task_id: str, viewers: int, latency: bool = True):
    """(the client fleet, its connect summary) once every client has its snapshot."""
    fleet = ClientFleet(
        service.ws_url(task_id),
        viewers,
        processes=bench.client_processes,
        concurrency=bench.connect_concurrency,
        latency=latency,
    )
    try:
        yield fleet, fleet.wait_connected()
    finally:
        fleet.close()


def observe(
    bench: Bench, service: Service, fleet: ClientFleet, seconds: float, profile: str | None = None
) -> dict:
    """Watch a running tail for `seconds`: CPU of every party, upstream requests, WAL (server-wide), the
    worker's memory, its engines (LISTEN connections), its GC pauses (--gc-probe) and a py-spy profile
    (`profile` names it)."""
    kube = bench.cluster.kube
    kube.reset_requests()
    cpu = procstat.CpuWindow(
        {
            "worker": lambda: [service.worker_pid],
            "clients": lambda: fleet.pids,
            "fake_k8s": lambda: [
                os.getpid()
            ],  # the fake cluster and the log writer live in the bench process
            "postgres": bench.postgres_pids,
        }
    ).start()
    began, wal_before = time.time(), bench.sql("SELECT pg_current_wal_lsn()")
    spy = (
        Profile(
            service.worker_pid, seconds, os.path.join(bench.profile_dir, f"profile-{profile}.txt")
        )
        if profile and bench.profile_dir
        else None
    )
    time.sleep(seconds)
    requests = {
        "pods_log": kube.count(verb="get", resource="pods/log"),
        "workflows": kube.count(resource="workflows"),
        "pods": kube.count(resource="pods"),
        "total": len(kube.requests),
        "open_log_streams": kube.open_streams(),
    }
    wal = int(bench.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{wal_before}')"))
    return {
        "cpu": cpu.stop(),
        "requests": requests,
        "server_wal_bytes": wal,
        "rss_mb": round(procstat.rss_mb(service.worker_pid), 1),
        "listeners": bench.listeners(),
        "gc": gc_pauses(service.gc_log, service.worker_pid, began, time.time()),
        "profile": spy.summary() if spy else None,
    }


def finish_and_collect(
    bench: Bench, task, fleet: ClientFleet, timeout: float = 60
) -> tuple[dict, float]:
    """End the task; (the clients' result, seconds from the end of the task to the last client's close)."""
    bench.cluster.finish(task)
    began = time.monotonic()
    result = fleet.result(timeout)
    return result, round(time.monotonic() - began, 2)


def outcome(bench: Bench, task, result: dict, service: Service) -> dict:
    """What the clients got, checked against the fake's logs, and how the service fared."""
    expected = {
        pod: hashlib.sha256(log.encode()).hexdigest()
        for pod, log in bench.cluster.log_text(task).items()
    }
    with open(service.log_path, errors="replace") as log:
        warnings = [line.strip() for line in log if SERVICE_WARNINGS.search(line)]
    return {
        "clients": result["clients"],
        "exact": result["outcomes"].get(outcome_key(True, expected), 0),
        "close_codes": result["close_codes"],
        "problems": result["problems"],
        "frames": result["frames"],
        "latency_ms": percentiles(result["latencies_us"]),
        "health": {
            "worker_survived": service.alive(),
            "warnings": len(warnings),
            "first_warnings": warnings[:3],
        },
    }


def percentiles(values: list[int]) -> dict:
    """p50, p90, p99, max of microsecond values, in milliseconds."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 1)  # noqa: E731
    return {
        "count": len(ordered),
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": round(ordered[-1] / 1000, 1),
    }


# --- 1 and 2: line latency and upstream requests ---


def tail_run(
    bench: Bench, name: str, viewers: int, rate: float, seconds: float, window: float
) -> dict:
    """`viewers` clients tail a 2-pod task while `rate` timed lines per second are written for `seconds`;
    the observation window (upstream requests, CPU) is `window` seconds in the middle of the writing."""
    task = bench.cluster.new_task(("a", "b"))
    with bench.service(name) as service:
        return {
            "kind": "tail",
            "service": name,
            **timed_tail(bench, service, task, viewers, rate, seconds, window),
        }


def timed_tail(
    bench: Bench, service: Service, task, viewers: int, rate: float, seconds: float, window: float
) -> dict:
    """`viewers` clients of `service` tail `task` while timed lines are written; the task ends; all
    checked."""
    with tail_clients(bench, service, task.task_id, viewers) as (fleet, connected):
        time.sleep(SETTLE)
        writer = SteadyWriter(
            bench.cluster.kube, list(task.pods.values()), rate, int(rate * seconds), timed_line
        )
        writer.start()
        time.sleep(max(0.0, (seconds - window) / 2))
        observed = observe(bench, service, fleet, window)
        writer.join()
        result, closing = finish_and_collect(bench, task, fleet)
        checked = outcome(bench, task, result, service)
    return {
        "viewers": viewers,
        "rate": rate,
        "seconds": seconds,
        "window": window,
        "connected": connected,
        "lines_written": writer.written,
        "writer_late_s": round(writer.late, 3),
        "complete_after_s": closing,
        **observed,
        **checked,
    }


# --- 3: WAL per log byte ---


def wal_run(bench: Bench, name: str, size: int, seconds: float) -> dict:
    """One viewer tails a 1-pod task whose log grows to `size` bytes of random hex lines over `seconds`;
    WAL is measured from just before the first byte to the final save (the `complete` frame)."""
    task = bench.cluster.new_task(("a",))
    pieces = int(WAL_PIECES_PER_SECOND * seconds)
    lines = max(1, round(size / pieces / (HEX_LINE_CHARS + 1)))
    with (
        bench.service(name) as service,
        tail_clients(bench, service, task.task_id, 1, latency=False) as (fleet, _),
    ):
        bench.sql(
            "VACUUM ANALYZE", autocommit=True
        )  # so that autovacuum has nothing left to do meanwhile
        meter = WalMeter(bench.database_url).start()
        SteadyWriter(
            bench.cluster.kube,
            [task.pod("a")],
            WAL_PIECES_PER_SECOND,
            pieces,
            hex_lines(HEX_LINE_CHARS, lines),
        ).run()
        log_bytes = bench.cluster.log_bytes(task)
        captured = None  # the baseline has no page index to wait on
        if name == "tasklogs":
            captured = wait_for(lambda: stored_chars(bench, task) >= log_bytes, 30, 0.2)
        meter.mark()  # the capture's share: the pod running, up to the last line stored
        result, closing = finish_and_collect(bench, task, fleet)
        wal = meter.stop()
        checked = outcome(bench, task, result, service)
    measured = _measured(wal)
    capture = _measured(wal["before_mark"])
    return {
        "kind": "wal",
        "service": name,
        "size": size,
        "log_bytes": log_bytes,
        "seconds": seconds,
        "wal": wal,
        "wal_per_log_byte": round(measured / log_bytes, 2),
        "server_wal_per_log_byte": round(wal["server_bytes"] / log_bytes, 2),
        # tasklogs: up to the last line stored, then the final save (merge, seal, search index)
        "capture_wal_per_log_byte": round(capture / log_bytes, 2),
        "final_save_wal_per_log_byte": round((measured - capture) / log_bytes, 2),
        "captured_before_mark": captured,
        "stored_exact": stored_exact(bench, name, task),
        "complete_after_s": closing,
        **checked,
    }


def _measured(wal: dict) -> int:
    """The database's own WAL bytes where pg_waldump could attribute them, else the server's."""
    return wal["database_bytes"] if wal["database_bytes"] is not None else wal["server_bytes"]


def stored_chars(bench: Bench, task) -> int:
    """Where the stored pages of the task's pod log end (characters), read from the page index."""
    where = f"l.task_id = '{task.task_id}' AND l.pod_name = '{task.pod('a')}'"
    return int(
        bench.sql(
            "SELECT coalesce(max(p.end_offset), 0) FROM log_pages p"
            f" JOIN task_logs l ON l.id = p.log_id WHERE {where}"
        )
    )


def stored_exact(bench: Bench, name: str, task) -> bool:
    """The database holds the pod's whole log (tasklogs: its pages, read with tasklogs_log_text)."""
    where = f"WHERE task_id = '{task.task_id}' AND pod_name = '{task.pod('a')}'"
    if name == "tasklogs":
        stored = bench.sql(f"SELECT tasklogs_log_text(id) FROM task_logs {where}")
    else:
        stored = bench.sql(f"SELECT logs FROM baseline_task_logs {where}")
    return stored == bench.cluster.log_text(task)[f"{task.pod('a')}/{CONTAINER}"]


# --- 4: memory and CPU of one worker ---


def resources_run(bench: Bench, name: str, viewers: int, rate: float, window: float) -> dict:
    """RSS of the worker before any client and while `viewers` tail one task; its CPU over `window` seconds
    of `rate` lines per second (and a py-spy profile of that window with --profile)."""
    task = bench.cluster.new_task(("a", "b"))
    with bench.service(name) as service:
        idle = procstat.rss_mb(service.worker_pid)
        with tail_clients(bench, service, task.task_id, viewers) as (fleet, connected):
            writer = SteadyWriter(
                bench.cluster.kube,
                list(task.pods.values()),
                rate,
                int(rate * (WARM_UP + window)),
                timed_line,
            )
            writer.start()
            time.sleep(WARM_UP)
            observed = observe(bench, service, fleet, window, profile=f"{name}-{viewers}-viewers")
            writer.join()
            result, _ = finish_and_collect(bench, task, fleet)
            checked = outcome(bench, task, result, service)
    return {
        "kind": "resources",
        "service": name,
        "viewers": viewers,
        "rate": rate,
        "window": window,
        "connected": connected,
        "rss_idle_mb": round(idle, 1),
        "rss_per_viewer_kb": round((observed["rss_mb"] - idle) * 1024 / viewers, 1),
        **observed,
        **checked,
    }
