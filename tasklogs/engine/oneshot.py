"""The one-shot capture that REST uses: read a container's log once (no follow) from where the store
stands, append what is new, and run the final save once the task has ended.

`read_container` is the one primitive: it reads the log once from a `Position` and yields text with the
position after it; the follow capture (`follow.py`) runs the same parser over `follow=true` streams.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import NamedTuple

from ..cluster import Cluster, ContainerStatus
from ..errors import ContainerWaiting, LogsGone, ObjectNotFound
from ..identity import LogId, TaskRef
from ..logstream import START, LogParser, Position
from ..store import postgres, repository
from ..store.unit_of_work import UnitOfWork, UnitsOfWork
from ..tasks import ClusterTask, read_task

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
) -> tuple[ClusterTask, bool]:
    """Append what the task's containers logged since the last save; run the final save once it ended,
    unless a live capture holds the task (`leads` here, or a lease elsewhere): that capture runs the final
    save, with everything it took. Return the task and whether it is complete now."""
    task = read_task(kube, ref, containers)
    with units() as uow:
        ids = uow.record_phases(
            ref, task.phase, [(s.log, s.phase) for s in task.streams], task.times
        )
        stored = {row.log_id: row for row in repository.get_stored_logs(uow.session, ref)}
        uow.commit()
    cluster = kube.in_namespace(ref.namespace)
    for stream in task.streams:
        store_container(cluster, units, stored[ids[stream.log]], task.container_status(stream))
    with units() as uow:
        complete = task.settled and not capture_running(uow, ref, leads)
        if complete:
            uow.final_save(ref, task.phase, {}, task.times)
        uow.commit()
    return task, complete


def capture_running(uow: UnitOfWork, task: TaskRef, leads: Callable[[TaskRef], bool]) -> bool:
    """Whether a live capture (a tail's or the collector's, in any process) holds the task right now; if
    none does, the task's lease stays locked until `uow` ends, so none starts meanwhile."""
    return leads(task) or not postgres.try_task_lock(uow.session, task)
