"""The one way into the store: a unit of work is one transaction on a session from a session factory.

REST refreshes, drivers and the journal writer record phases, append text and run the final save
through the write steps below; readers call `repository` functions with `uow.session`. Whatever the
database does wrong (refused, cut, no pooled connection free in time) leaves a unit of work as
`StoreUnavailable`, translated here once, and its transaction is rolled back.
"""

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import StoreUnavailable
from ..identity import LogId, TaskRef
from ..logstream import Position
from . import postgres, repository
from .repository import PageRun

TaskTimes = tuple[datetime | None, datetime | None]  # (started_at, finished_at), None: not known


def unavailable(error: BaseException) -> StoreUnavailable:
    """The StoreUnavailable for a database error, naming the driver's error class (never its text:
    it may hold a connection string)."""
    return StoreUnavailable(
        f"database unavailable: {type(getattr(error, 'orig', None) or error).__name__}"
    )


class UnitOfWork:
    """`with units() as uow: ...; uow.commit()` — anything not committed is rolled back on exit."""

    def __init__(self, session_factory: Callable[[], Session]):
        self._session_factory = session_factory
        self.session: Session

    def __enter__(self) -> "UnitOfWork":
        try:
            self.session = self._session_factory()
        except SQLAlchemyError as error:
            raise unavailable(error) from None
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            self.session.rollback()
            self.session.close()
        except SQLAlchemyError:
            self.session.invalidate()  # its connection died meanwhile: it goes, not back to the pool
        if isinstance(error, SQLAlchemyError):
            raise unavailable(error) from None

    def commit(self) -> None:
        self.session.commit()

    # --- the write steps ---

    def record_phases(
        self,
        task: TaskRef,
        phase: str,
        logs: Iterable[tuple[LogId, str]],
        times: TaskTimes = (None, None),
    ) -> dict[LogId, int]:
        """Store the task's phase (and when it started and finished, once known) and each log's (a new
        log gets its row); return the row ids by log."""
        repository.save_task(self.session, task, phase, False, *times)
        ids = repository.record_logs(self.session, task, logs)
        postgres.notify(self.session, [task])
        return ids

    def append_text(
        self, log_id: int, start: int, text: str, position: Position, stamps: Iterable[int] = ()
    ) -> int:
        """Append text that begins at character `start` of the log, unless the store holds it already."""
        return repository.append_chunk(self.session, log_id, start, text, position, stamps)

    def store_archived(self, log_id: int, text: str, ts: int) -> bool:
        """Store a log read whole from Argo's archived artifact, if the store has none of its text."""
        return repository.save_archived_log(self.session, log_id, text, ts)

    def append_runs(self, runs: list[PageRun], refs: Iterable[TaskRef]) -> set[tuple[int, int]]:
        """The journal writer's flush: compare-and-append every run; tell the followers of these tasks."""
        written = repository.append_pages(self.session, runs)
        postgres.notify(self.session, refs)
        return written

    def final_save(
        self,
        task: TaskRef,
        phase: str,
        log_phases: dict[int, str],
        times: TaskTimes = (None, None),
    ) -> None:
        """Record the last phases, merge the small pages, mark the task complete, tell everyone."""
        repository.save_phases(self.session, log_phases)
        repository.merge_pages(self.session, task)
        repository.save_task(self.session, task, phase, True, *times)
        postgres.notify(self.session, [task])


UnitsOfWork = Callable[[], UnitOfWork]
