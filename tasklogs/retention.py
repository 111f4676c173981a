"""Retention: partitions made ahead of time, and old tasks pruned by partition before rows.

A task goes whole once its newest row (the task's or any of its logs') is older than the cutoff: what
`prune --older-than` always meant, and what `TASKLOGS_RETENTION` applies on its own. On PostgreSQL the
pages are partitioned by the day their log was created (`store.partitions`): first every day
partition whose tasks are all past the cutoff is dropped whole (no row deleted, almost no WAL, nothing
left for VACUUM), then the expired tasks left (in a partition that still holds a newer task, in the
default partition, or on SQLite) are deleted by rows, a batch per unit of work, with their task and log
rows. `Upkeep` does both, and creates the coming days' partitions, in every process that runs an engine.
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import metrics
from .config import DatabaseSettings
from .errors import StoreUnavailable
from .store import partitions, postgres, repository
from .store.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)


@dataclass
class Pruned:
    """What a prune removed (or, dry, would remove): day partitions dropped whole, tasks in all."""

    partitions: list[str] = field(default_factory=list)
    tasks: int = 0


def prune(
    units: UnitsOfWork, cutoff: datetime, batch_size: int = 200, by_day: bool = False
) -> Pruned:
    """Remove every task whose newest row is older than `cutoff`: whole partitions first, then rows.

    `by_day` (retention) deletes rows only of tasks older than the start of `cutoff`'s day: a task
    of a day that is not over yet is left for its partition to be dropped whole (so a task stays up
    to a day longer than `cutoff` says)."""
    pruned = Pruned()
    for partition in _droppable(units, cutoff):
        with units() as uow:
            if partitions.drop_partition(uow.session, partition, cutoff):
                pruned.partitions.append(partition.name)
            uow.commit()
    rows_cutoff = partitions.of_day(cutoff).start if by_day else cutoff
    while True:
        with units() as uow:
            batch = repository.tasks_older_than(uow.session, rows_cutoff, limit=batch_size)
            repository.delete_tasks(uow.session, batch)
            uow.commit()
        if not batch:
            return pruned
        pruned.tasks += len(batch)
        metrics.PRUNED_TASKS.inc(len(batch))


def prune_preview(units: UnitsOfWork, cutoff: datetime) -> Pruned:
    """What `prune` would remove now, removing nothing."""
    with units() as uow:
        tasks = len(repository.tasks_older_than(uow.session, cutoff, limit=None))
    return Pruned([partition.name for partition in _droppable(units, cutoff)], tasks)


def _droppable(units: UnitsOfWork, cutoff: datetime) -> list[partitions.Partition]:
    with units() as uow:
        if not partitions.is_partitioned(uow.session):
            return []
        return partitions.droppable(uow.session, cutoff)


def create_partitions_ahead(units: UnitsOfWork, days_ahead: int) -> list[str]:
    """Create today's partition and the next `days_ahead` days' where missing (one process at a
    time: another doing it already is left to it); return the names created."""
    with units() as uow:
        session = uow.session
        if not partitions.is_partitioned(session) or not postgres.try_upkeep_lock(session):
            return []
        partitions.set_lock_timeout(session)
        created = partitions.create_ahead(session, datetime.now(UTC).date(), days_ahead)
        uow.commit()
    return [partition.name for partition in created]


class Upkeep:
    """A thread: every `upkeep_interval` seconds, the partitions ahead, then TASKLOGS_RETENTION."""

    def __init__(self, units: UnitsOfWork, settings: DatabaseSettings):
        self.units, self.settings = units, settings
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self.run, name="upkeep", daemon=True)

    def start(self) -> "Upkeep":
        self._thread.start()
        return self

    def run(self) -> None:
        while not self._stopped.is_set():
            self.round()
            self._stopped.wait(self.settings.upkeep_interval)

    def round(self) -> None:
        """One round; a database that is down or a lock held too long waits for the next one."""
        try:
            created = create_partitions_ahead(self.units, self.settings.partitions_ahead)
            if created:
                log.info("created partitions %s", ", ".join(created))
            if self.settings.retention is not None:
                self._apply_retention()
        except StoreUnavailable as error:
            log.warning("upkeep postponed to its next round: %s", error.message)

    def _apply_retention(self) -> None:
        assert self.settings.retention is not None
        cutoff = datetime.now(UTC) - self.settings.retention
        pruned = prune(self.units, cutoff, by_day=True)
        if pruned.partitions or pruned.tasks:
            log.info(
                "retention: dropped %d partition(s) (%s), removed %d task(s) last updated before %s",
                len(pruned.partitions),
                ", ".join(pruned.partitions) or "none",
                pruned.tasks,
                f"{cutoff:%Y-%m-%d %H:%M} UTC",
            )

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(10)
