"""Collector processes for the end-to-end tests and the benchmarks, and who holds which task's lease."""

import os
import subprocess
import sys

import psycopg2

from tasklogs.identity import TaskRef
from tasklogs.store.postgres import task_lock_key

from . import ROOT

FLASK = os.path.join(os.path.dirname(sys.executable), "flask")
LEASES = (
    "SELECT a.application_name, l.classid::bigint, l.objid::bigint FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND a.application_name LIKE 'tasklogs-leases-%%' AND l.database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database())"
)


def start_collector(env: dict, log_path: str, cwd: str = ROOT) -> subprocess.Popen:
    """`flask --app wsgi collect` with `env` added to this process's environment."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [FLASK, "--app", "wsgi", "collect"],
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )


def _signed(high: int, low: int) -> int:
    return int.from_bytes(((high << 32) | low).to_bytes(8, "big"), "big", signed=True)


def lease_holders(database_url: str, tasks: list[TaskRef]) -> dict[TaskRef, int]:
    """Each of `tasks` whose lease is held, with the OS pid of the process holding it (read from
    `pg_locks` and the lease connection's application name, `tasklogs-leases-<pid>-...`)."""
    by_key = {task_lock_key(task): task for task in tasks}
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(LEASES)
            rows = cursor.fetchall()
    finally:
        connection.close()
    held = {}
    for name, high, low in rows:
        task = by_key.get(_signed(high, low))
        if task is not None:
            held[task] = int(name.split("-")[2])
    return held


def forget_collectors(database_url: str) -> None:
    """Delete every row of `collectors` (a test's collectors start alone, whatever ran before)."""
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('collectors') IS NOT NULL")
            if cursor.fetchone()[0]:
                cursor.execute("DELETE FROM collectors")
    finally:
        connection.close()
