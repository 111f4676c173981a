"""The one-shot capture that REST uses: read a container's log once (no follow) from where the store
stands, append what is new, and run the final save once the task has ended.

`read_container` is the one primitive: it reads the log once from a `Position` and yields text with the
position after it; the follow capture (`follow.py`) runs the same parser over `follow=true` streams.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple, cast

from .. import argo
from ..cluster import Cluster, ContainerStatus
from ..errors import ContainerWaiting, LogsGone, ObjectNotFound
from ..identity import LogId, TaskRef
from ..logstream import START, LogParser, Position
from ..store import postgres, repository
from ..store.unit_of_work import UnitOfWork, UnitsOfWork
from ..tasks import ClusterTask, Stream, read_task

if TYPE_CHECKING:
    from ..archive import ArchiveReads

log = logging.getLogger(__name__)

APPEND_PIECE = 1 << 20  # characters appended at once when catching up a long log


class Read(NamedTuple):
    text: str
    position: Position
    stamps: list[int]


def read_container(
    kube: Cluster, log_: LogId, status: ContainerStatus | None, position: Position = START
) -> Iterator["Read"]:
    """Yield the container's log after `position` in pieces (text, the position after it, the
    timestamps of the lines starting in it), read once.

    A restarted container's previous instance is read first (`previous=true`); a container that has
    terminated is read to its very end. Nothing is yielded for a container that has not started."""
    if status is None or status["state"] == "waiting":
        return
    if status["restarts"] > position.restarts:
        try:
            position = yield from _read_once(kube, log_, position, previous=True, final=True)
        except LogsGone:
            log.warning(
                "previous log of %s is gone; continuing with the current instance", log_.key
            )
        position = replace(position, restarts=status["restarts"])
    yield from _read_once(
        kube, log_, position, previous=False, final=status["state"] == "terminated"
    )


def read_recent(
    kube: Cluster,
    log_: LogId,
    status: ContainerStatus | None,
    *,
    tail_lines: int | None = None,
    since_time: str | None = None,
) -> Iterator["Read"]:
    """The current instance's log read once, cut by the API server (`tailLines`, `sinceTime`): how
    the Kubernetes-only mode serves `tail` and `since` without reading the whole log."""
    if status is not None and status["state"] != "waiting":
        yield from _read_once(
            kube,
            log_,
            START,
            previous=False,
            final=status["state"] == "terminated",
            tail_lines=tail_lines,
            since_time=since_time,
        )


def _read_once(
    kube: Cluster,
    log_: LogId,
    position: Position,
    *,
    previous: bool,
    final: bool,
    tail_lines: int | None = None,
    since_time: str | None = None,
):
    parser = LogParser(position)
    with kube.open_log(
        log_.pod,
        log_.container,
        follow=False,
        since_time=since_time or position.since_time,
        previous=previous,
        tail_lines=tail_lines,
    ) as stream:
        for raw in stream:
            text = parser.feed(raw)
            if text:
                yield Read(text, parser.position, parser.take_stamps())
    if final:
        text = parser.finish()
        if text:
            yield Read(text, parser.position, parser.take_stamps())
    return parser.position


def store_container(
    kube: Cluster, units: UnitsOfWork, stored: repository.StoredLog, status: ContainerStatus | None
) -> int:
    """Append whatever the container logged beyond the stored text; return the stored length after.

    A pod that is gone, a container not started or whose log the node dropped leaves the store as is."""
    if stored.length and stored.position == START:
        return (
            stored.length
        )  # stored without a resume position: reading from the start would repeat it
    pending = Pending(stored.log_id, stored.length, stored.position)
    with units() as uow:
        try:
            for read in read_container(kube, stored.log, status, stored.position):
                pending.add(read)
                if pending.size >= APPEND_PIECE:
                    pending.append_to(uow)
        except (ObjectNotFound, ContainerWaiting, LogsGone) as error:
            log.info("no more log from %s: %s", stored.log.key, error.message)
        pending.append_to(uow)
        uow.commit()
    return pending.offset


class Pending:
    """Text read and not yet appended, with the timestamps of its lines."""

    def __init__(self, log_id: int, offset: int, position: Position):
        self.log_id, self.offset, self.position = log_id, offset, position
        self.texts: list[str] = []
        self.stamps: list[int] = []
        self.size = 0

    def add(self, read: Read) -> None:
        self.texts.append(read.text)
        self.stamps += read.stamps
        self.size += len(read.text)
        self.position = read.position

    def append_to(self, uow: UnitOfWork) -> None:
        if not self.texts:
            return
        text = "".join(self.texts)
        uow.append_text(self.log_id, self.offset, text, self.position, self.stamps)
        self.offset += len(text)
        self.texts, self.stamps, self.size = [], [], 0


def refresh_task(
    kube: Cluster,
    units: UnitsOfWork,
    ref: TaskRef,
    containers: tuple[str, ...],
    leads: Callable[[TaskRef], bool],
    *,
    max_nodes_bytes: int = argo.DEFAULT_MAX_NODES_BYTES,
    orphan_pods: bool = True,
    archive: "ArchiveReads | None" = None,
) -> tuple[ClusterTask, bool]:
    """Append what the task's containers logged since the last save; run the final save once it ended,
    unless a live capture holds the task (`leads` here, or a lease elsewhere): that capture runs the final
    save, with everything it took. Return the task and whether it is complete now.

    With `archive`, a finished node's log that neither the store nor the cluster has (its pod is gone)
    is read from the artifact Argo archived; one that cannot be read keeps the task incomplete, so a
    later request tries again (`archive.notes` says why)."""
    task = read_task(kube, ref, containers, max_nodes_bytes, orphan_pods=orphan_pods)
    with units() as uow:
        ids = uow.record_phases(
            ref, task.phase, [(s.log, s.phase) for s in task.streams], task.times
        )
        stored = {row.log_id: row for row in repository.get_stored_logs(uow.session, ref)}
        uow.commit()
    cluster = kube.in_namespace(ref.namespace)
    for stream in task.streams:
        length = store_container(
            cluster, units, stored[ids[stream.log]], task.container_status(stream)
        )
        if archive is not None and archived_only(task, stream, length):
            archive.store(units, ids[stream.log], cast(dict, task.workflow), stream.log)
    with units() as uow:
        complete = (
            task.settled
            and not capture_running(uow, ref, leads)
            and not (archive is not None and archive.notes)
        )
        if complete:
            uow.final_save(ref, task.phase, {}, task.times)
        uow.commit()
    return task, complete


def archived_only(task: ClusterTask, stream: Stream, length: int) -> bool:
    """Whether the log can only be had from Argo's archive: nothing stored, its pod gone, its node done."""
    return (
        length == 0
        and task.workflow is not None
        and stream.log.pod not in task.pods
        and argo.is_final_phase(stream.phase)
    )


def capture_running(uow: UnitOfWork, task: TaskRef, leads: Callable[[TaskRef], bool]) -> bool:
    """Whether a live capture (a tail's or the collector's, in any process) holds the task right now; if
    none does, the task's lease stays locked until `uow` ends, so none starts meanwhile."""
    return leads(task) or not postgres.try_task_lock(uow.session, task)


@dataclass
class Turn:
    """A request's turn at refreshing a task; `shared()` tells whether another request's refresh ended
    well while this one waited (what it stored is then fresh for this request too)."""

    lock: threading.Lock
    users: int = 0
    refreshes: int = 0  # refreshes of the task that ended well
    seen: int = 0

    def shared(self) -> bool:
        return self.refreshes != self.seen

    def refreshed(self) -> None:
        """This request's refresh ended well: the requests waiting behind it serve what it stored."""
        self.refreshes += 1


class RefreshTurns:
    """One REST refresh of a task at a time in this process: requests that come while one runs wait for
    it, then serve what it stored instead of reading Kubernetes again."""

    def __init__(self):
        self._turns: dict[TaskRef, Turn] = {}
        self._lock = threading.Lock()

    @contextmanager
    def turn(self, task: TaskRef) -> Iterator[Turn]:
        """Wait for the task's turn and hold it for the block."""
        with self._lock:
            turn = self._turns.setdefault(task, Turn(threading.Lock()))
            turn.users += 1
            seen = turn.refreshes
        try:
            with turn.lock:
                turn.seen = seen
                yield turn
        finally:
            with self._lock:
                turn.users -= 1
                if not turn.users:
                    del self._turns[task]
