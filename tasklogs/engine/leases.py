"""Who captures a task: one process per task across workers and replicas.

A lease is a PostgreSQL session-level advisory lock, held on one dedicated connection per process. When
the process dies its connection closes and the locks are free at once, so another process takes over
within one poll interval. Without PostgreSQL (SQLite, or the database down) every process captures
for itself: the journal's compare-and-append keeps the stored log free of duplicates anyway.
"""

import logging
import os
import threading
import time
import uuid

from sqlalchemy import Engine as SqlEngine

from ..identity import TaskRef
from ..store import postgres
from ..store.postgres import Dedicated, task_lock_key

log = logging.getLogger(__name__)

PING_INTERVAL = 1.0  # seconds: how stale "our lease connection is alive" may be


class Leases:
    """This process's leases, on one dedicated connection."""

    def __init__(self, sa_engine: SqlEngine):
        self._engine = sa_engine
        self._shared = sa_engine.dialect.name == "postgresql"
        self._held: set[TaskRef] = set()
        self._lock = threading.Lock()
        self._name = f"tasklogs-leases-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._connection = Dedicated(
            sa_engine, lambda dbapi: postgres.prepare_lease_session(dbapi, self._name)
        )
        self._pinged = 0.0

    def acquire(self, task: TaskRef) -> bool | None:
        """True: this process captures the task. False: another does. None: nobody can tell."""
        if not self._shared:
            return True
        with self._lock:
            for _attempt in (
                1,
                2,
            ):  # a connection the server closed while idle gets one fresh retry
                try:
                    return self._acquire(task)
                except postgres.CONNECTION_ERRORS as error:  # the connection and its locks are gone
                    self._drop(error)
            return None

    def _acquire(self, task: TaskRef) -> bool:
        connection = self._connection.get()
        if task in self._held:
            if (
                time.monotonic() - self._pinged > PING_INTERVAL
            ):  # one ping vouches for every lease held
                postgres.ping(connection)
                self._pinged = time.monotonic()
            return True
        if postgres.try_lock(connection, task_lock_key(task)):
            self._held.add(task)
            return True
        return False

    def release(self, task: TaskRef) -> None:
        """Give the task up (its capture stopped)."""
        if not self._shared:
            return
        with self._lock:
            if task not in self._held:
                return
            self._held.discard(task)
            try:
                postgres.unlock(self._connection.get(), task_lock_key(task))
            except postgres.CONNECTION_ERRORS as error:
                self._drop(error)

    def close(self) -> None:
        with self._lock:
            self._drop(None)

    def _drop(self, error) -> None:
        if error is not None and self._held:
            log.warning(
                "lost the lease connection (%s); %d task(s) will be re-elected",
                type(error).__name__,
                len(self._held),
            )
        self._held.clear()
        self._connection.drop()
