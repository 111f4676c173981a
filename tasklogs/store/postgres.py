"""PostgreSQL's own plumbing: LISTEN/NOTIFY, advisory locks, the lease session, dedicated connections.

LISTEN and session-level advisory locks belong to one connection for its whole life; a pooled connection
would hand them to whoever checks it out next, so they live on `Dedicated` connections: outside the
pool, autocommit, closed for real when dropped. On SQLite (quick local runs) notifications are skipped
and every task lock is granted: one process alone captures anyway.
"""

import hashlib
import logging
import threading
from collections.abc import Iterable

import psycopg2
import psycopg2.extensions
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..identity import TaskRef

log = logging.getLogger(__name__)

# What a dedicated connection raises when the database refuses or the connection is gone.
CONNECTION_ERRORS = (psycopg2.Error, SQLAlchemyError, OSError)

# An execution option: with it true, this statement's text values come back as bytes, the UTF-8 that
# PostgreSQL sent (psycopg2's BYTES typecaster on its cursor alone, on a UTF8 connection).
TEXT_AS_BYTES = "tasklogs_text_as_bytes"


@event.listens_for(Engine, "before_cursor_execute")
def _text_as_bytes(connection, cursor, statement, parameters, context, executemany) -> None:
    if (
        context is not None
        and context.execution_options.get(TEXT_AS_BYTES)
        and getattr(cursor.connection, "encoding", None) == "UTF8"  # psycopg2's, not SQLite's
    ):
        psycopg2.extensions.register_type(psycopg2.extensions.BYTES, cursor)


MIGRATION_LOCK = (
    0x7461736B6C6F6773  # pg_advisory_lock key the whole deployment agrees on ("tasklogs" in ASCII)
)


def task_lock_key(task: TaskRef) -> int:
    """A signed 64-bit advisory lock key for the task's lease (collisions: about 2**-64 per pair)."""
    return int.from_bytes(
        hashlib.blake2b(f"tasklogs:{task.key}".encode(), digest_size=8).digest(), "big", signed=True
    )


def refresh_lock_key(task: TaskRef) -> int:
    """A signed 64-bit advisory lock key for the task's REST refresh (not its lease: a refresh under
    way must not keep a capture from starting)."""
    return int.from_bytes(
        hashlib.blake2b(f"tasklogs-refresh:{task.key}".encode(), digest_size=8).digest(),
        "big",
        signed=True,
    )


NOTIFY_CHANNEL = "tasklogs"
WATCHING = (
    "watching:"  # payload prefix: a process has viewers of the task (the capturing one hurries)
)


def notify(session, refs: Iterable[TaskRef]) -> None:
    """Tell other processes (LISTEN tasklogs) that these tasks changed; delivered at commit. The
    payload is the task's `key` (`namespace/name`)."""
    _notify(session, [task.key for task in refs])


def _notify(session, payloads: list[str]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    task_ids = sorted(set(payloads))
    if task_ids:  # one round trip for all of them
        session.execute(
            text(
                "SELECT pg_notify(:channel, task_id) FROM unnest(CAST(:task_ids AS text[])) AS task_id"
            ),
            {"channel": NOTIFY_CHANNEL, "task_ids": task_ids},
        )


def notify_watching(session, refs: Iterable[TaskRef]) -> None:
    """Tell the processes capturing these tasks that viewers here follow their journals."""
    _notify(session, [WATCHING + task.key for task in refs])


def listen(dbapi_connection) -> None:
    """Subscribe a dedicated autocommit DBAPI connection to the change notifications."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")


def try_lock(dbapi_connection, key: int) -> bool:
    """Take a session-level advisory lock without waiting."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        return bool(cursor.fetchone()[0])


def unlock(dbapi_connection, key: int) -> None:
    """Release a session-level advisory lock."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))


def prepare_lease_session(dbapi_connection, name: str) -> None:
    """Set up the dedicated connection that holds advisory locks, named `name`.

    Any older session of the same name (this process's previous lease connection, cut by a network
    failure the server has not noticed) is terminated so that its locks are released now; keepalives
    and an idle timeout make the server notice a dead client within about a minute by itself."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET application_name = %s", (name,))
        cursor.execute(
            "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
            "SET tcp_keepalives_count = 3; SET idle_session_timeout = '60s'"
        )
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def lock_migrations(connection) -> None:
    """Wait for the session-level advisory lock that serialises schema migrations."""
    connection.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))


def unlock_migrations(connection) -> None:
    connection.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK)))


UPKEEP_LOCK = int.from_bytes(
    hashlib.blake2b(b"tasklogs:upkeep", digest_size=8).digest(), "big", signed=True
)


def try_upkeep_lock(session) -> bool:
    """Take the lock of partition upkeep for this transaction; False while another process holds it."""
    return bool(session.execute(select(func.pg_try_advisory_xact_lock(UPKEEP_LOCK))).scalar())


def try_task_lock(session, task: TaskRef) -> bool:
    """Take the task's lease lock for this transaction only; False while a capture holds the lease."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(
        session.execute(select(func.pg_try_advisory_xact_lock(task_lock_key(task)))).scalar()
    )


def take_refresh_lock(session, task: TaskRef) -> bool:
    """Take the task's refresh lock for this transaction: True at once when no other process refreshes
    the task, else False once that refresh has ended (its transaction released the lock)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = refresh_lock_key(task)
    if session.execute(select(func.pg_try_advisory_xact_lock(key))).scalar():
        return True
    session.execute(select(func.pg_advisory_xact_lock(key)))
    return False


class AbandonedSessions:
    """Ends on the server the sessions of pooled connections this process gave up on.

    A connection the pool invalidates (its statement failed on a cut connection) may still have a
    session on the server: in a network partition PostgreSQL has not noticed, that session lives on
    idle in its transaction, and the row locks it took (the share lock of an append, `lock_logs`)
    block every later write of those logs until the server notices, which can take hours. So each
    connection's backend (pid and start) is noted when it opens; an invalidated one's is kept, and
    the next connection that opens (the database is reachable again) terminates those backends
    before it is used. The start time keeps a reused pid of someone else's session out of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._backends: set[tuple[int, object]] = set()

    def watch(self, sa_engine) -> None:
        event.listen(sa_engine, "connect", self._opened)
        event.listen(sa_engine, "invalidate", self._invalidated)

    def _opened(self, dbapi_connection, record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            )
            record.info[_BACKEND] = cursor.fetchone()
        with self._lock:
            backends, self._backends = self._backends, set()
        try:
            if backends:
                self._terminate(dbapi_connection, backends)
        except psycopg2.Error:
            with self._lock:
                self._backends |= backends  # the next connection tries again
            raise
        finally:
            if not dbapi_connection.closed:
                dbapi_connection.rollback()  # hand the connection over outside any transaction

    def _invalidated(self, dbapi_connection, record, exception) -> None:
        backend = record.info.pop(_BACKEND, None)
        if backend is not None:
            with self._lock:
                self._backends.add(tuple(backend))

    @staticmethod
    def _terminate(dbapi_connection, backends: set[tuple[int, object]]) -> None:
        pids, starts = zip(*backends, strict=True)
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a"
                " JOIN unnest(%s::int[], %s::timestamptz[]) AS gone(pid, started)"
                " ON a.pid = gone.pid AND a.backend_start = gone.started",
                (list(pids), list(starts)),
            )
            ended = cursor.fetchone()[0]
        if ended:
            log.warning(
                "ended %d database session(s) this process had given up on "
                "(cut by a network failure the server had not noticed)",
                ended,
            )


_BACKEND = "tasklogs_backend"


def ping(dbapi_connection) -> None:
    """One round trip: raises if the connection is gone."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class Dedicated:
    """One lazily opened dedicated connection; `prepare(dbapi_connection)` runs on each (re)connect."""

    def __init__(self, sa_engine, prepare):
        self._engine, self._prepare = sa_engine, prepare
        self._fairy = None

    def get(self):
        """The DBAPI connection, opened (and prepared) if there is none."""
        if self._fairy is None:
            fairy = self._engine.raw_connection()
            fairy.detach()  # closing it must close it, releasing everything the session holds
            fairy.dbapi_connection.autocommit = True
            try:
                self._prepare(fairy.dbapi_connection)
            except Exception:
                fairy.close()
                raise
            self._fairy = fairy
        return self._fairy.dbapi_connection

    @property
    def open(self) -> bool:
        return self._fairy is not None

    def drop(self) -> None:
        """Close it (a broken one too); the next `get` opens a new one."""
        fairy, self._fairy = self._fairy, None
        if fairy is not None:
            try:
                fairy.close()
            except Exception:  # noqa: BLE001 - it may be broken already
                pass
