"""`python -m bench.ingest [--seconds S] [--logs N] [--writers W]`: how many log bytes per second one
PostgreSQL core takes into pages, through the service's own write path, for docs/scaling.md.

W writer threads each own N/W logs and do what the journal writer does every 0.1 s: cut the text
captured since (realistic lines, about 2 KB per log per round) into pages continuing where each log's
stored text ends (`pages.paginate`) and commit them in one transaction (`UnitOfWork.append_runs`, the
compare-and-append of the capture, with its NOTIFY). Measured over S seconds: log bytes stored, commits,
the PostgreSQL server's CPU (postmaster and every child), this process's CPU, and the WAL written. The
table divides the bytes by the server's CPU: log bytes per second per PostgreSQL core.
"""

import argparse
import os
import threading
import time

import psycopg2

from bench import procstat
from bench.loglines import realistic_lines
from tasklogs.identity import LogId, TaskRef
from tasklogs.logstream import Position
from tasklogs.pages import LogEnd, paginate
from tasklogs.store.repository import PageRun
from testkit.apps import dispose, make_app
from testkit.databases import recreate_database

ROUND_SECONDS = 0.1  # the journal writer's interval
BYTES_PER_ROUND = 2000  # per log per round: about 20 KB/s per log, a chatty step


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def postgres_pids(url: str) -> list[int]:
    with psycopg2.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
        postmaster = procstat.parent(cursor.fetchone()[0])
    return [postmaster, *procstat.children(postmaster)]


def wal_lsn(url: str) -> str:
    with psycopg2.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        return cursor.fetchone()[0]


def wal_between(url: str, start: str, end: str) -> int:
    with psycopg2.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(%s, %s)", (end, start))
        return int(cursor.fetchone()[0])


class Writer(threading.Thread):
    """One journal writer's work for its logs, round after round, until `stop`."""

    def __init__(self, units, logs: list[tuple[TaskRef, int]], seed: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.units, self.logs, self.stop_event = units, logs, stop
        self.ends = {log_id: LogEnd() for _, log_id in logs}
        self.lines = realistic_lines(seed)
        self.stored = self.commits = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            began = time.monotonic()
            runs = []
            for _, log_id in self.logs:
                text, stamps, size = [], [], 0
                for stamp, line in self.lines:
                    text.append(line)
                    stamps.append(stamp)
                    size += len(line)
                    if size >= BYTES_PER_ROUND:
                        break
                pages = paginate(self.ends[log_id], "".join(text), stamps, Position())
                runs.append(PageRun(log_id, pages))
            with self.units() as uow:
                written = uow.append_runs(runs, {task for task, _ in self.logs})
                uow.commit()
            for run in runs:
                if (run.log_id, run.start) in written:
                    self.ends[run.log_id] = run.pages[-1].end
                    self.stored += sum(page.byte_count for page in run.pages)
            self.commits += 1
            self.stop_event.wait(max(0.0, ROUND_SECONDS - (time.monotonic() - began)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--logs", type=int, default=600)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument(
        "--without-search-index",
        action="store_true",
        help="drop the pg_trgm index first, to see what it costs the write path",
    )
    args = parser.parse_args()
    url = recreate_database(os.environ.get("TASKLOGS_BENCH_DATABASE", "tasklogs_bench_ingest"))
    app = make_app(url, None, TASKLOGS_DB_POOL_SIZE=args.writers + 2)
    services = app.extensions["tasklogs"]
    if args.without_search_index:
        with psycopg2.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS ix_log_pages_text_trgm")
    try:
        logs = []
        with services.units() as uow:
            for index in range(args.logs):
                task = TaskRef("argo", f"ingest-{index // 3}")
                log = LogId(f"node-{index}", f"pod-{index}", "main")
                ids = uow.record_phases(task, "Running", [(log, "Running")])
                logs.append((task, ids[log]))
            uow.commit()
        stop = threading.Event()
        shares = [logs[i :: args.writers] for i in range(args.writers)]
        writers = [Writer(services.units, share, i, stop) for i, share in enumerate(shares)]
        pids = postgres_pids(url)
        window = procstat.CpuWindow(
            {"postgres": lambda: postgres_pids(url), "writers": lambda: [os.getpid()]}
        ).start()
        start_lsn = wal_lsn(url)
        for writer in writers:
            writer.start()
        time.sleep(args.seconds)
        stop.set()
        for writer in writers:
            writer.join()
        cpu = window.stop()
        wal = wal_between(url, start_lsn, wal_lsn(url))
    finally:
        dispose(app)
    stored = sum(w.stored for w in writers)
    commits = sum(w.commits for w in writers)
    seconds = cpu["seconds"]
    per_core = stored / seconds / max(1e-9, cpu["postgres"] / 100)
    rows = [
        ("logs written, writers", f"{args.logs}, {args.writers} (one commit per writer per 0.1 s)"),
        (
            "log bytes stored",
            f"{stored / 1e6:.1f} MB in {seconds:.1f} s = {stored / seconds / 1e6:.2f} MB/s",
        ),
        ("commits", f"{commits} ({commits / seconds:.0f}/s)"),
        (
            "PostgreSQL CPU",
            f"{cpu['postgres']:.0f}% of a core ({len(pids)} processes at the start)",
        ),
        ("writer process CPU", f"{cpu['writers']:.0f}% of a core (paginating and sending)"),
        (
            "machine busy",
            f"{cpu['machine']:.0f}% of both cores, other processes {cpu['other']:.0f}%",
        ),
        ("log bytes per s per PostgreSQL core", f"{per_core / 1e6:.1f} MB/s"),
        ("WAL bytes per log byte", f"{wal / max(1, stored):.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement':<{width}} | value")
    print(f"{'-' * width}-|{'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")


if __name__ == "__main__":
    main()
