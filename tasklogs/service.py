"""The service layer: what the routes call. Database first, Kubernetes as the fallback and the source
of anything new; the database keeps every log the service has seen."""
import logging
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable

from flask import current_app
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from . import repository
from .engine import capture
from .cursor import decode_cursor
from .errors import ClusterError, StoreUnavailable, TaskNotFound, InvalidTaskId, Unavailable
from .extensions import db
from .kube import Kube
from .config import containers
from .tasks import ClusterTask, read_task, stream_key

log = logging.getLogger(__name__)

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DEGRADED_HEADER = "X-Tasklogs-Degraded"
_engine_lock = threading.RLock()  # the adapter and the engine are built once per process


@dataclass
class LogEntry:
    """One pod's log as served: `read(start)` yields its text from character `start` in pieces."""
    node: str
    pod: str
    container: str
    phase: str
    read: Callable[[int], Iterable[str]]
    note: str | None = None

    @property
    def key(self) -> str:
        return stream_key(self.pod, self.container)


@dataclass
class TaskView:
    task_id: str
    phase: str
    source: str
    complete: bool
    entries: list[LogEntry]
    degraded: str | None = None
    notes: list[str] = field(default_factory=list)


def init_app(app, kube: Kube | None) -> None:
    """Keep the Kubernetes adapter given by the caller; otherwise one is built on first use."""
    app.extensions["tasklogs.kube"] = kube


def cluster() -> Kube:
    """This process's Kubernetes adapter."""
    extensions = current_app.extensions
    with _engine_lock:
        if extensions.get("tasklogs.kube") is None:
            extensions["tasklogs.kube"] = Kube.from_config(current_app.config)
    return extensions["tasklogs.kube"]


def validate_task_id(task_id: str) -> str:
    """A task id is an Argo Workflow name: a lowercase DNS-1123 subdomain of at most 253 characters."""
    if len(task_id) > 253 or not _DNS_SUBDOMAIN.fullmatch(task_id):
        raise InvalidTaskId(f"task id must be a Kubernetes object name (lowercase letters, digits, '-' and '.', "
                            f"at most 253 characters), got {task_id[:300]!r}")
    return task_id


@contextmanager
def store_errors():
    """Turn any database failure into StoreUnavailable, leaving the session usable."""
    try:
        yield
    except (DBAPIError, SQLAlchemyError) as error:
        try:
            db.session.rollback()
        except SQLAlchemyError:
            pass
        raise StoreUnavailable(f"database unavailable: {type(getattr(error, 'orig', None) or error).__name__}") \
            from None


def get_task_logs(task_id: str) -> TaskView:
    """The REST flow: stored logs of a finished task from the database alone; anything else refreshed
    from Kubernetes and saved first; Kubernetes alone (degraded) when the database is down."""
    validate_task_id(task_id)
    try:
        with store_errors():
            stored = repository.get_task(db.session, task_id)
        if stored and stored.complete:
            return database_view(task_id, stored.phase, "database", True)
        if stored and capture_running(task_id):
            return database_view(task_id, stored.phase, "database", False)  # its capturer keeps it current
        return _refreshed_view(task_id, stored)
    except StoreUnavailable as error:
        log.warning("database unavailable, serving task %s from Kubernetes only: %s", task_id, error.message)
        return kubernetes_view(task_id, degraded="database")


def _refreshed_view(task_id: str, stored) -> TaskView:
    try:
        task, complete = refresh_task(task_id)
    except TaskNotFound:
        if stored is None:
            raise
        return database_view(task_id, stored.phase, "database", stored.complete)
    except ClusterError as error:
        if stored is None:
            raise
        log.warning("Kubernetes unavailable, serving stored logs of %s: %s", task_id, error.message)
        view = database_view(task_id, stored.phase, "database", False)
        view.degraded = "kubernetes"
        return view
    return database_view(task_id, task.phase, "kubernetes", complete)


def capture_running(task_id: str) -> bool:
    """Whether a live capture (a tail's or the collector's, in any process) holds the task right now."""
    from .engine.leases import lease_key
    engine_ = current_app.extensions.get("tasklogs.engine")
    if engine_ is not None and engine_.leads(task_id):
        return True
    with store_errors():
        return not repository.try_task_lock(db.session, lease_key(task_id))


def refresh_task(task_id: str) -> tuple[ClusterTask, bool]:
    """Append what the task's containers logged since the last save; run the final save once it ended
    (unless a live capture holds the task: that capture runs the final save, with everything it took)."""
    kube, session = cluster(), db.session
    task = read_task(kube, task_id, containers(current_app.config))
    with store_errors():
        repository.save_task(session, task_id, task.phase)
        ids = repository.save_logs_to_database(task_id, [
            {"node": s.node_id, "pod": s.pod_name, "container": s.container, "phase": s.phase} for s in task.streams
        ], session)
        stored = {log.log_id: log for log in repository.get_stored_logs(session, task_id)}
        session.commit()
        for stream in task.streams:
            capture.store_container(kube, session, stored[ids[(stream.node_id, stream.pod_name, stream.container)]],
                                    stream, task.container_status(stream))
            session.commit()
        complete = task.settled and not capture_running(task_id)
        if complete:
            repository.compact_logs(session, task_id)
            repository.save_task(session, task_id, task.phase, complete=True)
            repository.notify(session, [task_id])
        session.commit()
    return task, complete


def database_view(task_id: str, phase: str, source: str, complete: bool) -> TaskView:
    """The task as stored; each entry reads its text lazily (inside the request's app context)."""
    with store_errors():
        rows = repository.get_stored_logs(db.session, task_id)
    entries = [LogEntry(row.node_id, row.pod_name, row.container, row.phase, _stored_reader(row.log_id))
               for row in rows]
    return TaskView(task_id, phase, source, complete, entries)


def _stored_reader(log_id: int):
    def read(start: int = 0):
        with store_errors():
            yield from repository.read_log(db.session, log_id, start)
    return read


def kubernetes_view(task_id: str, degraded: str | None = None) -> TaskView:
    """The task read straight from the cluster (the Kubernetes-only mode); Unavailable if that fails too."""
    kube = cluster()
    try:
        task = read_task(kube, task_id, containers(current_app.config))
    except ClusterError as error:
        if degraded:
            raise Unavailable(f"neither the database nor the cluster can answer: {error.message}") from None
        raise
    entries = [LogEntry(s.node_id, s.pod_name, s.container, s.phase,
                        _cluster_reader(kube, s, task.container_status(s))) for s in task.streams]
    return TaskView(task_id, task.phase, "kubernetes", task.settled, entries, degraded)


def _cluster_reader(kube: Kube, stream, status):
    def read(start: int = 0):
        skip = start
        try:
            for text, _ in capture.read_container(kube, stream.pod_name, stream.container, status):
                if skip >= len(text):
                    skip -= len(text)
                    continue
                yield text[skip:]
                skip = 0
        except ClusterError as error:
            log.info("log of %s unavailable: %s", stream.pod_name, error.message)
    return read


def fetch_logs_from_kubernetes(task_id: str, namespace: str | None = None) -> list[dict]:
    """The task's logs read whole from the cluster: `[{node, pod, phase, logs}]` (the design's helper)."""
    if namespace and namespace != cluster().namespace:
        raise ValueError(f"this service reads namespace {cluster().namespace!r}, not {namespace!r}")
    view = kubernetes_view(validate_task_id(task_id))
    return [{"node": e.node, "pod": e.pod, "container": e.container, "phase": e.phase, "logs": "".join(e.read(0))}
            for e in view.entries]


def narrowed(view: TaskView, pod: str | None, container: str | None) -> TaskView:
    """The view narrowed to one pod and/or one container; TaskNotFound when nothing matches."""
    entries = [entry for entry in view.entries
               if (pod is None or entry.pod == pod) and (container is None or entry.container == container)]
    if not entries:
        wanted = " ".join(f"{name} {value[:300]!r}" for name, value in (("pod", pod), ("container", container)) if value)
        raise TaskNotFound(f"task {view.task_id!r} has no {wanted}")
    view.entries = entries
    return view


def engine():
    """This process's live-tail engine, started on first use (after gunicorn forked the worker)."""
    extensions = current_app.extensions
    with _engine_lock:  # two first requests at once must not start two engines
        if extensions.get("tasklogs.engine") is None:
            from .engine import Engine
            extensions["tasklogs.engine"] = Engine(current_app._get_current_object(), cluster(), db.engine)
    return extensions["tasklogs.engine"]


def open_tail(task_id: str, cursor: str | None):
    """A live tail of the task for one WebSocket client, resuming after `cursor` when given."""
    from .engine.tail import Tail
    validate_task_id(task_id)
    offsets = decode_cursor(cursor) or {}
    config = current_app.config
    return Tail(engine(), task_id, offsets, max_queue=config["TASKLOGS_VIEWER_QUEUE"],
                frame_chars=config["TASKLOGS_FRAME_CHARS"], idle_timeout=config["TASKLOGS_WS_IDLE_TIMEOUT"],
                cluster_view=kubernetes_view)
