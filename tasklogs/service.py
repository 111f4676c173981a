"""The service layer: what the routes call. Database first, Kubernetes as the fallback and the source
of anything new; the database keeps every log the service has seen.

Every function takes the process's `Services` (see `bootstrap`) first, so it runs the same under a
route, a command or a unit test.
"""

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from . import linequery, search
from .bootstrap import Services
from .cluster import Cluster, ContainerStatus
from .cursor import decode_cursor
from .engine import Tail
from .engine.lines import stored_pages
from .engine.oneshot import Read, capture_running, read_container, read_recent, refresh_task
from .errors import ClusterError, InvalidTaskId, StoreUnavailable, TaskNotFound, Unavailable
from .identity import LogId
from .linequery import Hit, LineQuery
from .pages import LogEnd, from_line_start, lines_of, paginate
from .search import Match, Ranking, SearchQuery
from .store import repository
from .store.repository import PageRef, StoredLog, StoredTask
from .tasks import read_task

log = logging.getLogger(__name__)

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
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
    """The task as stored; each entry reads its pages lazily, a few at a time, each batch in a unit of
    work of its own: no connection is held while the client reads."""
    with services.units() as uow:
        rows = repository.get_stored_logs(uow.session, task_id)
    entries = [_stored_entry(services, row) for row in rows]
    return TaskView(task_id, phase, source, complete, entries)


def _stored_entry(services: Services, stored: StoredLog) -> LogEntry:
    def batch(after: int) -> list[tuple[int, str]]:
        with services.units() as uow:
            return repository.read_texts(uow.session, stored.log_id, after, TEXT_BATCH)

    def read(start: int = 0) -> Iterator[str]:
        for texts in _read_ahead(batch, start):
            for page_start, text in texts:
                yield text[max(0, start - page_start) :]

    def select(query: LineQuery) -> Iterator[Hit]:
        start = _start_offset(services, stored, query)
        if start is None:
            return iter(())
        pages = stored_pages(services.units, stored.log_id, start)
        return linequery.select_pages(from_line_start(pages) if start else pages, query)

    return LogEntry(stored.log, stored.phase, read, select, lambda: stored.end.lines)


TEXT_BATCH = 32  # pages of a whole-log download per unit of work (about 4 MB)


def _read_ahead(
    batch: Callable[[int], list[tuple[int, str]]], start: int
) -> Iterator[list[tuple[int, str]]]:
    """Batches of (offset, text) from `start` to the end, the next one read (in its own unit of work,
    on another thread: a greenlet under gevent) while the caller sends the current one."""
    pending = _Fetch(batch, start)
    while True:
        texts = pending.result()
        if len(texts) < TEXT_BATCH:
            yield texts
            return
        pending = _Fetch(batch, texts[-1][0] + len(texts[-1][1]))
        yield texts


class _Fetch:
    """One batch read on a thread of its own."""

    def __init__(self, batch: Callable[[int], list[tuple[int, str]]], after: int):
        self._value: list[tuple[int, str]] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(batch, after), daemon=True)
        self._thread.start()

    def _run(self, batch, after: int) -> None:
        try:
            self._value = batch(after)
        except BaseException as error:  # noqa: BLE001 - handed to the reader, raised there
            self._error = error

    def result(self) -> list[tuple[int, str]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


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


def kubernetes_view(services: Services, task_id: str, degraded: str | None = None) -> TaskView:
    """The task read straight from the cluster (the Kubernetes-only mode); Unavailable if that fails
    too, and when the task is unknown (the database might have had it)."""
    kube = services.kube
    try:
        task = read_task(kube, task_id, services.settings.cluster.containers)
    except TaskNotFound:
        if degraded:  # the database, which cannot answer now, may hold it
            raise Unavailable(
                f"the database is unavailable and the cluster does not know task "
                f"{task_id!r}: it may be stored; try again later"
            ) from None
        raise
    except ClusterError as error:
        if degraded:
            raise Unavailable(
                f"neither the database nor the cluster can answer: {error.message}"
            ) from None
        raise
    entries = [_cluster_entry(kube, s.log, s.phase, task.container_status(s)) for s in task.streams]
    return TaskView(task_id, task.phase, "kubernetes", task.settled, entries, degraded)


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


def open_tail(
    services: Services,
    task_id: str,
    cursor: str | None,
    tail_lines: int | None = None,
    lines_format: bool = False,
) -> Tail:
    """A live tail of the task for one WebSocket client: resuming after `cursor` when given, else
    from the last `tail_lines` lines of each log (or their start); `lines_format` sends whole lines."""
    validate_task_id(task_id)
    tails = services.settings.tails
    return Tail(
        services.engine,
        task_id,
        decode_cursor(cursor),
        max_queue=tails.viewer_queue,
        frame_chars=tails.frame_chars,
        idle_timeout=tails.idle_timeout,
        cluster_view=lambda task_id, degraded: kubernetes_view(services, task_id, degraded),
        tail_lines=tail_lines,
        lines_format=lines_format,
    )


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


def searchable_namespaces(services: Services, wanted: str | None) -> list[str]:
    """The namespaces a search may read: those this service serves (one place to narrow it to what
    the caller may read), and of them only `wanted` when given."""
    served = [services.settings.cluster.namespace]
    return [namespace for namespace in served if wanted is None or namespace == wanted]


def search_lines(services: Services, query: SearchQuery) -> list[FoundLine]:
    """The newest `query.limit` stored lines (by timestamp) holding `query.text`, across every task of
    the namespaces the search may read. Pages are read newest first, a few per unit of work, and the
    reading stops once no page left can hold a newer match."""
    namespaces = searchable_namespaces(services, query.namespace)
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
