"""The service layer: what the routes call. Database first, Kubernetes as the fallback and the source
of anything new; the database keeps every log the service has seen."""
import json
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
from .cursor import decode_cursor, encode_cursor
from .errors import ClusterError, StoreUnavailable, TaskNotFound, InvalidTaskId, Unavailable
from .extensions import db
from .kube import Kube
from .tasks import ClusterTask, read_task
from .websocket import NORMAL

log = logging.getLogger(__name__)

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DEGRADED_HEADER = "X-Tasklogs-Degraded"


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
        return self.pod


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
        return _refreshed_view(task_id, stored)
    except StoreUnavailable as error:
        log.warning("database unavailable, serving task %s from Kubernetes only: %s", task_id, error.message)
        return kubernetes_view(task_id, degraded="database")


def _refreshed_view(task_id: str, stored) -> TaskView:
    try:
        task = refresh_task(task_id)
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
    return database_view(task_id, task.phase, "kubernetes", task.settled)


def refresh_task(task_id: str) -> ClusterTask:
    """Append what the task's containers logged since the last save; run the final save once it ended."""
    kube, session = cluster(), db.session
    task = read_task(kube, task_id, current_app.config["TASKLOGS_CONTAINER"])
    with store_errors():
        repository.save_task(session, task_id, task.phase)
        ids = repository.save_logs_to_database(
            task_id, [{"node": s.node_id, "pod": s.pod_name, "phase": s.phase} for s in task.streams], session)
        stored = {log.log_id: log for log in repository.get_stored_logs(session, task_id)}
        session.commit()
        for stream in task.streams:
            capture.store_container(kube, session, stored[ids[(stream.node_id, stream.pod_name)]], stream,
                                    task.container_status(stream))
            session.commit()
        if task.settled:
            repository.compact_logs(session, task_id)
            repository.save_task(session, task_id, task.phase, complete=True)
            session.commit()
    return task


def database_view(task_id: str, phase: str, source: str, complete: bool) -> TaskView:
    """The task as stored; each entry reads its text lazily (inside the request's app context)."""
    with store_errors():
        rows = repository.get_stored_logs(db.session, task_id)
    container = current_app.config["TASKLOGS_CONTAINER"]
    entries = [LogEntry(row.node_id, row.pod_name, container, row.phase, _stored_reader(row.log_id))
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
        task = read_task(kube, task_id, current_app.config["TASKLOGS_CONTAINER"])
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
    return [{"node": e.node, "pod": e.pod, "phase": e.phase, "logs": "".join(e.read(0))} for e in view.entries]


def only_pod(view: TaskView, pod: str) -> TaskView:
    """The view narrowed to one pod; TaskNotFound when the task has no such pod."""
    entries = [entry for entry in view.entries if entry.pod == pod]
    if not entries:
        raise TaskNotFound(f"task {view.task_id!r} has no pod {pod[:300]!r}")
    view.entries = entries
    return view


def snapshot_frame(view: TaskView, offsets: dict[str, int]) -> dict:
    """The first WebSocket frame: the REST body's fields, each log from the client's offset on."""
    logs = []
    for entry in view.entries:
        start = offsets.get(entry.key, 0)
        text = "".join(entry.read(start))
        offsets[entry.key] = start + len(text)
        logs.append({"node": entry.node, "pod": entry.pod, "container": entry.container, "phase": entry.phase,
                     "offset": start, "logs": text})
    return {"type": "snapshot", "task_id": view.task_id, "phase": view.phase, "source": view.source,
            "complete": view.complete, "logs": logs, "cursor": encode_cursor(offsets)}


class PollingTail:
    """A live tail that re-reads the task every `interval` seconds and sends only what is new."""

    def __init__(self, task_id: str, offsets: dict[str, int], interval: float):
        self.task_id, self.offsets, self.interval = task_id, offsets, interval
        self.close_code, self.close_reason = NORMAL, "task complete"
        self._stopped = threading.Event()
        self._phases: dict[str | None, str] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        db.session.remove()

    def stop(self) -> None:
        """The client went away: end `frames()` at once."""
        self._stopped.set()

    def frames(self):
        """JSON frames: a snapshot, then appends and phase changes, then `complete`."""
        view = self._view()
        yield _json(snapshot_frame(view, self.offsets))
        self._phases = self._phases_of(view)
        while not view.complete:
            if self._stopped.wait(self.interval):
                return
            view = self._view()
            yield from map(_json, self._changes(view))
        yield _json({"type": "complete", "phase": view.phase})

    def _view(self) -> TaskView:
        view = get_task_logs(self.task_id)
        db.session.commit()  # release the connection while waiting (flask-sock keeps one app context)
        return view

    @staticmethod
    def _phases_of(view: TaskView) -> dict[str | None, str]:
        return {None: view.phase, **{entry.node: entry.phase for entry in view.entries}}

    def _changes(self, view: TaskView):
        phases = self._phases_of(view)
        for node, phase in phases.items():
            if self._phases.get(node) != phase:
                yield {"type": "phase", "phase": phase, "node": node}
        self._phases = phases
        for entry in view.entries:
            start = self.offsets.get(entry.key, 0)
            data = "".join(entry.read(start))
            if data:
                self.offsets[entry.key] = start + len(data)
                yield {"type": "append", "node": entry.node, "pod": entry.pod, "container": entry.container,
                       "offset": start, "data": data, "cursor": encode_cursor(self.offsets)}


def open_tail(task_id: str, cursor: str | None) -> PollingTail:
    """A live tail of the task for one WebSocket client, resuming after `cursor` when given."""
    validate_task_id(task_id)
    offsets = decode_cursor(cursor) or {}
    return PollingTail(task_id, offsets, current_app.config["TASKLOGS_POLL_INTERVAL"])


def _json(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
