"""The service layer: what the routes call. Database first, Kubernetes as the fallback and the source
of anything new; the database keeps every log the service has seen.

Every function takes the process's `Services` (see `bootstrap`) first, so it runs the same under a
route, a command or a unit test.
"""

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .bootstrap import Services
from .cluster import Cluster, ContainerStatus
from .cursor import decode_cursor
from .engine import Tail
from .engine.oneshot import capture_running, read_container, refresh_task
from .errors import ClusterError, InvalidTaskId, StoreUnavailable, TaskNotFound, Unavailable
from .identity import LogId
from .store import repository
from .store.repository import StoredTask
from .tasks import read_task

log = logging.getLogger(__name__)

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DEGRADED_HEADER = "X-Tasklogs-Degraded"


@dataclass
class LogEntry:
    """One log as served: `read(start)` yields its text from character `start` in pieces."""

    log: LogId
    phase: str
    read: Callable[[int], Iterable[str]]
    note: str | None = None


@dataclass
class TaskView:
    task_id: str
    phase: str
    source: str
    complete: bool
    entries: list[LogEntry]
    degraded: str | None = None
    notes: list[str] = field(default_factory=list)


def validate_task_id(task_id: str) -> str:
    """A task id is an Argo Workflow name: a lowercase DNS-1123 subdomain of at most 253 characters."""
    if len(task_id) > 253 or not _DNS_SUBDOMAIN.fullmatch(task_id):
        raise InvalidTaskId(
            f"task id must be a Kubernetes object name (lowercase letters, digits, '-' and '.', "
            f"at most 253 characters), got {task_id[:300]!r}"
        )
    return task_id


def get_task_logs(services: Services, task_id: str) -> TaskView:
    """The REST flow: stored logs of a finished task from the database alone; anything else refreshed
    from Kubernetes and saved first; Kubernetes alone (degraded) when the database is down."""
    validate_task_id(task_id)
    try:
        with services.units() as uow:
            stored = repository.get_task(uow.session, task_id)
        if stored and stored.complete:
            return database_view(services, task_id, stored.phase, "database", True)
        if stored and is_captured(services, task_id):
            return database_view(
                services, task_id, stored.phase, "database", False
            )  # kept current by its capture
        return _refreshed_view(services, task_id, stored)
    except StoreUnavailable as error:
        log.warning(
            "database unavailable, serving task %s from Kubernetes only: %s", task_id, error.message
        )
        return kubernetes_view(services, task_id, degraded="database")


def _refreshed_view(services: Services, task_id: str, stored: StoredTask | None) -> TaskView:
    try:
        task, complete = refresh_task(
            services.kube,
            services.units,
            task_id,
            services.settings.cluster.containers,
            _leads(services),
        )
    except TaskNotFound:
        if stored is None:
            raise
        return database_view(services, task_id, stored.phase, "database", stored.complete)
    except ClusterError as error:
        if stored is None:
            raise
        log.warning("Kubernetes unavailable, serving stored logs of %s: %s", task_id, error.message)
        view = database_view(services, task_id, stored.phase, "database", False)
        view.degraded = "kubernetes"
        return view
    return database_view(services, task_id, task.phase, "kubernetes", complete)


def _leads(services: Services) -> Callable[[str], bool]:
    """Whether this process's engine (if it has started one) captures a task now."""
    return lambda task_id: (
        services.started_engine is not None and services.started_engine.leads(task_id)
    )


def is_captured(services: Services, task_id: str) -> bool:
    """Whether a live capture (a tail's or the collector's, in any process) holds the task right now."""
    with services.units() as uow:
        return capture_running(uow, task_id, _leads(services))


def database_view(
    services: Services, task_id: str, phase: str, source: str, complete: bool
) -> TaskView:
    """The task as stored; each entry reads its text lazily, in a unit of work of its own."""
    with services.units() as uow:
        rows = repository.get_stored_logs(uow.session, task_id)
    entries = [LogEntry(row.log, row.phase, _stored_reader(services, row.log_id)) for row in rows]
    return TaskView(task_id, phase, source, complete, entries)


def _stored_reader(services: Services, log_id: int) -> Callable[[int], Iterator[str]]:
    def read(start: int = 0) -> Iterator[str]:
        with services.units() as uow:
            yield from repository.read_log(uow.session, log_id, start)

    return read


def kubernetes_view(services: Services, task_id: str, degraded: str | None = None) -> TaskView:
    """The task read straight from the cluster (the Kubernetes-only mode); Unavailable if that fails too."""
    kube = services.kube
    try:
        task = read_task(kube, task_id, services.settings.cluster.containers)
    except ClusterError as error:
        if degraded:
            raise Unavailable(
                f"neither the database nor the cluster can answer: {error.message}"
            ) from None
        raise
    entries = [
        LogEntry(s.log, s.phase, _cluster_reader(kube, s.log, task.container_status(s)))
        for s in task.streams
    ]
    return TaskView(task_id, task.phase, "kubernetes", task.settled, entries, degraded)


def _cluster_reader(
    kube: Cluster, log_: LogId, status: ContainerStatus | None
) -> Callable[[int], Iterator[str]]:
    def read(start: int = 0) -> Iterator[str]:
        skip = start
        try:
            for text, _, _ in read_container(kube, log_, status):
                if skip >= len(text):
                    skip -= len(text)
                    continue
                yield text[skip:]
                skip = 0
        except ClusterError as error:
            log.info("log of %s unavailable: %s", log_.pod, error.message)

    return read


def fetch_logs_from_kubernetes(
    services: Services, task_id: str, namespace: str | None = None
) -> list[dict]:
    """The task's logs read whole from the cluster: `[{node, pod, container, phase, logs}]` (the design's
    helper)."""
    served = services.settings.cluster.namespace
    if namespace and namespace != served:
        raise ValueError(f"this service reads namespace {served!r}, not {namespace!r}")
    view = kubernetes_view(services, validate_task_id(task_id))
    return [{**e.log.fields(), "phase": e.phase, "logs": "".join(e.read(0))} for e in view.entries]


def narrowed(view: TaskView, pod: str | None, container: str | None) -> TaskView:
    """The view narrowed to one pod and/or one container; TaskNotFound when nothing matches."""
    entries = [
        entry
        for entry in view.entries
        if (pod is None or entry.log.pod == pod)
        and (container is None or entry.log.container == container)
    ]
    if not entries:
        wanted = " ".join(
            f"{name} {value[:300]!r}"
            for name, value in (("pod", pod), ("container", container))
            if value
        )
        raise TaskNotFound(f"task {view.task_id!r} has no {wanted}")
    view.entries = entries
    return view


def open_tail(services: Services, task_id: str, cursor: str | None) -> Tail:
    """A live tail of the task for one WebSocket client, resuming after `cursor` when given."""
    validate_task_id(task_id)
    offsets = decode_cursor(cursor) or {}
    tails = services.settings.tails
    return Tail(
        services.engine,
        task_id,
        offsets,
        max_queue=tails.viewer_queue,
        frame_chars=tails.frame_chars,
        idle_timeout=tails.idle_timeout,
        cluster_view=lambda task_id, degraded: kubernetes_view(services, task_id, degraded),
    )
