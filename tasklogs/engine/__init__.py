"""The live-tail engine of one process.

Per task there is one `Driver` with one `Feed`. The driver either *leads* (this process holds the task's
lease: it follows every container of the task with one stream each, polls the workflow for phases, and
runs the final save) or *follows* (another process leads: it reads the journal that process writes, woken
by NOTIFY). Viewers subscribe to the feed, so Kubernetes requests do not grow with the number of viewers.
One `JournalWriter` batches every feed's captured text into the journal; one `JournalListener` hears the
other processes' commits. A follower with viewers announces them (NOTIFY `watching:<task>`), and the
capturing process then reads that task without pause and commits its text as soon as it is read.
"""
import logging
import threading
import time

from sqlalchemy.orm import Session

from .. import argo, repository
from ..errors import ClusterError, StoreUnavailable, TaskNotFound, TasklogsError
from ..logstream import Position
from ..config import containers
from ..tasks import read_task, stream_key
from .capture import Backoff, ContainerCapture
from .feed import Feed, StreamInfo
from .journal import JournalListener, JournalWriter
from .leases import Leases

# Viewers elsewhere count as watching the capture for this many poll intervals after their last announcement.
WATCH_EXPIRY = 3

log = logging.getLogger(__name__)


class EngineClosed(RuntimeError):
    """The engine is shutting down: no new drivers."""


class Engine:
    def __init__(self, app, kube, sa_engine):
        config = app.config
        self.app, self.kube, self.sa_engine = app, kube, sa_engine
        self.containers = containers(config)
        self.read_task = lambda task_id: read_task(kube, task_id, self.containers)  # the collector reads a cache
        self.poll_interval = config["TASKLOGS_POLL_INTERVAL"]
        self.coalesce = config["TASKLOGS_TAIL_COALESCE"]
        self.linger = config["TASKLOGS_CAPTURE_LINGER"]
        self.catch_up_timeout = config["TASKLOGS_KUBE_READ_TIMEOUT"]
        self.capture_pause = config["TASKLOGS_CAPTURE_PAUSE"]
        # Drivers' writes (phases, final saves) queue for half the pool: when many workflows change or end
        # at once (the collector) they wait their turn instead of timing out on the pool, and leave
        # connections for the journal writer, tails and REST.
        self.write_slots = threading.BoundedSemaphore(max(1, config["TASKLOGS_DB_POOL_SIZE"] // 2))
        self.writer = JournalWriter(sa_engine, config["TASKLOGS_JOURNAL_INTERVAL"],
                                    int(config["TASKLOGS_MAX_UNSAVED_MB"] * 1_000_000), self.coalesce)
        self.leases = Leases(sa_engine)
        self.listener = JournalListener(sa_engine, self.journal_changed, self.tick, self.poll_interval)
        self._drivers: dict[str, "Driver"] = {}
        self.completed: set[str] = set()      # tasks whose final save ran (seen by this process)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        for target, name in ((self.writer.run, "journal-writer"), (self.listener.run, "journal-listener")):
            threading.Thread(target=target, name=name, daemon=True).start()

    def driver(self, task_id: str, pinned: bool = False) -> "Driver":
        """The task's driver in this process, started on first use; `pinned` keeps it without viewers."""
        with self._lock:
            if self._stopped.is_set():
                raise EngineClosed("the engine is shutting down")
            driver = self._drivers.get(task_id)
            if driver is None:
                driver = self._drivers[task_id] = Driver(self, task_id)
                driver.start()
            driver.pinned = driver.pinned or pinned
            driver.touch()
            return driver

    def drivers(self) -> list["Driver"]:
        with self._lock:
            return list(self._drivers.values())

    def retire(self, driver: "Driver", force: bool = False) -> bool:
        """Called by a driver about to end: True if it may (no viewer joined meanwhile, or `force`)."""
        with self._lock:
            if driver.feed.viewers and not driver.feed.complete and not force:
                return False
            if self._drivers.get(driver.task_id) is driver:
                del self._drivers[driver.task_id]
            return True

    def leads(self, task_id: str) -> bool:
        """Whether this process captures the task now."""
        driver = self._drivers.get(task_id)
        return driver is not None and driver.leading and not driver.feed.complete

    def stats(self) -> dict:
        """What this process is doing: tasks it captures, tasks it follows, open tails."""
        drivers = self.drivers()
        return {"leading": sum(d.leading for d in drivers), "following": sum(not d.leading for d in drivers),
                "viewers": sum(len(d.feed.viewers) for d in drivers), "journal": "ok" if self.writer.healthy
                else "failing"}

    def wake(self, task_id: str) -> None:
        """Something about the task changed (the collector's watches): its driver looks again now."""
        driver = self._drivers.get(task_id)
        if driver is not None:
            driver.wake()

    def journal_changed(self, payload: str) -> None:
        """Another process committed to the task's journal: only a driver following it cares (the
        capturing one wrote it, and waking it would re-read the cluster at the journal's pace). Or it has
        viewers following this process's capture: commit that task's text as soon as it is read."""
        if payload.startswith(repository.WATCHING):
            driver = self._drivers.get(payload[len(repository.WATCHING):])
            if driver is not None and driver.leading:
                driver.feed.watched_elsewhere_until = time.monotonic() + WATCH_EXPIRY * self.poll_interval
            return
        driver = self._drivers.get(payload)
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
                    watched.append(driver.task_id)
        self.announce_watching(watched)

    def announce_watching(self, task_ids: list[str]) -> None:
        if not task_ids:
            return
        try:
            with self.session() as session, session.begin():
                repository.notify_watching(session, task_ids)
        except Exception as error:  # noqa: BLE001 - the followers' journal reads report the database
            log.info("could not announce viewers of %d task(s) (%s)", len(task_ids), type(error).__name__)

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

    def session(self) -> Session:
        return Session(self.sa_engine)


class Driver:
    """Runs one task in this process: leads its capture or follows the journal, until nobody needs it."""

    def __init__(self, engine: Engine, task_id: str):
        self.engine, self.task_id = engine, task_id
        self._stopped = threading.Event()
        self.feed = Feed(task_id, engine.coalesce, engine.writer.mark, self._stopped)
        self.pinned = False
        self.ready = threading.Event()       # the feed holds the task's state: viewers may take a snapshot
        self.error: TasklogsError | None = None
        self.leading = False
        self._wake = threading.Event()
        self._last_needed = time.monotonic()
        self._captures: dict[str, ContainerCapture] = {}
        self._saved_phases = None
        self._announced = False              # the capturing process knows of viewers here

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"driver-{self.task_id}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def touch(self) -> None:
        self._last_needed = time.monotonic()

    def needed(self) -> bool:
        if self.pinned or self.feed.viewers:
            self.touch()
            return True
        return time.monotonic() - self._last_needed < self.engine.linger

    # --- the loop ---

    def _run(self) -> None:
        with self.engine.app.app_context():
            try:
                while not self._stopped.is_set():
                    lease = self.engine.leases.acquire(self.task_id)
                    outcome = self._lead() if lease is not False else self._follow()
                    if outcome == "complete":
                        self.engine.completed.add(self.task_id)
                    if outcome in ("complete", "failed") or (outcome == "idle" and self.engine.retire(self)):
                        break
            except Exception:  # noqa: BLE001 - a driver must never die silently
                log.exception("driver of %s failed", self.task_id)
                self._fail(TasklogsError("internal error"))
            finally:
                self._stop_captures()
                if self.leading:
                    self.engine.leases.release(self.task_id)
                self.engine.retire(self, force=True)
                self.ready.set()

    def _fail(self, error: TasklogsError) -> str:
        self.error = error
        self.ready.set()
        return "failed"

    def _wait(self) -> None:
        self._wake.wait(self.engine.poll_interval)
        self._wake.clear()

    # --- following another process's capture ---

    def _follow(self) -> str:
        self.leading = False
        try:
            self._announce_viewers()
            if self.feed.viewers or not self.ready.is_set():
                self._sync_from_journal()
            else:
                self._check_complete()  # nobody reads this feed here: only learn when the task is done
        except StoreUnavailable:
            pass
        self.ready.set()
        if self.feed.complete:
            return "complete"
        self._wait()
        return "following" if self.needed() else "idle"

    def _announce_viewers(self) -> None:
        """Viewers here wait for the capturing process's commits: tell it as soon as the first one comes
        (the engine's tick repeats it every poll interval while there are viewers)."""
        if self.feed.viewers and not self._announced:
            self.engine.announce_watching([self.task_id])
        self._announced = bool(self.feed.viewers)

    def _check_complete(self) -> None:
        try:
            with self.engine.session() as session:
                task = repository.get_task(session, self.task_id)
        except Exception as error:  # noqa: BLE001
            raise StoreUnavailable(f"journal unreadable: {type(error).__name__}") from None
        if task is not None and task.complete:
            self.feed.finish(task.phase)

    def _sync_from_journal(self) -> None:
        """Bring the feed up to what the journal holds (text, phases, the end)."""
        try:
            with self.engine.session() as session:
                task = repository.get_task(session, self.task_id)
                for row in repository.get_stored_logs(session, self.task_id):
                    # streams met after the first sync are new to the viewers too: their text is sent from 0
                    start = 0 if self.ready.is_set() else row.length
                    key = stream_key(row.pod_name, row.container)
                    stream = self.feed.add_stream(StreamInfo(key, row.node_id, row.pod_name, row.container,
                                                             row.phase, start, row.log_id))
                    if row.length > stream.end:
                        text = "".join(repository.read_log(session, row.log_id, stream.end))
                        self.feed.append(key, text, row.position, start=stream.end, keep=False)
                    self.feed.set_phase(row.phase, key)
        except Exception as error:  # noqa: BLE001
            raise StoreUnavailable(f"journal unreadable: {type(error).__name__}") from None
        if task is not None:
            self.feed.set_phase(task.phase)
            if task.complete:
                self.feed.finish(task.phase)

    # --- leading: this process captures the task ---

    def _lead(self) -> str:
        self.leading = True
        try:
            self._sync_from_journal()
        except StoreUnavailable:
            log.warning("database unavailable: capturing %s from Kubernetes without the journal", self.task_id)
        if self.feed.complete:
            self.ready.set()
            return "complete"
        backoff = Backoff(base=self.engine.poll_interval, cap=10)
        while not self._stopped.is_set():
            try:
                task = self.engine.read_task(self.task_id)
                backoff.reset()
            except TaskNotFound as error:
                if not self.feed.streams:
                    return self._fail(error)
                if self._vanished():
                    return "complete"
                task = None
            except ClusterError as error:
                if not self.feed.streams and not self.ready.is_set():
                    return self._fail(error)
                log.info("cannot read task %s (%s); retrying", self.task_id, error.message)
                self._stopped.wait(backoff.next())
                continue
            if task is not None and self._update(task):
                return "complete"
            if not self.ready.is_set():
                for capture in list(self._captures.values()):
                    capture.caught_up.wait(self.engine.catch_up_timeout)
            self.ready.set()
            self._wait()
            if not self.needed():
                return "idle"
            if self.engine.leases.acquire(self.task_id) is False:
                log.info("lease of %s taken by another process; following its journal", self.task_id)
                self._stop_captures()
                return "lost"
        return "stopped"

    def _update(self, task) -> bool:
        """Apply what the cluster says; True once the final save has run."""
        for stream in task.streams:
            self.feed.add_stream(StreamInfo(stream.key, stream.node_id, stream.pod_name, stream.container,
                                            stream.phase))
        self._save_phases(task)  # also gives new streams their row ids
        self.feed.set_phase(task.phase)
        for stream in task.streams:
            self.feed.set_phase(stream.phase, stream.key)
            status = task.container_status(stream)
            capture = self._captures.get(stream.key)
            if capture is None:
                capture = self._start_capture(stream, status)
            elif not capture.finished.is_set():
                capture.status = status or capture.status
            if task.stream_settled(stream) and not capture.started:
                capture.stop()  # the container never ran, or its pod went before we saw it: nothing to read
        if task.settled and all(capture.finished.is_set() for capture in self._captures.values()):
            return self._final_save(task.phase)
        return False

    def _save_phases(self, task) -> None:
        """Store phase changes, so that followers elsewhere (and REST) see them before the final save."""
        phases = (task.phase, tuple((s.key, s.phase) for s in task.streams))
        if phases == self._saved_phases:
            return
        try:
            with self.engine.write_slots, self.engine.session() as session, session.begin():
                repository.save_task(session, self.task_id, task.phase)
                ids = repository.save_logs_to_database(self.task_id, [
                    {"node": s.node_id, "pod": s.pod_name, "container": s.container, "phase": s.phase}
                    for s in task.streams], session)
                repository.notify(session, [self.task_id])
            self._saved_phases = phases
            self.feed.set_log_ids({s.key: ids[(s.node_id, s.pod_name, s.container)] for s in task.streams
                                   if s.key in self.feed.streams})
        except Exception as error:  # noqa: BLE001 - the database is down: tried again on the next change
            log.info("phases of %s not saved (%s)", self.task_id, type(error).__name__)

    def _start_capture(self, stream, status) -> ContainerCapture:
        known = self.feed.streams[stream.key]
        position = known.position or self._stored_position(known)
        if known.end and position == Position():
            # Text stored without a resume position (a compacted log): reading from the start again would
            # repeat it, so this stream is not captured again.
            log.warning("log of %s is stored without a resume position; not capturing it again", stream.pod_name)
            capture = ContainerCapture(self.engine.kube, self.feed, stream, position, None, 0)
            capture.caught_up.set()
            capture.finished.set()
            self._captures[stream.key] = capture
            return capture
        capture = ContainerCapture(self.engine.kube, self.feed, stream, position, status, self.engine.poll_interval,
                                   self.engine.capture_pause, self.engine.writer.has_room)
        self._captures[stream.key] = capture
        threading.Thread(target=self._capture, args=(capture,), name=f"capture-{stream.pod_name}",
                         daemon=True).start()
        return capture

    def _capture(self, capture: ContainerCapture) -> None:
        with self.engine.app.app_context():
            capture.run()
        self.wake()

    def _stored_position(self, stream: StreamInfo) -> Position:
        if stream.log_id is None or stream.end == 0:
            return Position()
        with self.engine.session() as session:
            for row in repository.get_stored_logs(session, self.task_id):
                if row.log_id == stream.log_id:
                    return row.position
        return Position()

    def _vanished(self) -> bool:
        """Workflow and pods are gone (deleted): what was captured is all there will be; save it as final."""
        log.info("task %s vanished from the cluster; saving what was captured", self.task_id)
        self._stop_captures()
        return self._final_save(self.feed.phase if argo.is_final_phase(self.feed.phase) else "Failed")

    def _final_save(self, phase: str) -> bool:
        """Flush the journal, fold it into task_logs.logs, mark the task complete; then tell the viewers."""
        with self.engine.write_slots:
            return self._save_final(phase)

    def _save_final(self, phase: str) -> bool:
        if not self.engine.writer.flush([self.feed]) or self.feed.has_unsaved():
            return False
        try:
            with self.engine.session() as session, session.begin():
                repository.save_phases(session, {s.log_id: s.phase for s in self.feed.streams.values() if s.log_id})
                repository.compact_logs(session, self.task_id)
                repository.save_task(session, self.task_id, phase, complete=True)
                repository.notify(session, [self.task_id])
        except Exception as error:  # noqa: BLE001 - retried on the next poll
            log.warning("final save of %s failed (%s); retrying", self.task_id, type(error).__name__)
            return False
        self.feed.finish(phase)
        return True

    def _stop_captures(self) -> None:
        for capture in self._captures.values():
            capture.stop()
        for capture in self._captures.values():
            capture.finished.wait(5)
        self._captures.clear()
