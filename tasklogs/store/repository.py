"""All SQL of the service but PostgreSQL's own plumbing (`postgres.py`). Every function takes the
session first and leaves the transaction to its caller (the unit of work).

A log is its `log_pages` in offset order (see `tasklogs.pages`). Offsets count characters from the
start of the log, so a cursor stays valid whatever the pages are cut like.
"""

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, func, literal, select, text, tuple_, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

from ..identity import LogId, TaskRef
from ..logstream import Position
from ..pages import PAGE_CHARS, LogEnd, Page, decode_stamps, drop_head, encode_stamps, paginate
from . import postgres
from .models import CollectorMember, LogPage, Task, TaskLog, utcnow

tasks, task_logs, log_pages = Task.__table__, TaskLog.__table__, LogPage.__table__
collectors = CollectorMember.__table__
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredTask:
    task: TaskRef
    phase: str
    complete: bool


@dataclass(frozen=True)
class StoredLog:
    """One log's row: its row id, identity, phase, where its text ends and where its capture stands."""

    log_id: int
    log: LogId
    phase: str
    end: LogEnd
    position: Position
    source: str = ""  # "" captured from the cluster, "artifacts" read from Argo's archived log
    created_at: datetime | None = None  # the row's; its pages' `log_created_at` (their partition)

    @property
    def length(self) -> int:
        """Characters stored."""
        return self.end.offset


def _insert(session, table):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _is(table, task: TaskRef):
    """The condition that picks `task`'s rows of `tasks` or `task_logs`."""
    return and_(table.c.namespace == task.namespace, table.c.task_id == task.name)


def get_task(session, task: TaskRef) -> StoredTask | None:
    """The task's row, or None when nothing is stored for it."""
    row = session.execute(select(tasks.c.phase, tasks.c.complete).where(_is(tasks, task))).first()
    return StoredTask(task, row.phase, row.complete) if row else None


def complete_tasks(session, refs: Iterable[TaskRef]) -> set[TaskRef]:
    """Which of these tasks have had their final save."""
    refs = list(refs)
    if not refs:
        return set()
    rows = session.execute(
        select(tasks.c.namespace, tasks.c.task_id).where(
            tuple_(tasks.c.namespace, tasks.c.task_id).in_([(t.namespace, t.name) for t in refs]),
            tasks.c.complete,
        )
    )
    return {TaskRef(row.namespace, row.task_id) for row in rows}


def save_task(
    session,
    task: TaskRef,
    phase: str,
    complete: bool = False,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> None:
    """Create or update the task's row: its phase, whether its final save has run, and when the
    workflow started and finished (kept once known)."""
    now = utcnow()
    statement = _insert(session, tasks).values(
        namespace=task.namespace,
        task_id=task.name,
        phase=phase,
        complete=complete,
        created_at=now,
        updated_at=now,
        started_at=started_at or now,
        finished_at=finished_at,
    )
    changes = {
        "phase": phase,
        "complete": tasks.c.complete | statement.excluded.complete,
        "updated_at": now,
        "finished_at": func.coalesce(statement.excluded.finished_at, tasks.c.finished_at),
    }
    if started_at is not None:
        changes["started_at"] = started_at
    session.execute(
        statement.on_conflict_do_update(  # once complete, a task stays complete
            index_elements=["namespace", "task_id"], set_=changes
        )
    )


def record_logs(session, task: TaskRef, logs: Iterable[tuple[LogId, str]]) -> dict[LogId, int]:
    """Upsert one row per (log, phase), keeping any stored text; return the row ids by log."""
    return {log: _upsert_log(session, task, log, phase, None) for log, phase in logs}


def save_logs_to_database(session, task: TaskRef, logs: list[dict]) -> dict[LogId, int]:
    """The design's helper: upsert one row per entry `{node, pod, phase[, container][, logs]}`.

    An entry with a `logs` text replaces the log's stored text with it (a complete log, read whole);
    without one, only the phase is updated and the stored text is kept."""
    return {
        (log := LogId(entry["node"], entry["pod"], entry.get("container") or "main")): _upsert_log(
            session, task, log, entry.get("phase") or "", entry.get("logs")
        )
        for entry in logs
    }


def _upsert_log(session, task: TaskRef, log: LogId, phase: str, text_: str | None) -> int:
    values = {
        "namespace": task.namespace,
        "task_id": task.name,
        "node_id": log.node,
        "pod_name": log.pod,
        "container": log.container,
        "phase": phase,
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    changes = {"phase": phase, "updated_at": values["updated_at"]}
    statement = (
        _insert(session, task_logs)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["namespace", "task_id", "node_id", "pod_name", "container"],
            set_=changes,
        )
        .returning(task_logs.c.id)
    )
    log_id = session.execute(statement).scalar_one()
    if text_ is not None:  # a whole log, read without timestamps: its lines are stamped now
        session.execute(delete(log_pages).where(log_pages.c.log_id == log_id))
        pages = paginate(LogEnd(), text_, [], Position(), default_ts=time.time_ns())
        append_pages(session, [PageRun(log_id, pages)])
    return log_id


_PAGE_COLUMNS = (
    log_pages.c.start_offset,
    log_pages.c.start_byte,
    log_pages.c.first_line,
    log_pages.c.last_line,
    log_pages.c.ends_line,
    log_pages.c.first_ts,
    log_pages.c.last_ts,
    log_pages.c.stamps,
    log_pages.c.text,
    log_pages.c.since,
    log_pages.c.seen,
    log_pages.c.partial,
    log_pages.c.restarts,
)


def _page(row) -> Page:
    return Page(
        row.start_offset,
        row.start_byte,
        row.first_line,
        row.last_line,
        row.ends_line,
        row.first_ts,
        row.last_ts,
        decode_stamps(row.stamps),
        row.text,
        Position(row.since, row.seen, row.partial, row.restarts),
    )


def _last_page_of(log_id_column):
    """The join condition that picks each log's last page (an index lookup per log: PostgreSQL answers
    `max(start_offset)` from the (log_id, start_offset) index)."""
    pages = log_pages.alias("newest")
    newest = (
        select(func.max(pages.c.start_offset))
        .where(pages.c.log_id == log_id_column)
        .scalar_subquery()
    )
    return and_(log_pages.c.log_id == log_id_column, log_pages.c.start_offset == newest)


def _end(row) -> LogEnd:
    if row.end_offset is None:
        return LogEnd()
    return LogEnd(
        row.end_offset, row.start_byte + row.byte_count, row.last_line, row.ends_line, row.last_ts
    )


def get_stored_logs(session, task: TaskRef) -> list[StoredLog]:
    """Every log of the task in creation order, with where its text ends and its capture stands."""
    rows = session.execute(
        select(
            task_logs.c.id,
            task_logs.c.node_id,
            task_logs.c.pod_name,
            task_logs.c.container,
            task_logs.c.phase,
            task_logs.c.source,
            task_logs.c.created_at,
            log_pages.c.end_offset,
            log_pages.c.start_byte,
            log_pages.c.byte_count,
            log_pages.c.last_line,
            log_pages.c.ends_line,
            log_pages.c.last_ts,
            log_pages.c.since,
            log_pages.c.seen,
            log_pages.c.partial,
            log_pages.c.restarts,
        )
        .select_from(task_logs.outerjoin(log_pages, _last_page_of(task_logs.c.id)))
        .where(_is(task_logs, task))
        .order_by(task_logs.c.created_at, task_logs.c.id)
    )
    return [
        StoredLog(
            row.id,
            LogId(row.node_id, row.pod_name, row.container),
            row.phase,
            _end(row),
            Position()
            if row.end_offset is None
            else Position(row.since, row.seen, row.partial, row.restarts),
            row.source,
            row.created_at,
        )
        for row in rows
    ]


def stored_end(session, log_id: int) -> LogEnd:
    """Where the log's stored text ends."""
    row = session.execute(
        select(
            log_pages.c.end_offset,
            log_pages.c.start_byte,
            log_pages.c.byte_count,
            log_pages.c.last_line,
            log_pages.c.ends_line,
            log_pages.c.last_ts,
        )
        .where(log_pages.c.log_id == log_id)
        .order_by(log_pages.c.start_offset.desc())
        .limit(1)
    ).first()
    return _end(row) if row else LogEnd()


def stored_length(session, log_id: int) -> int:
    """Characters stored for the log."""
    return stored_end(session, log_id).offset


def append_chunk(
    session, log_id: int, start: int, data: str, position: Position, stamps: Iterable[int] = ()
) -> int:
    """Append `data`, which begins at character `start` of the log (`stamps`: the timestamps of the lines
    starting in it), if the stored log ends inside it.

    Whatever the store already holds is not written again, so several writers of the same capture never
    duplicate text. Returns where the stored log ends afterwards."""
    lock_logs(session, [log_id])
    end = stored_end(session, log_id)
    if end.offset < start or end.offset >= start + len(data):
        return end.offset
    rest, stamps = drop_head(data, list(stamps), end.offset - start)
    written = append_pages(
        session, [PageRun(log_id, paginate(end, rest, stamps, position))], locked=True
    )
    return start + len(data) if written else stored_length(session, log_id)


def save_archived_log(session, log_id: int, text_: str, ts: int) -> bool:
    """Store an archived log's whole text (every line stamped `ts`: the archive has no timestamps) and
    mark the log's source `artifacts`, unless the store holds text for it already; True if stored."""
    lock_logs(session, [log_id])
    if stored_end(session, log_id).offset or not text_:
        return False
    pages = paginate(LogEnd(), text_, [], Position(), default_ts=ts)
    append_pages(session, [PageRun(log_id, pages)], locked=True)
    session.execute(update(task_logs).where(task_logs.c.id == log_id).values(source="artifacts"))
    return True


def lock_logs(session, log_ids) -> None:
    """Share-lock the logs' rows for this transaction: it waits for a final save merging their pages
    (which takes FOR UPDATE), so an append always sees where the stored log really ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(task_logs.c.id)
            .where(task_logs.c.id.in_(sorted(set(log_ids))))
            .with_for_update(read=True)
        )


def _in_partition(session, created: datetime | None, pages=log_pages) -> list:
    """The condition that keeps a read of a log's pages in the log's own partition (`created`: the log
    row's `created_at`, its pages' `log_created_at`), so that PostgreSQL plans for that partition alone
    instead of every day's; none on SQLite or when the caller does not know it."""
    if created is None or session.get_bind().dialect.name != "postgresql":
        return []
    return [pages.c.log_created_at == created]


def _from_page_holding(session, log_id: int, offset: int, created: datetime | None = None):
    """Pages from the one holding character `offset` on, as an index range (a condition on
    `end_offset` would make every batch of a long read scan the log from its start), in the log's
    partition when `created` is known."""
    pages = log_pages.alias("holding")
    first = select(func.max(pages.c.start_offset)).where(
        pages.c.log_id == log_id,
        pages.c.start_offset <= offset,
        *_in_partition(session, created, pages),
    )
    return and_(
        *_in_partition(session, created),
        log_pages.c.start_offset >= func.coalesce(first.scalar_subquery(), 0),
        log_pages.c.end_offset > offset,
    )


def read_log(session, log_id: int, start: int = 0) -> Iterator[str]:
    """Yield the log's text from character `start`, page by page (memory stays bounded)."""
    pages = session.execute(
        select(log_pages.c.start_offset, log_pages.c.text)
        .where(log_pages.c.log_id == log_id, _from_page_holding(session, log_id, start))
        .order_by(log_pages.c.start_offset),
        execution_options={"yield_per": 16},
    )
    for page_start, text_ in pages:
        yield text_[max(0, start - page_start) :]


def read_pages(
    session, log_id: int, after: int = 0, limit: int = 8, created: datetime | None = None
) -> list[Page]:
    """Up to `limit` pages of the log in order, the first one holding character `after` (or later);
    `created`: the log row's `created_at`, to look in its partition alone."""
    return [
        _page(row)
        for row in session.execute(
            select(*_PAGE_COLUMNS)
            .where(
                log_pages.c.log_id == log_id, _from_page_holding(session, log_id, after, created)
            )
            .order_by(log_pages.c.start_offset)
            .limit(limit)
        )
    ]


def read_stretch(
    session,
    log_id: int,
    low: int,
    high: int,
    holding: bool,
    created: datetime | None = None,
    utf8: bool = False,
) -> list[tuple[int, int, str | bytes]]:
    """(start offset, end offset, text) of the log's pages that start in [low, high), in order, and
    first the one holding character `low` if `holding`: one stretch of a download or a catch-up, which
    need nothing else. `created`, the log row's `created_at` (its pages' `log_created_at`), lets
    PostgreSQL plan for the log's partition alone instead of every day's. `utf8`: each text as its
    UTF-8 bytes (on PostgreSQL as stored: never decoded and encoded again)."""
    lowest = (
        _from_page_holding(session, log_id, low, created)
        if holding
        else and_(log_pages.c.start_offset >= low, *_in_partition(session, created))
    )
    statement = (
        select(log_pages.c.start_offset, log_pages.c.end_offset, log_pages.c.text)
        .where(log_pages.c.log_id == log_id, lowest, log_pages.c.start_offset < high)
        .order_by(log_pages.c.start_offset)
    )
    rows = session.execute(statement, execution_options={postgres.TEXT_AS_BYTES: utf8})
    if utf8:  # bytes from psycopg2 on a UTF8 connection; encoded here from SQLite
        return [(start, end, _utf8(text_)) for start, end, text_ in rows]
    return [tuple(row) for row in rows]


def _utf8(text_: str | bytes) -> bytes:
    return text_ if isinstance(text_, bytes) else text_.encode("utf-8", "surrogatepass")


def page_offset_of_line(session, log_id: int, line: int) -> int | None:
    """The offset of the first page that holds part of line `line` (None past the end)."""
    return _first_page_reaching(session, log_id, log_pages.c.last_line, line)


def page_offset_of_time(session, log_id: int, since: int) -> int | None:
    """The offset of the first page holding a line stamped `since` or later (None: none is)."""
    return _first_page_reaching(session, log_id, log_pages.c.last_ts, since)


def _first_page_reaching(session, log_id: int, column, value: int) -> int | None:
    """The first page (in offset order) whose `column` (`last_line` or `last_ts`, each growing with
    the offset) reaches `value`: one step down its (log_id, column, start_offset) index. Not narrowed
    to the log's partition: with `log_created_at = ...` and a log the statistics do not know yet (just
    stored), PostgreSQL takes the unique (log_id, start_offset, log_created_at) index instead and sorts
    the log's whole index (5.8 ms against 0.2 ms for a 500 MB log, measured)."""
    return session.execute(
        select(log_pages.c.start_offset)
        .where(log_pages.c.log_id == log_id, column >= value)
        .order_by(column, log_pages.c.start_offset)
        .limit(1)
    ).scalar()


def get_logs_from_database(session, task: TaskRef) -> list[dict]:
    """The design's helper: every stored log of the task, `{node, pod, container, phase, logs}` in
    creation order ([] when none)."""
    return [
        {
            **stored.log.fields(),
            "phase": stored.phase,
            "logs": "".join(read_log(session, stored.log_id)),
        }
        for stored in get_stored_logs(session, task)
    ]


def save_phases(session, phases: dict[int, str]) -> None:
    """Record the latest phase of each log's row."""
    for log_id, phase in phases.items():
        session.execute(
            update(task_logs)
            .where(task_logs.c.id == log_id, task_logs.c.phase != phase)
            .values(phase=phase, updated_at=utcnow())
        )


def merge_pages(session, task: TaskRef) -> None:
    """The final save: merge each log's runs of small pages (the live capture's appends) into pages of
    about PAGE_CHARS characters that end where lines end (`merge_key`), and record each log's line and
    byte counts in `task_logs`. Large pages are left as they are: nothing is written twice but the
    small pages' text, once."""
    log_ids = select(task_logs.c.id).where(_is(task_logs, task))
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # FOR UPDATE conflicts with the share lock every append takes first (lock_logs): no page can
        # slip in while the pages are merged.
        session.execute(log_ids.with_for_update())
    ids = list(session.execute(log_ids).scalars())
    if not ids:
        return
    if postgres:
        params = {"ids": ids, "page": PAGE_CHARS, "small": PAGE_CHARS // 4}
        session.execute(_MERGE_FIRSTS, params)
        session.execute(_DELETE_MERGED, params)
    else:
        for log_id in ids:
            _merge_in_python(session, log_id)
    _seal(session, ids)
    _record_sizes(session, ids)


def _seal(session, ids: list[int]) -> None:
    """The logs' pages will not change again: the search's trigram index takes them now (it leaves
    the live capture's many small pages out: indexing each as it is appended cost four times the WAL
    of the text). Merged pages were sealed as they were written; large ones keep their TOASTed text,
    so sealing them writes a new heap tuple without copying the text."""
    session.execute(
        update(log_pages)
        .where(log_pages.c.log_id.in_(ids), log_pages.c.sealed.is_(False))
        .values(sealed=True)
    )


def _record_sizes(session, ids: list[int]) -> None:
    for log_id in ids:
        end = stored_end(session, log_id)
        session.execute(
            update(task_logs)
            .where(task_logs.c.id == log_id)
            .values(lines=end.lines, bytes=end.byte)
        )


def merge_key(anchor: int, start_offset: int) -> int:
    """Which merged page a small page goes into: the PAGE_CHARS stretch of the line it is in (`anchor`,
    the start of the latest page that begins a line), or of its own start once that line has run for
    half a page. So merged pages end after a newline unless a line is longer than half a page, and
    hold at most 1.5 PAGE_CHARS and a small page."""
    return max(anchor, start_offset - PAGE_CHARS // 2) // PAGE_CHARS


def _merge_in_python(session, log_id: int) -> None:
    """SQLite (quick local runs): the same merge, in Python."""
    groups: list[list] = [[]]
    group_key: int | None = None  # the merge key of the last group's small pages
    anchor, ends_line = 0, True
    for row in session.execute(
        select(log_pages).where(log_pages.c.log_id == log_id).order_by(log_pages.c.start_offset)
    ):
        anchor = row.start_offset if ends_line else anchor
        ends_line = row.ends_line
        small = row.end_offset - row.start_offset < PAGE_CHARS // 4
        key = merge_key(anchor, row.start_offset) if small else None
        if key is None or key != group_key:
            groups.append([])
            group_key = key
        if small:
            groups[-1].append(row)
    for rows in groups:
        if len(rows) > 1:
            _merge_rows(session, rows)


def _merge_rows(session, rows: list) -> None:
    first, last = rows[0], rows[-1]
    session.execute(
        update(log_pages)
        .where(log_pages.c.id == first.id)
        .values(
            end_offset=last.end_offset,
            byte_count=sum(r.byte_count for r in rows),
            last_line=last.last_line,
            ends_line=last.ends_line,
            last_ts=last.last_ts,
            stamps=b"".join(r.stamps for r in rows),
            text="".join(r.text for r in rows),
            since=last.since,
            seen=last.seen,
            partial=last.partial,
            restarts=last.restarts,
        )
    )
    session.execute(delete(log_pages).where(log_pages.c.id.in_([r.id for r in rows[1:]])))


# Runs of consecutive small pages with the same `merge_key` become their first page, grown; the pages
# it now covers go. `line_start` marks a page that begins a line (the one before it ends with a
# newline); `anchor` is the latest such page's start, so a page inside a line goes with the line's.
_MERGE_FIRSTS = text("""
WITH marked AS (
    SELECT id, log_id, start_offset, end_offset - start_offset < :small AS small,
           CASE WHEN coalesce(lag(ends_line) OVER w, true) THEN start_offset END AS line_start,
           sum(CASE WHEN end_offset - start_offset < :small THEN 0 ELSE 1 END) OVER w AS run
    FROM log_pages WHERE log_id = ANY(:ids)
    WINDOW w AS (PARTITION BY log_id ORDER BY start_offset)
), pages AS (
    SELECT *, max(line_start) OVER (PARTITION BY log_id ORDER BY start_offset) AS anchor
    FROM marked
), groups AS (
    SELECT log_id, min(start_offset) AS first_start, array_agg(id) AS ids
    FROM pages WHERE small
    GROUP BY log_id, run, greatest(anchor, start_offset - :page / 2) / :page HAVING count(*) > 1
), merged AS (
    SELECT g.log_id, g.first_start, max(p.end_offset) AS end_offset, sum(p.byte_count) AS byte_count,
           max(p.last_line) AS last_line,
           (array_agg(p.ends_line ORDER BY p.start_offset DESC))[1] AS ends_line,
           (array_agg(p.last_ts ORDER BY p.start_offset DESC))[1] AS last_ts,
           string_agg(p.text, '' ORDER BY p.start_offset) AS text,
           (array_agg(p.since ORDER BY p.start_offset DESC))[1] AS since,
           (array_agg(p.seen ORDER BY p.start_offset DESC))[1] AS seen,
           (array_agg(p.partial ORDER BY p.start_offset DESC))[1] AS partial,
           (array_agg(p.restarts ORDER BY p.start_offset DESC))[1] AS restarts,
           string_agg(p.stamps, ''::bytea ORDER BY p.start_offset) AS stamps
    FROM groups g JOIN log_pages p ON p.id = ANY(g.ids)
    GROUP BY g.log_id, g.first_start, g.ids
)
UPDATE log_pages t SET end_offset = m.end_offset, byte_count = m.byte_count,
    last_line = m.last_line, ends_line = m.ends_line, last_ts = m.last_ts, text = m.text,
    stamps = m.stamps, since = m.since, seen = m.seen, partial = m.partial, restarts = m.restarts,
    sealed = true
FROM merged m WHERE t.log_id = m.log_id AND t.start_offset = m.first_start
""")
_DELETE_MERGED = text("""
DELETE FROM log_pages p
WHERE p.log_id = ANY(:ids) AND EXISTS (
    SELECT 1 FROM log_pages f
    WHERE f.log_id = p.log_id AND f.start_offset < p.start_offset AND f.end_offset >= p.end_offset)
""")


@dataclass(frozen=True)
class PageRun:
    """Consecutive pages to append to one log; the first must start where the stored log ends."""

    log_id: int
    pages: list[Page]

    @property
    def start(self) -> int:
        return self.pages[0].start_offset

    @property
    def end(self) -> int:
        return self.pages[-1].end_offset


def append_pages(session, runs: list[PageRun], locked: bool = False) -> set[tuple[int, int]]:
    """Append each run only if it starts exactly where its log's stored text ends (compare and append);
    return (log_id, start) of the runs written. Runs that lost to another writer are skipped."""
    runs = [run for run in runs if run.pages]
    if not runs:
        return set()
    if not locked:
        lock_logs(session, [run.log_id for run in runs])
    if session.get_bind().dialect.name != "postgresql":
        runs = [run for run in runs if stored_length(session, run.log_id) == run.start]
        created = _logs_created(session, [run.log_id for run in runs])
        for run in runs:
            session.execute(
                log_pages.insert(),
                [
                    {
                        **_page_values(run.log_id, p),
                        "stamps": encode_stamps(p.stamps),
                        "log_created_at": created[run.log_id],
                    }
                    for p in run.pages
                ],
            )
        return {(run.log_id, run.start) for run in runs}
    values = [_page_values(run.log_id, page) for run in runs for page in run.pages]
    # The rows go as an execute parameter: a value bound into the statement object (`.bindparams`)
    # would stay in a reference cycle, megabytes each, until the cyclic garbage collector ran.
    rows_json = json.dumps(values, default=str, ensure_ascii=False)
    written = session.execute(_APPEND_AT_END, {"rows": rows_json})
    return {(row.log_id, row.start_offset) for row in written}


def _logs_created(session, log_ids: list[int]) -> dict[int, datetime]:
    """When each of these logs' rows was created: their pages' `log_created_at`."""
    rows = session.execute(
        select(task_logs.c.id, task_logs.c.created_at).where(task_logs.c.id.in_(set(log_ids)))
    )
    return {row.id: row.created_at for row in rows}


def _page_values(log_id: int, page: Page) -> dict:
    """A page as a JSON-able row (timestamps in hexadecimal)."""
    position = page.position
    return {
        "log_id": log_id,
        "start_offset": page.start_offset,
        "end_offset": page.end_offset,
        "start_byte": page.start_byte,
        "byte_count": page.byte_count,
        "first_line": page.first_line,
        "last_line": page.last_line,
        "ends_line": page.ends_line,
        "first_ts": page.first_ts,
        "last_ts": page.last_ts,
        "stamps": encode_stamps(page.stamps).hex(),
        "text": page.text,
        "since": position.since,
        "seen": position.seen,
        "partial": position.partial,
        "restarts": position.restarts,
        "created_at": utcnow(),
    }


# One statement for a whole flush: pages arrive as a JSON array; a log's pages are inserted only when
# the first of them starts where the log's stored text ends (its last page's end, or 0); the rest of
# a log's pages follow the first contiguously by construction. Each page carries its log's creation
# time, the partition key (`store.partitions`). The start offset of each log's first page is returned.
_APPEND_AT_END = text("""
WITH r AS (
    SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        log_id integer, start_offset bigint, end_offset bigint, start_byte bigint, byte_count integer,
        first_line bigint, last_line bigint, ends_line boolean, first_ts bigint, last_ts bigint,
        stamps text, text text, since varchar, seen integer, partial bigint, restarts integer,
        created_at timestamptz)
), firsts AS (
    SELECT log_id, min(start_offset) AS start_offset FROM r GROUP BY log_id
), ok AS (
    SELECT f.log_id, f.start_offset FROM firsts f
    WHERE f.start_offset = COALESCE((SELECT p.end_offset FROM log_pages p WHERE p.log_id = f.log_id
                                     ORDER BY p.start_offset DESC LIMIT 1), 0)
), inserted AS (
    INSERT INTO log_pages (log_id, start_offset, end_offset, start_byte, byte_count, first_line,
                           last_line, ends_line, first_ts, last_ts, stamps, text, since, seen,
                           partial, restarts, created_at, log_created_at)
    SELECT r.log_id, r.start_offset, r.end_offset, r.start_byte, r.byte_count, r.first_line,
           r.last_line, r.ends_line, r.first_ts, r.last_ts, decode(r.stamps, 'hex'), r.text, r.since,
           r.seen, r.partial, r.restarts, r.created_at, l.created_at
    FROM r JOIN ok ON ok.log_id = r.log_id JOIN task_logs l ON l.id = r.log_id
    ON CONFLICT (log_id, start_offset, log_created_at) DO NOTHING
    RETURNING log_id
)
SELECT DISTINCT ok.log_id, ok.start_offset FROM ok JOIN inserted ON inserted.log_id = ok.log_id
""")


@dataclass(frozen=True)
class PageRef:
    """A page a search found: its row id, its log's row id and the timestamp of its last line."""

    page_id: int
    log_id: int
    last_ts: int


@dataclass(frozen=True)
class SearchedLog:
    """Where a log a search found lives: its task's namespace and id, and its node, pod, container."""

    namespace: str
    task_id: str
    log: LogId


@dataclass(frozen=True)
class TextSearch:
    """What a search looks for: a literal text (case folded with `ignore_case`) in the pages of logs
    of `namespaces` that may hold lines stamped in [since, until)."""

    text: str
    ignore_case: bool
    namespaces: list[str]
    since: int | None = None
    until: int | None = None


def walk_pages(
    session, search: TextSearch, before: PageRef | None, count: int
) -> list[tuple[PageRef, bool]]:
    """The next `count` pages in the search's namespaces and time range, newest first (`last_ts`,
    then id, descending) after `before`, each with whether it may hold the text: for a text many
    pages hold, where walking the newest pages beats the index."""
    newest = (
        select(log_pages.c.id, log_pages.c.log_id, log_pages.c.last_ts, log_pages.c.text)
        .where(*_in_range(search, before))
        .order_by(log_pages.c.last_ts.desc(), log_pages.c.id.desc())
        .limit(count)
        .subquery()
    )  # the text is only read (detoasted) for these pages
    holds = _text_holds(session, newest.c.text, search)
    rows = session.execute(
        select(
            newest.c.id,
            newest.c.log_id,
            newest.c.last_ts,
            (holds if holds is not None else literal(True)).label("holds"),
        ).order_by(newest.c.last_ts.desc(), newest.c.id.desc())
    )
    return [(PageRef(row.id, row.log_id, row.last_ts), bool(row.holds)) for row in rows]


def search_pages(
    session, search: TextSearch, before: PageRef | None = None, limit: int = 256
) -> list[PageRef]:
    """Up to `limit` pages that may hold the text, in the search's namespaces and time range, newest
    first after `before`. On PostgreSQL the trigram index finds them; SQLite scans."""
    _prefer_the_index(session)
    statement = search_statement(session, search, before, limit)
    return [PageRef(row.id, row.log_id, row.last_ts) for row in session.execute(statement)]


def search_statement(session, search: TextSearch, before: PageRef | None, limit: int):
    """The SELECT `search_pages` runs: the pages holding the text (through the trigram index), then
    the other conditions on those alone."""
    holds = _text_holds(session, log_pages.c.text, search)
    holds = holds if holds is not None else literal(True)
    columns = (log_pages.c.id, log_pages.c.log_id, log_pages.c.first_ts, log_pages.c.last_ts)
    # sealed pages through the trigram index (it holds only those), running tasks' pages through
    # their own partial index, each tested for the text
    candidates = union_all(
        select(*columns).where(holds, log_pages.c.sealed),
        select(*columns).where(holds, ~log_pages.c.sealed),
    )
    if session.get_bind().dialect.name == "postgresql":
        # The planner prices a condition on TOASTed text as if it were free, and would rather walk
        # another index and test the text of every page: this CTE (with sequential scans off) leaves
        # it the trigram index alone.
        found = candidates.cte("candidates").prefix_with("MATERIALIZED")
    else:
        found = candidates.cte("candidates")
    return (
        select(found.c.id, found.c.log_id, found.c.last_ts)
        .where(*_in_range(search, before, found.c))
        .order_by(found.c.last_ts.desc(), found.c.id.desc())
        .limit(limit)
    )


def explain_search(session, search: TextSearch, analyze: bool = False) -> str:
    """PostgreSQL's plan of the first `search_pages` statement of a search (ANALYZE: run, timed)."""
    _prefer_the_index(session)
    statement = search_statement(session, search, None, 256)
    compiled = statement.compile(session.get_bind(), compile_kwargs={"render_postcompile": True})
    verb = "EXPLAIN (ANALYZE, BUFFERS)" if analyze else "EXPLAIN"
    rows = session.connection().exec_driver_sql(f"{verb} {compiled}", compiled.params)
    return "\n".join(row[0] for row in rows)


def _prefer_the_index(session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL enable_seqscan = off"))  # this transaction only


def _in_range(search: TextSearch, before: PageRef | None, columns=log_pages.c) -> list:
    """The conditions on a page but its text: namespaces, time range, after `before`."""
    # A primary-key lookup per page: a join would let the planner scan every log of the namespaces
    # once per candidate page.
    namespace = (
        select(task_logs.c.namespace).where(task_logs.c.id == columns.log_id).scalar_subquery()
    )
    conditions: list = [namespace.in_(search.namespaces)]
    if search.since is not None:
        conditions.append(columns.last_ts >= search.since)
    if search.until is not None:
        conditions.append(columns.first_ts < search.until)
    if before is not None:
        conditions.append(
            tuple_(columns.last_ts, columns.id) < tuple_(before.last_ts, before.page_id)
        )
    return conditions


def _text_holds(session, column, search: TextSearch):
    """The condition a page whose text `column` holds the search's text meets (a superset: the
    caller checks each line), or None when SQLite cannot tell (its LIKE folds the case of ASCII
    letters only)."""
    pattern = "%" + _like_escaped(search.text) + "%"
    if session.get_bind().dialect.name == "postgresql":  # whose LIKE escapes with a backslash
        return column.ilike(pattern) if search.ignore_case else column.like(pattern)
    if not search.ignore_case:
        return func.instr(column, search.text) > 0
    return column.like(pattern, escape="\\") if search.text.isascii() else None


def _like_escaped(text_: str) -> str:
    """`text_` as a literal inside a LIKE pattern whose escape character is a backslash."""
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def read_pages_by_id(session, page_ids: list[int]) -> dict[int, Page]:
    """The pages of these row ids, by id."""
    rows = session.execute(
        select(log_pages.c.id, *_PAGE_COLUMNS).where(log_pages.c.id.in_(page_ids))
    )
    return {row.id: _page(row) for row in rows}


def searched_logs(session, log_ids) -> dict[int, SearchedLog]:
    """The namespace, task and identity of each of these logs, by row id."""
    rows = session.execute(
        select(
            task_logs.c.id,
            task_logs.c.namespace,
            task_logs.c.task_id,
            task_logs.c.node_id,
            task_logs.c.pod_name,
            task_logs.c.container,
        ).where(task_logs.c.id.in_(sorted(set(log_ids))))
    )
    return {
        row.id: SearchedLog(
            row.namespace, row.task_id, LogId(row.node_id, row.pod_name, row.container)
        )
        for row in rows
    }


def check_database(session) -> None:
    """Raise unless the database answers."""
    session.execute(select(literal(1)))


def tasks_older_than(session, cutoff, limit: int | None) -> list[TaskRef]:
    """Tasks whose newest row (task or any of its logs) is older than `cutoff`."""
    newest = (
        select(
            task_logs.c.namespace,
            task_logs.c.task_id,
            func.max(task_logs.c.updated_at).label("updated_at"),
        )
        .group_by(task_logs.c.namespace, task_logs.c.task_id)
        .union_all(select(tasks.c.namespace, tasks.c.task_id, tasks.c.updated_at))
        .subquery()
    )
    query = (
        select(newest.c.namespace, newest.c.task_id)
        .group_by(newest.c.namespace, newest.c.task_id)
        .having(func.max(newest.c.updated_at) < cutoff)
        .order_by(newest.c.namespace, newest.c.task_id)
    )
    rows = session.execute(query.limit(limit) if limit else query)
    return [TaskRef(row.namespace, row.task_id) for row in rows]


def delete_tasks(session, refs: list[TaskRef]) -> None:
    """Remove these tasks' rows, their logs and their pages."""
    pairs = [(t.namespace, t.name) for t in refs]
    if not pairs:
        return
    of_logs = tuple_(task_logs.c.namespace, task_logs.c.task_id).in_(pairs)
    log_ids = select(task_logs.c.id).where(of_logs)
    session.execute(delete(log_pages).where(log_pages.c.log_id.in_(log_ids)))
    session.execute(delete(task_logs).where(of_logs))
    session.execute(delete(tasks).where(tuple_(tasks.c.namespace, tasks.c.task_id).in_(pairs)))


def stored_namespaces(session) -> list[str]:
    """Every namespace with a stored task."""
    return list(session.execute(select(tasks.c.namespace).distinct()).scalars())


@dataclass(frozen=True)
class TaskSummary:
    """One row of the task listing."""

    task: TaskRef
    phase: str
    complete: bool
    started_at: datetime
    finished_at: datetime | None
    pods: int
    lines: int
    bytes: int


def list_tasks(
    session,
    namespaces: list[str] | None,
    *,
    phase: str | None = None,
    prefix: str | None = None,
    after: tuple[datetime, str, str] | None = None,
    limit: int = 50,
) -> list[TaskSummary]:
    """Tasks newest first (by `started_at`, then namespace and name, descending), in `namespaces`
    (None: all), optionally of one phase or with a name prefix, after the keyset position `after`
    (the previous page's last (started_at, namespace, task_id)). A log's lines and bytes are those of
    its last page, so running tasks count what is stored so far."""
    query = select(
        tasks.c.namespace,
        tasks.c.task_id,
        tasks.c.phase,
        tasks.c.complete,
        tasks.c.started_at,
        tasks.c.finished_at,
    )
    if namespaces is not None:
        query = query.where(tasks.c.namespace.in_(namespaces))
    if phase:
        query = query.where(tasks.c.phase == phase)
    if prefix:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(tasks.c.task_id.like(escaped + "%", escape="\\"))
    if after is not None:
        query = query.where(
            tuple_(tasks.c.started_at, tasks.c.namespace, tasks.c.task_id) < tuple_(*after)
        )
    query = query.order_by(
        tasks.c.started_at.desc(), tasks.c.namespace.desc(), tasks.c.task_id.desc()
    ).limit(limit)
    rows = session.execute(query).all()
    refs = [TaskRef(row.namespace, row.task_id) for row in rows]
    sizes = _sizes(session, refs)
    return [
        TaskSummary(
            ref,
            row.phase,
            row.complete,
            _aware(row.started_at),
            _aware(row.finished_at) if row.finished_at else None,
            *sizes.get(ref, (0, 0, 0)),
        )
        for ref, row in zip(refs, rows, strict=True)
    ]


def _sizes(session, refs: list[TaskRef]) -> dict[TaskRef, tuple[int, int, int]]:
    """(pods, lines, bytes) of each task, from each log's last page."""
    if not refs:
        return {}
    rows = session.execute(
        select(
            task_logs.c.namespace,
            task_logs.c.task_id,
            func.count(func.distinct(task_logs.c.pod_name)).label("pods"),
            func.coalesce(func.sum(log_pages.c.last_line), 0).label("lines"),
            func.coalesce(func.sum(log_pages.c.start_byte + log_pages.c.byte_count), 0).label(
                "bytes"
            ),
        )
        .select_from(task_logs.outerjoin(log_pages, _last_page_of(task_logs.c.id)))
        .where(
            tuple_(task_logs.c.namespace, task_logs.c.task_id).in_(
                [(t.namespace, t.name) for t in refs]
            )
        )
        .group_by(task_logs.c.namespace, task_logs.c.task_id)
    )
    return {TaskRef(r.namespace, r.task_id): (r.pods, int(r.lines), int(r.bytes)) for r in rows}


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone: they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- the collectors' membership ---


def _database_now(session, seconds_ago: float = 0.0):
    """The database's clock (PostgreSQL's `now()`), minus `seconds_ago`: every collector's heartbeat
    is written and judged by one clock. SQLite (one process) uses this process's."""
    ago = timedelta(seconds=seconds_ago)
    if session.get_bind().dialect.name == "postgresql":
        return func.now() - ago if seconds_ago else func.now()
    return utcnow() - ago


def beat_collector(session, name: str, scope: str, ttl: float) -> list[str]:
    """Record the collector's heartbeat, forget collectors silent for 10 TTLs, and return the names of
    the live collectors of `scope` (heartbeat within `ttl` seconds), sorted."""
    now = _database_now(session)
    insert = _insert(session, collectors).values(
        name=name, scope=scope, started_at=now, heartbeat_at=now
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[collectors.c.name],
            set_={"heartbeat_at": now, "scope": scope},
        )
    )
    session.execute(
        delete(collectors).where(collectors.c.heartbeat_at < _database_now(session, 10 * ttl))
    )
    rows = session.execute(
        select(collectors.c.name)
        .where(
            collectors.c.scope == scope,
            collectors.c.heartbeat_at > _database_now(session, ttl),
        )
        .order_by(collectors.c.name)
    )
    return list(rows.scalars())


def leave_collectors(session, name: str) -> None:
    """Remove the collector's row (it stops): the others take its share at their next heartbeat."""
    session.execute(delete(collectors).where(collectors.c.name == name))


def live_collector_scopes(session, ttl: float) -> set[str]:
    """The scopes (namespace lists, or `*`) of the collectors whose heartbeat is within `ttl` seconds."""
    rows = session.execute(
        select(collectors.c.scope)
        .where(collectors.c.heartbeat_at > _database_now(session, ttl))
        .distinct()
    )
    return set(rows.scalars())
