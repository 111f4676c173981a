"""A throw-away SQLite store and `Services` for unit tests: no PostgreSQL, no app.

The database is a file (WAL mode), not `sqlite://` on a `StaticPool`: the engine's threads (journal
writer, drivers, captures) each run their own transactions, and on one shared connection a rollback in
one thread would undo another's open transaction. With a file each session gets its own connection,
and SQLite serialises the writers (pysqlite begins a transaction only at the first write, so a writer
waits on the busy timeout instead of failing on a stale read snapshot).

`MemoryStore.down = True` makes every unit of work fail the way an unreachable database does (an
`OperationalError` on first use, which the unit of work turns into StoreUnavailable).
"""

import functools
import os

from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from tasklogs.bootstrap import Services
from tasklogs.cluster import Cluster
from tasklogs.config import Settings, load_config
from tasklogs.extensions import db
from tasklogs.store import models  # noqa: F401 - registers the tables on db.metadata
from tasklogs.store.unit_of_work import UnitOfWork

FAST = {
    "TASKLOGS_POLL_INTERVAL": "0.05",
    "TASKLOGS_JOURNAL_INTERVAL": "0.02",
    "TASKLOGS_JOURNAL_HURRY_GAP": "0.01",
    "TASKLOGS_CAPTURE_LINGER": "0.2",
    "TASKLOGS_CAPTURE_PAUSE": "0",
    "TASKLOGS_TAIL_COALESCE": "0",
    "TASKLOGS_KUBE_READ_TIMEOUT": "2",
}
"""Timings for unit tests: polls every 50 ms, journal commits every 20 ms, no coalescing."""


def fast_settings(**overrides) -> Settings:
    """Settings with the FAST timings; `overrides` by variable name (TASKLOGS_VIEWER_QUEUE="3")."""
    return load_config({}, {**FAST, **overrides})


class MemoryStore:
    """A SQLite database file with the service's tables; `units` is the factory the service uses."""

    def __init__(self, directory: str):
        self.engine = create_engine(
            f"sqlite:///{os.path.join(directory, 'tasklogs.db')}", connect_args={"timeout": 10}
        )
        event.listen(self.engine, "connect", _prepare)
        db.metadata.create_all(self.engine)
        # A directory that does not exist: connecting raises OperationalError, like a database down.
        self._unreachable = create_engine(f"sqlite:///{os.path.join(directory, 'gone', 'x.db')}")
        self.down = False
        self.units = functools.partial(UnitOfWork, self._session)

    def _session(self) -> Session:
        return Session(self._unreachable if self.down else self.engine, expire_on_commit=False)

    def services(self, kube: Cluster, settings: Settings | None = None) -> Services:
        """`Services` over this store and `kube`, with the FAST timings unless `settings` are given."""
        return Services(settings or fast_settings(), self.units, self.engine, kube)

    def close(self) -> None:
        self.engine.dispose()
        self._unreachable.dispose()


def _prepare(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()
