"""One task's driver: it leads the task's capture or follows another process's journal, until nobody
needs it. Each turn of its loop ends in an `Outcome` that says what happens next."""

import enum
import logging
import threading
import time
from typing import TYPE_CHECKING, cast

from .. import argo
from ..errors import (
    ClusterError,
    StoreUnavailable,
    TasklogsError,
    TaskNotFound,
    WorkflowUnreadable,
)
from ..identity import TaskRef
from ..logstream import Position
from ..store import repository
from ..store.unit_of_work import TaskTimes
from ..tasks import ClusterTask, Stream
from .backoff import Backoff
from .feed import FRAME_CHARS, Feed, StreamInfo, cut_pieces
from .follow import ContainerCapture
from .lines import stored_texts
from .oneshot import archived_only

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

ARCHIVE_ATTEMPTS = 5  # final-save attempts that wait for an archived log the archive would not give


class Outcome(enum.Enum):
    COMPLETE = "complete"  # the final save ran: the driver ends
    FAILED = (
        "failed"  # the task cannot be served (unknown, or the cluster refuses): the driver ends
    )
    IDLE = "idle"  # nobody needs the driver any more: it ends unless a viewer came meanwhile
    LOST = "lost"  # another process took the lease: follow its journal
    FOLLOWING = "following"  # another process captures: keep following
    STOPPED = "stopped"  # the engine is closing


class Driver:
    """Runs one task in this process: leads its capture or follows the journal, until nobody needs it."""

    def __init__(self, engine: "Engine", task: TaskRef):
        self.engine, self.task = engine, task
        self.cluster = engine.kube.in_namespace(task.namespace)
        self._times: TaskTimes = (None, None)  # when the workflow started and finished, once read
        self._stopped = threading.Event()
        self.feed = Feed(task, engine.coalesce, engine.writer.mark, self._stopped)
        self.pinned = False
        self.ready = (
            threading.Event()
        )  # the feed holds the task's state: viewers may take a snapshot
        self.error: TasklogsError | None = None
        self.leading = False
        self._wake = threading.Event()
        self._last_needed = time.monotonic()
        self._captures: dict[str, ContainerCapture] = {}
        self._saved_phases: tuple | None = None
        self._announced = False  # the capturing process knows of viewers here
        self._archive_attempts = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"driver-{self.task}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    def touch(self) -> None:
        self._last_needed = time.monotonic()

    def needed(self) -> bool:
        if self.pinned or self.feed.viewers:
            self.touch()
            return True
        return time.monotonic() - self._last_needed < self.engine.capture.linger

    # --- the loop ---

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                outcome = self._lead() if self._may_lead() else self._follow()
                if outcome is Outcome.COMPLETE:
                    self.engine.completed.add(self.task)
                if outcome in (Outcome.COMPLETE, Outcome.FAILED) or (
                    outcome is Outcome.IDLE and self.engine.retire(self)
                ):
                    break
        except Exception:  # noqa: BLE001 - a driver must never die silently
            log.exception("driver of %s failed", self.task)
            self._fail(TasklogsError("internal error"))
        finally:
            self._stop_captures()
            if self.leading:
                self._release()
            self.engine.retire(self, force=True)
            self.ready.set()

    def _may_lead(self) -> bool:
        """Take (or keep) the lease: a web worker leaves it to the collectors where they capture."""
        if not self.leading and not self.engine.may_lead(self.task):
            return False
        return self.engine.leases.acquire(self.task) is not False

    def _release(self) -> None:
        """Commit what this capture read, then give the lease up: whoever takes it next reads on from
        the stored position (if the commit fails, both write the same text at the same offsets, and
        the journal's compare-and-append keeps one)."""
        self.engine.writer.flush([self.feed])
        self.engine.leases.release(self.task)

    def _fail(self, error: TasklogsError) -> Outcome:
        self.error = error
        self.ready.set()
        return Outcome.FAILED

    def _wait(self) -> None:
        self._wake.wait(self.engine.capture.poll_interval)
        self._wake.clear()

    # --- following another process's capture ---

    def _follow(self) -> Outcome:
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
            return Outcome.COMPLETE
        self._wait()
        return Outcome.FOLLOWING if self.needed() else Outcome.IDLE

    def _announce_viewers(self) -> None:
        """Viewers here wait for the capturing process's commits: tell it as soon as the first one comes
        (the engine's tick repeats it every poll interval while there are viewers)."""
        if self.feed.viewers and not self._announced:
            self.engine.announce_watching([self.task])
        self._announced = bool(self.feed.viewers)

    def _check_complete(self) -> None:
        with self.engine.units() as uow:
            task = repository.get_task(uow.session, self.task)
        if task is not None and task.complete:
            self.feed.finish(task.phase)

    def _sync_from_journal(self) -> None:
        """Bring the feed up to what the journal holds (text, phases, the end)."""
        with self.engine.units() as uow:
            task = repository.get_task(uow.session, self.task)
            rows = repository.get_stored_logs(uow.session, self.task)
        for row in rows:
            # streams met after the first sync are new to the viewers too: their text is sent from 0
            start = 0 if self.ready.is_set() else row.length
            stream = self.feed.add_stream(StreamInfo(row.log, row.phase, start, row.log_id))
            self._append_stored(stream, row)
            self.feed.set_phase(row.phase, row.log.key)
        if task is not None:
            self.feed.set_phase(task.phase)
            if task.complete:
                self.feed.finish(task.phase)

    def _append_stored(self, stream: StreamInfo, row) -> None:
        """The stored text of `row` that the feed lacks, read a few pages per unit of work and published
        in appends of at most FRAME_CHARS: a log first met after startup is never one string in memory."""
        if row.log_id is None or row.length <= stream.end:
            return
        pieces = stored_texts(self.engine.units, row.log_id, stream.end, row.length)
        for piece in cut_pieces(pieces, FRAME_CHARS):
            at = stream.end
            position = row.position if at + len(piece) == row.length else None
            self.feed.append(row.log.key, piece, position, start=at, keep=False)
            self.feed.publish_pending()  # each piece its own event, even when appends coalesce

    # --- leading: this process captures the task ---

    def _lead(self) -> Outcome:
        self.leading = True
        try:
            self._sync_from_journal()
        except StoreUnavailable:
            log.warning(
                "database unavailable: capturing %s from Kubernetes without the journal",
                self.task,
            )
        if self.feed.complete:
            self.ready.set()
            return Outcome.COMPLETE
        backoff = Backoff(base=self.engine.capture.poll_interval, cap=10)
        while not self._stopped.is_set():
            try:
                task = self.engine.read_task(self.task)
                backoff.reset()
                self._readable()
            except WorkflowUnreadable as error:
                self._unreadable(error)
                task = None
            except TaskNotFound as error:
                if not self.feed.streams:
                    return self._fail(error)
                if self._vanished():
                    return Outcome.COMPLETE
                task = None
            except ClusterError as error:
                if not self.feed.streams and not self.ready.is_set():
                    return self._fail(error)
                log.info("cannot read task %s (%s); retrying", self.task, error.message)
                self._stopped.wait(backoff.next())
                continue
            if task is not None and self._update(task):
                return Outcome.COMPLETE
            outcome = self._between_polls()
            if outcome is not None:
                return outcome
        return Outcome.STOPPED

    def _unreadable(self, error: WorkflowUnreadable) -> None:
        """The workflow's status cannot be read: new tails get the error, live ones an error frame; the
        driver keeps polling, since the workflow may be fixed or deleted."""
        if self.error is None or self.error.message != error.message:
            log.warning("task %s: %s", self.task, error.message)
            self.feed.fail(error.status, error.code, error.message)
        self.error = error
        self.ready.set()

    def _readable(self) -> None:
        if isinstance(self.error, WorkflowUnreadable):
            log.info("task %s: the workflow can be read again", self.task)
            self.error = None

    def _between_polls(self) -> Outcome | None:
        """Let the first viewers in once every capture caught up, wait for the next poll, and check that
        this process is still needed and still holds the lease."""
        if not self.ready.is_set():
            for capture in list(self._captures.values()):
                capture.caught_up.wait(self.engine.catch_up_timeout)
        self.ready.set()
        self._wait()
        if not self.needed():
            return Outcome.IDLE
        if self.engine.leases.acquire(self.task) is False:
            log.info("lease of %s taken by another process; following its journal", self.task)
            self._stop_captures()
            return Outcome.LOST
        return None

    def _update(self, task: ClusterTask) -> bool:
        """Apply what the cluster says; True once the final save has run."""
        for stream in task.streams:
            self.feed.add_stream(StreamInfo(stream.log, stream.phase))
        self._record_phases(task)  # also gives new streams their row ids
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
            if not self._read_archives(task):
                return False
            return self._final_save(task.phase)
        return False

    def _read_archives(self, task: ClusterTask) -> bool:
        """Before the final save: store from Argo's archive (`main-logs` artifacts) the logs nothing
        was captured of because their pods were gone first. False when an archive could not be read
        (the next poll tries again, up to ARCHIVE_ATTEMPTS times; then the save goes on without it)."""
        archives = self.engine.archives
        if archives is None or task.workflow is None:
            return True
        missing = [
            stream
            for stream in task.streams
            if (known := self.feed.streams.get(stream.key)) is not None
            and known.log_id is not None
            and not known.end
            and not self._captures[stream.key].started
            and archived_only(task, stream, 0)
        ]
        if not missing:
            return True
        reads = archives(self.task)
        for stream in missing:
            known = self.feed.streams[stream.key]
            if known.log_id is not None and self._stored_length(known.log_id) == 0:
                reads.store(self.engine.units, known.log_id, cast(dict, task.workflow), stream.log)
        if reads.notes:
            self._archive_attempts += 1
            if self._archive_attempts < ARCHIVE_ATTEMPTS:
                log.info("archived logs of %s not read yet (%s); retrying", self.task, reads.notes)
                return False
            log.warning("archived logs of %s unreadable; saving without them", self.task)
        return True

    def _record_phases(self, task: ClusterTask) -> None:
        """Store phase changes, so that followers elsewhere (and REST) see them before the final save."""
        phases = (task.phase, tuple((s.key, s.phase) for s in task.streams), task.times)
        self._times = task.times
        if phases == self._saved_phases:
            return
        try:
            with self.engine.write_slots, self.engine.units() as uow:
                ids = uow.record_phases(
                    self.task, task.phase, [(s.log, s.phase) for s in task.streams], task.times
                )
                uow.commit()
        except StoreUnavailable as error:  # tried again on the next change
            log.info("phases of %s not saved (%s)", self.task, error.message)
            return
        self._saved_phases = phases
        self.feed.set_log_ids(
            {s.key: ids[s.log] for s in task.streams if s.key in self.feed.streams}
        )

    def _start_capture(self, stream: Stream, status) -> ContainerCapture:
        known = self.feed.streams[stream.key]
        position = known.position or self._stored_position(known)
        if known.end and position == Position():
            # Text stored without a resume position (a compacted log): reading from the start again would
            # repeat it, so this stream is not captured again.
            log.warning(
                "log of %s is stored without a resume position; not capturing it again",
                stream.log.pod,
            )
            capture = ContainerCapture(self.cluster, self.feed, stream, position, None, 0)
            capture.caught_up.set()
            capture.finished.set()
            self._captures[stream.key] = capture
            return capture
        capture = ContainerCapture(
            self.cluster,
            self.feed,
            stream,
            position,
            status,
            self.engine.capture.poll_interval,
            self.engine.capture.pause,
            self.engine.writer.has_room,
        )
        self._captures[stream.key] = capture
        threading.Thread(
            target=self._capture, args=(capture,), name=f"capture-{stream.log.pod}", daemon=True
        ).start()
        return capture

    def _capture(self, capture: ContainerCapture) -> None:
        capture.run()
        if capture.complete:
            self.feed.end_stream(capture.stream.key)
        self.wake()

    def _stored_length(self, log_id: int) -> int:
        with self.engine.units() as uow:
            return repository.stored_length(uow.session, log_id)

    def _stored_position(self, stream: StreamInfo) -> Position:
        if stream.log_id is None or stream.end == 0:
            return Position()
        with self.engine.units() as uow:
            for row in repository.get_stored_logs(uow.session, self.task):
                if row.log_id == stream.log_id:
                    return row.position
        return Position()

    def _vanished(self) -> bool:
        """Workflow and pods are gone (deleted): what was captured is all there will be; save it as final."""
        log.info("task %s vanished from the cluster; saving what was captured", self.task)
        self._stop_captures()
        return self._final_save(
            self.feed.phase if argo.is_final_phase(self.feed.phase) else "Failed"
        )

    def _final_save(self, phase: str) -> bool:
        """Flush the journal, fold it into the logs, mark the task complete; then tell the viewers."""
        with self.engine.write_slots:
            if not self.engine.writer.flush([self.feed]) or self.feed.has_unsaved():
                return False
            log_phases = {s.log_id: s.phase for s in self.feed.streams.values() if s.log_id}
            try:
                with self.engine.units() as uow:
                    uow.final_save(self.task, phase, log_phases, self._times)
                    uow.commit()
            except StoreUnavailable as error:  # retried on the next poll
                log.warning("final save of %s failed (%s); retrying", self.task, error.message)
                return False
        self.feed.finish(phase)
        return True

    def _stop_captures(self) -> None:
        for capture in self._captures.values():
            capture.stop()
        for capture in self._captures.values():
            capture.finished.wait(5)
        self._captures.clear()
