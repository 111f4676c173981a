"""The service layer: what the routes call. Database first, Kubernetes as the fallback and the source
of anything new; the database keeps every log the service has seen.

Every function takes the process's `Services` (see `bootstrap`) first, so it runs the same under a
route, a command or a unit test.
"""

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import linequery, metrics, search
from .bootstrap import Services
from .cluster import Cluster, ContainerStatus
from .cursor import decode_cursor
from .engine import Tail
from .engine.lines import StoredText, stored_pages
from .engine.oneshot import Read, capture_running, read_container, read_recent, refresh_task
from .errors import (
    ClusterError,
    InvalidRequest,
    InvalidTaskId,
    NamespaceNotServed,
    StoreUnavailable,
    TaskNotFound,
    Unavailable,
)
from .identity import LogId, TaskRef
from .linequery import Hit, LineQuery
from .pages import PAGE_CHARS, LogEnd, from_line_start, lines_of, paginate
from .search import Match, Ranking, SearchQuery
from .store import postgres, repository
from .store.repository import PageRef, StoredLog, StoredTask
from .tasks import read_task

log = logging.getLogger(__name__)

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DEGRADED_HEADER = "X-Tasklogs-Degraded"


@dataclass
class LogEntry:
    """One log as served: `read(start)` yields its text from character `start` in pieces, `select`
    the lines a line query picks out, `line_count()` its lines so far (after reading, for a log read
    from the cluster)."""

    log: LogId
    phase: str
    read: Callable[[int], Iterable[str]]
    select: Callable[[LineQuery], Iterator[Hit]]
    line_count: Callable[[], int]
    note: str | None = None
    source: str = ""  # "artifacts": read from Argo's archived log (else captured from the cluster)
    read_utf8: Callable[[int], Iterable[bytes]] | None = None  # `read` as UTF-8, from the store
    byte_length: int | None = None  # a stored log's UTF-8 bytes (None: read from the cluster)

    def utf8(self, start: int = 0) -> Iterable[bytes]:
        """The text from character `start` as UTF-8: as the store sends it when it can, else encoded."""
        if self.read_utf8 is not None:
            return self.read_utf8(start)
        return (piece.encode("utf-8", "surrogatepass") for piece in self.read(start))


@dataclass
class TaskView:
    task: TaskRef
    phase: str
    source: str
    complete: bool
    entries: list[LogEntry]
    degraded: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return self.task.name


def validate_task_id(task_id: str) -> str:
    """A task id is an Argo Workflow name: a lowercase DNS-1123 subdomain of at most 253 characters."""
    if len(task_id) > 253 or not _DNS_SUBDOMAIN.fullmatch(task_id):
        raise InvalidTaskId(
            f"task id must be a Kubernetes object name (lowercase letters, digits, '-' and '.', "
            f"at most 253 characters), got {task_id[:300]!r}"
        )
    return task_id


def served_namespace(services: Services, namespace: str | None) -> str:
    """The namespace a route names (None: the default namespace); NamespaceNotServed for one this
    service does not serve."""
    cluster = services.settings.cluster
    if namespace is None:
        return cluster.namespace
    if not (_DNS_LABEL.fullmatch(namespace) and cluster.serves(namespace)):
        raise NamespaceNotServed(
            f"namespace {namespace[:80]!r} is not served here (TASKLOGS_NAMESPACES:"
            f" {cluster.namespaces_text})"
        )
    return namespace


def task_ref(services: Services, namespace: str | None, task_id: str) -> TaskRef:
    """The task a route names: `task_id` in `namespace` (None: the default namespace); InvalidTaskId
    for a malformed id."""
    return TaskRef(served_namespace(services, namespace), validate_task_id(task_id))


def get_task_logs(services: Services, ref: TaskRef) -> TaskView:
    """The REST flow: stored logs of a finished task from the database alone; anything else refreshed
    from Kubernetes and saved first; Kubernetes alone (degraded) when the database is down."""
    try:
        with services.units() as uow:
            stored = repository.get_task(uow.session, ref)
        if stored is None and ref in services.unknown:
            raise _unknown(ref)
        if stored and stored.complete:
            return database_view(services, ref, stored.phase, "database", True)
        if stored and is_captured(services, ref):
            return database_view(
                services, ref, stored.phase, "database", False
            )  # kept current by its capture
        return _refreshed_view(services, ref, stored)
    except StoreUnavailable as error:
        log.warning(
            "database unavailable, serving task %s from Kubernetes only: %s", ref, error.message
        )
        return kubernetes_view(services, ref, degraded="database")


def _refreshed_view(services: Services, ref: TaskRef, stored: StoredTask | None) -> TaskView:
    """Refresh the task from the cluster and serve the store; a request that comes while another
    refreshes the task (in this process, or another: an advisory lock) serves what that one stored."""
    with services.refreshes.turn(ref) as turn:
        if turn.shared():
            return _view_after_refresh(services, ref, stored)
        with services.units() as uow:
            if postgres.take_refresh_lock(uow.session, ref):
                view = _refresh(services, ref, stored)
            else:  # another process refreshed it meanwhile
                view = _view_after_refresh(services, ref, stored)
        turn.refreshed()
        return view


def _view_after_refresh(services: Services, ref: TaskRef, stored: StoredTask | None) -> TaskView:
    """The store's answer right after another request refreshed the task; if that refresh stored
    nothing (it failed), this one refreshes by itself."""
    with services.units() as uow:
        fresh = repository.get_task(uow.session, ref)
    if fresh is None:
        return _refresh(services, ref, stored)
    return database_view(services, ref, fresh.phase, "kubernetes", fresh.complete)


def _refresh(services: Services, ref: TaskRef, stored: StoredTask | None) -> TaskView:
    cluster = services.settings.cluster
    archive = services.archive_reads(ref)
    try:
        task, complete = refresh_task(
            services.kube,
            services.units,
            ref,
            cluster.containers,
            _leads(services),
            max_nodes_bytes=cluster.max_workflow_bytes,
            orphan_pods=stored is not None,  # an id never stored, without a Workflow: unknown
            archive=archive,
        )
    except TaskNotFound:
        if stored is None:
            services.unknown.add(ref)
            raise
        return database_view(services, ref, stored.phase, "database", stored.complete)
    except ClusterError as error:
        if stored is None:
            raise
        log.warning("Kubernetes unavailable, serving stored logs of %s: %s", ref, error.message)
        view = database_view(services, ref, stored.phase, "database", False)
        view.degraded = "kubernetes"
        metrics.degraded("kubernetes")
        return view
    source = "artifacts" if archive.stored else "kubernetes"
    view = database_view(services, ref, task.phase, source, complete)
    for entry in view.entries:
        entry.note = archive.notes.get(entry.log, entry.note)
    return view


def _leads(services: Services) -> Callable[[TaskRef], bool]:
    """Whether this process's engine (if it has started one) captures a task now."""
    return lambda task: services.started_engine is not None and services.started_engine.leads(task)


def is_captured(services: Services, ref: TaskRef) -> bool:
    """Whether a live capture (a tail's or the collector's, in any process) holds the task right now."""
    with services.units() as uow:
        return capture_running(uow, ref, _leads(services))


def database_view(
    services: Services, ref: TaskRef, phase: str, source: str, complete: bool
) -> TaskView:
    """The task as stored; each entry reads its pages lazily, a few at a time, each batch in a unit of
    work of its own: no connection is held while the client reads."""
    with services.units() as uow:
        rows = repository.get_stored_logs(uow.session, ref)
    entries = [_stored_entry(services, row) for row in rows]
    return TaskView(ref, phase, source, complete, entries)


def _stored_entry(services: Services, stored: StoredLog) -> LogEntry:
    text = StoredText(
        services.units, stored.log_id, stored.created_at, DOWNLOAD_STRETCH, DOWNLOAD_AHEAD
    )

    def select(query: LineQuery) -> Iterator[Hit]:
        start = _start_offset(services, stored, query)
        if start is None:
            return iter(())
        pages = stored_pages(services.units, stored.log_id, start, created=stored.created_at)
        return linequery.select_pages(from_line_start(pages) if start else pages, query)

    return LogEntry(
        stored.log,
        stored.phase,
        text.texts,
        select,
        lambda: stored.end.lines,
        source=stored.source,
        read_utf8=text.utf8,
        byte_length=stored.end.byte,
    )


# A whole-log download reads stretches of 4 MiB of text, each in its own unit of work, the next one
# while the worker sends this one (bench/README.md, "pages": two ahead were no faster than one).
DOWNLOAD_STRETCH = 32 * PAGE_CHARS
DOWNLOAD_AHEAD = 1


def _start_offset(services: Services, stored: StoredLog, query: LineQuery) -> int | None:
    """Where reading starts for the query (a page found through the line or time index), or None
    when nothing can match."""
    first_line = query.first_line
    if (
        query.tail is not None
        and query.grep is None
        and query.since is None
        and query.until is None
    ):
        first_line = max(1, stored.end.lines - query.tail + 1)
    with services.units() as uow:
        by_line = (
            repository.page_offset_of_line(uow.session, stored.log_id, first_line)
            if first_line > 1
            else 0
        )
        by_time = (
            repository.page_offset_of_time(uow.session, stored.log_id, query.since)
            if query.since is not None
            else 0
        )
    if by_line is None or by_time is None:
        return None
    return max(by_line, by_time)


def kubernetes_view(services: Services, ref: TaskRef, degraded: str | None = None) -> TaskView:
    """The task read straight from the cluster (the Kubernetes-only mode); Unavailable if that fails
    too, and when the task is unknown (the database might have had it)."""
    kube = services.kube.in_namespace(ref.namespace)
    try:
        task = _read_known_task(services, ref)
    except TaskNotFound:
        if degraded:  # the database, which cannot answer now, may hold it
            raise Unavailable(
                f"the database is unavailable and the cluster does not know task "
                f"{ref.name!r} in namespace {ref.namespace!r}: it may be stored;"
                " try again later"
            ) from None
        raise
    except ClusterError as error:
        if degraded:
            raise Unavailable(
                f"neither the database nor the cluster can answer: {error.message}"
            ) from None
        raise
    entries = [_cluster_entry(kube, s.log, s.phase, task.container_status(s)) for s in task.streams]
    if degraded:
        metrics.degraded(degraded)
    return TaskView(ref, task.phase, "kubernetes", task.settled, entries, degraded)


def _read_known_task(services: Services, ref: TaskRef):
    """The task from the cluster, unless the cluster said a moment ago that it does not know it."""
    if ref in services.unknown:
        raise _unknown(ref)
    cluster = services.settings.cluster
    try:
        return read_task(services.kube, ref, cluster.containers, cluster.max_workflow_bytes)
    except TaskNotFound:
        services.unknown.add(ref)
        raise


def _unknown(ref: TaskRef) -> TaskNotFound:
    return TaskNotFound(
        f"task {ref.name!r} is not known to the database or to the cluster (namespace"
        f" {ref.namespace!r}; asked a moment ago)"
    )


def _cluster_entry(
    kube: Cluster, log_: LogId, phase: str, status: ContainerStatus | None
) -> LogEntry:
    counted = [LogEnd()]

    def read(start: int = 0) -> Iterator[str]:
        for page in _cluster_pages(kube, log_, read_container(kube, log_, status), counted):
            if page.end_offset > start:
                yield page.text[max(0, start - page.start_offset) :]

    def select(query: LineQuery) -> Iterator[Hit]:
        if query.tail is not None and not _narrowed_in_service(query):
            reads = read_recent(kube, log_, status, tail_lines=query.tail)
        elif query.since is not None and query.tail is None and query.from_line is None:
            reads = read_recent(kube, log_, status, since_time=_second(query.since))
        else:
            reads = read_container(kube, log_, status)
        return linequery.select_pages(_cluster_pages(kube, log_, reads, counted), query)

    return LogEntry(log_, phase, read, select, lambda: counted[0].lines)


def _narrowed_in_service(query: LineQuery) -> bool:
    return any(
        value is not None for value in (query.grep, query.since, query.until, query.from_line)
    )


def _second(nanos: int) -> str:
    return linequery.format_ts(nanos)[:19] + "Z"


def _cluster_pages(kube: Cluster, log_: LogId, reads: Iterable[Read], counted: list[LogEnd]):
    """Pages built in memory from what the cluster returns (`counted[0]`: where they end so far)."""
    counted[0] = LogEnd()
    try:
        for read in reads:
            for page in paginate(counted[0], read.text, read.stamps, read.position):
                counted[0] = page.end
                yield page
    except ClusterError as error:
        log.info("log of %s unavailable: %s", log_.pod, error.message)


def fetch_logs_from_kubernetes(
    services: Services, task_id: str, namespace: str | None = None
) -> list[dict]:
    """The task's logs read whole from the cluster: `[{node, pod, container, phase, logs}]` (the design's
    helper)."""
    view = kubernetes_view(services, task_ref(services, namespace, task_id))
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


def open_tail(
    services: Services,
    task: TaskRef,
    cursor: str | None,
    tail_lines: int | None = None,
    lines_format: bool = False,
) -> Tail:
    """A live tail of the task for one WebSocket client: resuming after `cursor` when given, else
    from the last `tail_lines` lines of each log (or their start); `lines_format` sends whole lines."""
    tails = services.settings.tails
    return Tail(
        services.engine,
        task,
        decode_cursor(cursor),
        max_queue=tails.viewer_queue,
        frame_chars=tails.frame_chars,
        idle_timeout=tails.idle_timeout,
        cluster_view=lambda task, degraded: kubernetes_view(services, task, degraded),
        tail_lines=tail_lines,
        lines_format=lines_format,
    )


LIST_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")


def list_tasks(
    services: Services,
    namespace: str | None,
    *,
    phase: str | None = None,
    prefix: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    readable: Callable[[list[str]], list[str]] | None = None,
) -> dict:
    """The tasks the database knows, newest first: `{"tasks": [...], "next": cursor or None}`. Only
    `namespace` when given, else every served namespace; `readable` narrows the namespaces to those the
    caller may read (None: all of them)."""
    cluster = services.settings.cluster
    if phase is not None and phase not in LIST_PHASES:
        raise InvalidRequest(f"phase must be one of {', '.join(LIST_PHASES)}, got {phase[:40]!r}")
    if prefix is not None and len(prefix) > 253:
        raise InvalidRequest("prefix is longer than a task id can be (253 characters)")
    if prefix is not None and "\x00" in prefix:  # PostgreSQL text cannot hold it: no name has one
        raise InvalidRequest("prefix cannot contain a NUL character")
    after = _decode_list_cursor(cursor)
    with services.units() as uow:
        if namespace is not None:
            names: list[str] | None = [served_namespace(services, namespace)]
        elif cluster.all_namespaces:
            names = None if readable is None else repository.stored_namespaces(uow.session)
        else:
            names = list(cluster.namespaces)
        if readable is not None and names is not None:
            names = readable(names)
        rows = (
            repository.list_tasks(
                uow.session, names, phase=phase, prefix=prefix, after=after, limit=limit + 1
            )
            if names is None or names
            else []
        )
    more, rows = len(rows) > limit, rows[:limit]
    return {
        "tasks": [_listed(row) for row in rows],
        "next": _encode_list_cursor(rows[-1]) if more else None,
    }


def _listed(row: repository.TaskSummary) -> dict:
    return {
        "namespace": row.task.namespace,
        "task_id": row.task.name,
        "phase": row.phase,
        "complete": row.complete,
        "started_at": _rfc3339(row.started_at),
        "finished_at": _rfc3339(row.finished_at) if row.finished_at else None,
        "pods": row.pods,
        "lines": row.lines,
        "bytes": row.bytes,
    }


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _encode_list_cursor(row: repository.TaskSummary) -> str:
    """The keyset position after `row`: its (started_at, namespace, task_id), opaque to clients."""
    payload = json.dumps(
        [row.started_at.astimezone(UTC).isoformat(), row.task.namespace, row.task.name]
    )
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_list_cursor(cursor: str | None) -> tuple[datetime, str, str] | None:
    if cursor is None:
        return None
    try:
        if len(cursor) > 2000:
            raise ValueError("too long")
        started, namespace, name = json.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        moment = datetime.fromisoformat(started)
        if not (isinstance(namespace, str) and isinstance(name, str) and moment.tzinfo):
            raise ValueError("wrong types")
        if "\x00" in namespace + name:  # never issued: PostgreSQL text cannot hold it
            raise ValueError("NUL")
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest("cursor is not one this listing issued") from None
    return moment, namespace, name


# --- search across tasks ---

SEARCH_WALK = 16  # newest pages tested per unit of work while most of them hold the text
SEARCH_PAGES = 256  # candidate pages (ids only) the index finds per unit of work
SEARCH_READ = 8  # candidate pages read (text) per unit of work: about 1 MB


@dataclass(frozen=True)
class FoundLine:
    """A stored line a search found: where it is (namespace, task, log, line number), its timestamp
    and its text without the newline."""

    namespace: str
    task_id: str
    log: LogId
    number: int
    ts: int
    text: str


def searchable_namespaces(
    services: Services,
    wanted: str | None,
    readable: Callable[[list[str]], list[str]] | None = None,
) -> list[str]:
    """The namespaces a search may read: those this service serves (with `*`, those with stored
    tasks), narrowed by `readable` to what the caller may read, and of them only `wanted` when given."""
    cluster = services.settings.cluster
    if wanted is not None:
        names = [wanted] if cluster.serves(wanted) else []
    elif cluster.all_namespaces:
        with services.units() as uow:
            names = repository.stored_namespaces(uow.session)
    else:
        names = list(cluster.namespaces)
    return readable(names) if readable is not None and names else names


def search_lines(
    services: Services,
    query: SearchQuery,
    readable: Callable[[list[str]], list[str]] | None = None,
) -> list[FoundLine]:
    """The newest `query.limit` stored lines (by timestamp) holding `query.text`, across every task of
    the namespaces the search may read. Pages are read newest first, a few per unit of work, and the
    reading stops once no page left can hold a newer match."""
    namespaces = searchable_namespaces(services, query.namespace, readable)
    if not namespaces:
        return []
    matches = _ranked(services, query, namespaces).matches()
    with services.units() as uow:
        logs = repository.searched_logs(uow.session, {match.log_id for match in matches})
    return [
        FoundLine(
            logs[m.log_id].namespace,
            logs[m.log_id].task_id,
            logs[m.log_id].log,
            m.number,
            m.ts,
            _whole_line(services, m) if m.cut else m.text,
        )
        for m in matches
        if m.log_id in logs  # a task pruned meanwhile
    ]


def _ranked(services: Services, query: SearchQuery, namespaces: list[str]) -> Ranking:
    ranking = Ranking(query.limit)
    pending: list[PageRef] = []
    for ref in _candidate_pages(services, query, namespaces):
        if not pending and ranking.settled(ref.last_ts):
            break
        pending.append(ref)
        if len(pending) == SEARCH_READ:
            _rank_pages(services, pending, query, ranking)
            pending = []
    _rank_pages(services, pending, query, ranking)
    return ranking


def _candidate_pages(
    services: Services, query: SearchQuery, namespaces: list[str]
) -> Iterator[PageRef]:
    """Every page that may hold a match, newest first. The newest pages are walked SEARCH_WALK at a
    time while at least half of them hold the text (a common text: the index would find nearly every
    page); then the index finds the rest, SEARCH_PAGES per unit of work."""
    search = repository.TextSearch(
        query.text, query.ignore_case, namespaces, query.since, query.until
    )
    before = None
    while True:
        with services.units() as uow:
            walked = repository.walk_pages(uow.session, search, before, SEARCH_WALK)
        yield from (ref for ref, holds in walked if holds)
        if len(walked) < SEARCH_WALK:
            return
        before = walked[-1][0]
        if 2 * sum(holds for _, holds in walked) < SEARCH_WALK:
            break
    while True:
        with services.units() as uow:
            refs = repository.search_pages(uow.session, search, before, SEARCH_PAGES)
        yield from refs
        if len(refs) < SEARCH_PAGES:
            return
        before = refs[-1]


def _rank_pages(
    services: Services, refs: list[PageRef], query: SearchQuery, ranking: Ranking
) -> None:
    if not refs:
        return
    with services.units() as uow:
        pages = repository.read_pages_by_id(uow.session, [ref.page_id for ref in refs])
    for ref in refs:
        if ref.page_id in pages:  # else merged into an earlier page by a final save meanwhile
            for match in search.page_matches(ref.log_id, pages[ref.page_id], query):
                ranking.offer(match)


def _whole_line(services: Services, match: Match) -> str:
    """The text of a line cut by a page boundary, read from the page where it starts on."""
    with services.units() as uow:
        start = repository.page_offset_of_line(uow.session, match.log_id, match.number)
    if start is not None:
        for line in lines_of(stored_pages(services.units, match.log_id, start), match.number):
            return line.content
    return match.text
