"""The engine of one process: a `Driver` per task, one journal writer, one journal listener, the leases.

Per task there is one driver with one feed. The driver either *leads* (this process holds the task's
lease: it follows every container of the task with one stream each, polls the workflow for phases, and
runs the final save) or *follows* (another process leads: it reads the journal that process writes, woken
by NOTIFY). Viewers subscribe to the feed, so Kubernetes requests do not grow with the number of viewers.
A follower with viewers announces them (NOTIFY `watching:<task>`), and the capturing process then reads
that task without pause and commits its text as soon as it is read.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine as SqlEngine

from .. import tasks
from ..cluster import Cluster
from ..config import Settings
from ..errors import StoreUnavailable
from ..identity import TaskRef
from ..shards import CollectorPresence
from ..store import postgres
from ..store.unit_of_work import UnitsOfWork
from ..tasks import ClusterTask
from .driver import Driver
from .journal import JournalListener, JournalWriter
from .leases import Leases

# Viewers elsewhere count as watching the capture for this many poll intervals after their last announcement.
WATCH_EXPIRY = 3

if TYPE_CHECKING:
    from ..archive import ArchiveReads

log = logging.getLogger(__name__)


class EngineClosed(RuntimeError):
    """The engine is shutting down: no new drivers."""


class Engine:
    """Runs every driver of this process; `read_task` is how drivers learn what the cluster says (the
    collector passes its watch cache's)."""

    def __init__(
        self,
        kube: Cluster,
        units: UnitsOfWork,
        sa_engine: SqlEngine,
        settings: Settings,
        read_task: Callable[[TaskRef], ClusterTask] | None = None,
        collectors: CollectorPresence | None = None,
        archives: "Callable[[TaskRef], ArchiveReads] | None" = None,
    ):
        capture, containers = settings.capture, settings.cluster.containers
        self.kube, self.units, self.capture = kube, units, capture
        # the final save reads Argo's archived logs of pods gone before anything was captured
        self.archives = archives
        limit = settings.cluster.max_workflow_bytes
        self.collectors = collectors  # a web worker's: defer to the collectors where they capture
        self.read_task = read_task or (lambda task: tasks.read_task(kube, task, containers, limit))
        self.coalesce = settings.tails.coalesce
        self.catch_up_timeout = settings.cluster.read_timeout
        # Drivers' writes (phases, final saves) queue for half the pool: when many workflows change or end
        # at once (the collector) they wait their turn instead of timing out on the pool, and leave
        # connections for the journal writer, tails and REST.
        self.write_slots = threading.BoundedSemaphore(max(1, settings.database.pool_size // 2))
        self.writer = JournalWriter(
            units,
            capture.journal_interval,
            int(capture.max_unsaved_mb * 1_000_000),
            capture.hurry_gap,
        )
        self.leases = Leases(sa_engine)
        self.listener = JournalListener(
            sa_engine, self.journal_changed, self.tick, capture.poll_interval
        )
        self._drivers: dict[TaskRef, Driver] = {}
        self.completed: set[TaskRef] = set()  # tasks whose final save ran (seen by this process)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        for target, name in (
            (self.writer.run, "journal-writer"),
            (self.listener.run, "journal-listener"),
        ):
            threading.Thread(target=target, name=name, daemon=True).start()

    def driver(self, task: TaskRef, pinned: bool = False) -> Driver:
        """The task's driver in this process, started on first use; `pinned` keeps it without viewers."""
        with self._lock:
            if self._stopped.is_set():
                raise EngineClosed("the engine is shutting down")
            driver = self._drivers.get(task)
            if (
                driver is None or driver.stopping
            ):  # one handed over: a new one takes the lease after it
                driver = self._drivers[task] = Driver(self, task)
                driver.start()
            driver.pinned = driver.pinned or pinned
            driver.touch()
            return driver

    def hand_over(self, task: TaskRef) -> None:
        """The task is another collector's now: unpin its driver here, and stop it unless viewers here
        need it (stopping flushes what it captured, then releases the lease for the new owner)."""
        with self._lock:
            driver = self._drivers.get(task)
            if driver is None:
                return
            driver.pinned = False
            if not driver.feed.viewers:
                driver.stop()

    def may_lead(self, task: TaskRef) -> bool:
        """Whether this process may take the task's lease: a collector always; a web worker only where
        no live collector captures (else it follows their journal, even during a hand-over)."""
        return self.collectors is None or not self.collectors.covers(task.namespace)

    def drivers(self) -> list[Driver]:
        with self._lock:
            return list(self._drivers.values())

    def retire(self, driver: Driver, force: bool = False) -> bool:
        """Called by a driver about to end: True if it may (no viewer joined meanwhile, or `force`)."""
        with self._lock:
            if driver.feed.viewers and not driver.feed.complete and not force:
                return False
            if self._drivers.get(driver.task) is driver:
                del self._drivers[driver.task]
            return True

    def leads(self, task: TaskRef) -> bool:
        """Whether this process captures the task now."""
        driver = self._drivers.get(task)
        return driver is not None and driver.leading and not driver.feed.complete

    def stats(self) -> dict:
        """What this process is doing: tasks it captures, tasks it follows, open tails."""
        drivers = self.drivers()
        return {
            "leading": sum(d.leading for d in drivers),
            "following": sum(not d.leading for d in drivers),
            "viewers": sum(len(d.feed.viewers) for d in drivers),
            "journal": "ok" if self.writer.healthy else "failing",
        }

    def wake(self, task: TaskRef) -> None:
        """Something about the task changed (the collector's watches): its driver looks again now."""
        driver = self._drivers.get(task)
        if driver is not None:
            driver.wake()

    def journal_changed(self, payload: str) -> None:
        """Another process committed to the task's journal: only a driver following it cares (the
        capturing one wrote it, and waking it would re-read the cluster at the journal's pace). Or it has
        viewers following this process's capture: commit that task's text as soon as it is read."""
        if payload.startswith(postgres.WATCHING):
            driver = self._drivers.get(TaskRef.parse(payload[len(postgres.WATCHING) :]))
            if driver is not None and driver.leading:
                driver.feed.watched_elsewhere_until = (
                    time.monotonic() + WATCH_EXPIRY * self.capture.poll_interval
                )
            return
        driver = self._drivers.get(TaskRef.parse(payload))
        if driver is not None and not driver.leading:
            driver.wake()

    def tick(self) -> None:
        """Every poll interval: wake the followers (a missed notification), and remind the capturing
        processes of the tasks whose viewers here follow their journals (one NOTIFY statement for all)."""
        watched = []
        for driver in self.drivers():
            if not driver.leading:
                driver.wake()
                if driver.feed.viewers:
                    watched.append(driver.task)
        self.announce_watching(watched)

    def announce_watching(self, refs: list[TaskRef]) -> None:
        if not refs:
            return
        try:
            with self.units() as uow:
                postgres.notify_watching(uow.session, refs)
                uow.commit()
        except StoreUnavailable as error:  # the followers' journal reads report the database
            log.info("could not announce viewers of %d task(s) (%s)", len(refs), error.message)

    def close(self) -> None:
        """Stop every driver and background thread (tests, and worker shutdown); flush what was captured."""
        with self._lock:
            self._stopped.set()
        drivers = self.drivers()
        for driver in drivers:
            driver.stop()
        for driver in drivers:
            driver.join(10)
        self.writer.flush()
        self.writer.stop()
        self.listener.stop()
        self.leases.close()
