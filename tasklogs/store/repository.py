"""All SQL of the service but PostgreSQL's own plumbing (`postgres.py`). Every function takes the
session first and leaves the transaction to its caller (the unit of work).

A pod's log is `task_logs.logs` (the compacted text) followed by its `log_chunks` in offset order.
Offsets count characters from the start of the pod's log, so a cursor stays valid across compaction.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by

from ..identity import LogId
from ..logstream import Position
from .models import LogChunk, Task, TaskLog, utcnow

tasks, task_logs, log_chunks = Task.__table__, TaskLog.__table__, LogChunk.__table__
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredTask:
    task_id: str
    phase: str
    complete: bool


@dataclass(frozen=True)
class StoredLog:
    """One log's row: its row id, identity, phase, where its text ends and where its capture stands."""

    log_id: int
    log: LogId
    phase: str
    length: int
    position: Position


def _insert(session, table):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def get_task(session, task_id: str) -> StoredTask | None:
    """The task's row, or None when nothing is stored for it."""
    row = session.execute(
        select(tasks.c.phase, tasks.c.complete).where(tasks.c.task_id == task_id)
    ).first()
    return StoredTask(task_id, row.phase, row.complete) if row else None


def complete_tasks(session, task_ids) -> set[str]:
    """Which of these tasks have had their final save."""
    return set(
        session.execute(
            select(tasks.c.task_id).where(tasks.c.task_id.in_(list(task_ids)), tasks.c.complete)
        ).scalars()
    )


def save_task(session, task_id: str, phase: str, complete: bool = False) -> None:
    """Create or update the task's row (phase, and whether its final save has run)."""
    statement = _insert(session, tasks).values(
        task_id=task_id, phase=phase, complete=complete, created_at=utcnow(), updated_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(  # once complete, a task stays complete
            index_elements=["task_id"],
            set_={
                "phase": phase,
                "complete": tasks.c.complete | statement.excluded.complete,
                "updated_at": utcnow(),
            },
        )
    )


def record_logs(session, task_id: str, logs: Iterable[tuple[LogId, str]]) -> dict[LogId, int]:
    """Upsert one row per (log, phase), keeping any stored text; return the row ids by log."""
    return {log: _upsert_log(session, task_id, log, phase, None) for log, phase in logs}


def save_logs_to_database(session, task_id: str, logs: list[dict]) -> dict[LogId, int]:
    """The design's helper: upsert one row per entry `{node, pod, phase[, container][, logs]}`.

    An entry with a `logs` text replaces the log's stored text with it (a complete log, read whole);
    without one, only the phase is updated and the stored text is kept."""
    return {
        (log := LogId(entry["node"], entry["pod"], entry.get("container") or "main")): _upsert_log(
            session, task_id, log, entry.get("phase") or "", entry.get("logs")
        )
        for entry in logs
    }


def _upsert_log(session, task_id: str, log: LogId, phase: str, text_: str | None) -> int:
    values = {
        "task_id": task_id,
        "node_id": log.node,
        "pod_name": log.pod,
        "container": log.container,
        "phase": phase,
        "logs": text_ or "",
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    changes = {"phase": phase, "updated_at": values["updated_at"]}
    if text_ is not None:
        changes["logs"], changes["resume"] = text_, None
    statement = (
        _insert(session, task_logs)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["task_id", "node_id", "pod_name", "container"], set_=changes
        )
        .returning(task_logs.c.id)
    )
    log_id = session.execute(statement).scalar_one()
    if text_ is not None:
        session.execute(delete(log_chunks).where(log_chunks.c.log_id == log_id))
    return log_id


def get_stored_logs(session, task_id: str) -> list[StoredLog]:
    """Every pod row of the task in creation order, with where its text ends and its capture stands."""
    latest = (
        select(log_chunks.c.log_id, func.max(log_chunks.c.start_offset).label("start_offset"))
        .join(task_logs, task_logs.c.id == log_chunks.c.log_id)
        .where(task_logs.c.task_id == task_id)
        .group_by(log_chunks.c.log_id)
        .subquery()
    )
    last_chunk = (
        select(log_chunks)
        .join(
            latest,
            and_(
                log_chunks.c.log_id == latest.c.log_id,
                log_chunks.c.start_offset == latest.c.start_offset,
            ),
        )
        .subquery()
    )
    rows = session.execute(
        select(
            task_logs.c.id,
            task_logs.c.node_id,
            task_logs.c.pod_name,
            task_logs.c.container,
            task_logs.c.phase,
            task_logs.c.resume,
            func.length(task_logs.c.logs).label("compacted"),
            last_chunk.c.end_offset,
            last_chunk.c.since,
            last_chunk.c.seen,
            last_chunk.c.partial,
            last_chunk.c.restarts,
        )
        .outerjoin(last_chunk, last_chunk.c.log_id == task_logs.c.id)
        .where(task_logs.c.task_id == task_id)
        .order_by(task_logs.c.created_at, task_logs.c.id)
    )
    return [
        StoredLog(
            row.id,
            LogId(row.node_id, row.pod_name, row.container),
            row.phase,
            row.compacted if row.end_offset is None else row.end_offset,
            Position.decode(row.resume)
            if row.end_offset is None
            else Position(row.since, row.seen, row.partial, row.restarts),
        )
        for row in rows
    ]


def append_chunk(session, log_id: int, start: int, data: str, position: Position) -> int:
    """Append `data`, which begins at character `start` of the pod's log, if the stored log ends inside it.

    Whatever the store already holds is not written again, so several writers of the same capture never
    duplicate text. Returns where the stored log ends afterwards."""
    lock_logs(session, [log_id])
    end = stored_length(session, log_id)
    if end < start or end >= start + len(data):
        return end
    written = append_chunks(
        session, [ChunkRow(log_id, end, data[end - start :], position)], locked=True
    )
    return start + len(data) if written else stored_length(session, log_id)


def lock_logs(session, log_ids) -> None:
    """Share-lock the logs' rows for this transaction: it waits for a final save folding them (which takes
    FOR UPDATE), so an append always sees where the stored log really ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(task_logs.c.id)
            .where(task_logs.c.id.in_(sorted(set(log_ids))))
            .with_for_update(read=True)
        )


def stored_length(session, log_id: int) -> int:
    """Characters stored for the pod's log: compacted text plus journal."""
    end = session.execute(
        select(log_chunks.c.end_offset)
        .where(log_chunks.c.log_id == log_id)
        .order_by(log_chunks.c.start_offset.desc())
        .limit(1)
    ).scalar()
    if end is not None:
        return end
    return (
        session.execute(
            select(func.length(task_logs.c.logs)).where(task_logs.c.id == log_id)
        ).scalar()
        or 0
    )


def read_log(session, log_id: int, start: int = 0, piece: int = 1 << 20):
    """Yield the pod's log text from character `start` in pieces of about `piece` characters.

    Memory stays bounded whatever the log's size: on PostgreSQL the compacted text comes line by line
    through a server-side cursor (a character-indexed `substr` per piece would rescan the value from
    its start each time: quadratic); the journal comes row by row."""
    compacted = (
        session.execute(
            select(func.length(task_logs.c.logs)).where(task_logs.c.id == log_id)
        ).scalar()
        or 0
    )
    if start < compacted:
        yield from _pieces(_compacted_lines(session, log_id, start, compacted), piece)
    chunks = session.execute(
        select(log_chunks.c.start_offset, log_chunks.c.data)
        .where(log_chunks.c.log_id == log_id, log_chunks.c.end_offset > max(start, compacted))
        .order_by(log_chunks.c.start_offset),
        execution_options={"yield_per": 16},
    )
    for chunk_start, data in chunks:
        yield data[max(0, start - chunk_start) :]


def _compacted_lines(session, log_id: int, start: int, compacted: int):
    if session.get_bind().dialect.name != "postgresql":
        yield session.execute(
            select(func.substr(task_logs.c.logs, start + 1)).where(task_logs.c.id == log_id)
        ).scalar()
        return
    lines = session.execute(
        text(
            "SELECT line FROM task_logs, string_to_table(substr(logs, :start + 1), E'\\n') "
            "WITH ORDINALITY AS t(line, n) WHERE id = :log_id ORDER BY n"
        ),
        {"start": start, "log_id": log_id},
        execution_options={"stream_results": True, "yield_per": 1000},
    )
    first = True
    for (line,) in lines:
        yield line if first else "\n" + line
        first = False


def _pieces(texts, size: int):
    """Join small texts into pieces of about `size` characters."""
    buffer, length = [], 0
    for text_ in texts:
        buffer.append(text_)
        length += len(text_)
        if length >= size:
            yield "".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer)


def get_logs_from_database(session, task_id: str) -> list[dict]:
    """The design's helper: every stored log of the task, `{node, pod, container, phase, logs}` in creation
    order ([] when none)."""
    return [
        {
            **stored.log.fields(),
            "phase": stored.phase,
            "logs": "".join(read_log(session, stored.log_id)),
        }
        for stored in get_stored_logs(session, task_id)
    ]


def save_phases(session, phases: dict[int, str]) -> None:
    """Record the latest phase of each pod row."""
    for log_id, phase in phases.items():
        session.execute(
            update(task_logs)
            .where(task_logs.c.id == log_id, task_logs.c.phase != phase)
            .values(phase=phase, updated_at=utcnow())
        )


# A PostgreSQL text value holds at most 1 GB, and folding builds the whole value in the server's memory:
# logs larger than this stay in the journal after the final save (served the same way, in order).
COMPACT_MAX_BYTES = 256 << 20


def compact_logs(session, task_id: str, max_bytes: int = COMPACT_MAX_BYTES) -> list[int]:
    """The final save: fold each pod's journal into `task_logs.logs`, keep where the capture stood in
    `resume`, and empty the journal. On PostgreSQL the text never leaves the server. A log that would grow
    beyond `max_bytes` keeps its journal; return the ids of those logs."""
    log_ids = select(task_logs.c.id).where(task_logs.c.task_id == task_id)
    if session.get_bind().dialect.name == "postgresql":
        # FOR UPDATE conflicts with the share lock every append takes first (lock_logs): no chunk can
        # slip in between folding the journal and deleting it.
        session.execute(log_ids.with_for_update())
    size = _octet_length(session)
    sizes = session.execute(
        select(
            task_logs.c.id,
            func.coalesce(size(task_logs.c.logs), 0) + func.sum(size(log_chunks.c.data)),
        )
        .join(log_chunks, log_chunks.c.log_id == task_logs.c.id)
        .where(task_logs.c.task_id == task_id)
        .group_by(task_logs.c.id)
    ).all()
    kept = sorted(log_id for log_id, total in sizes if total > max_bytes)
    journaled = [log_id for log_id, _ in sizes if log_id not in kept]
    if journaled:
        _fold(session, journaled)
    for log_id in kept:
        log.warning(
            "log %d of %s is over %d MB: its journal is kept as it is (served the same way)",
            log_id,
            task_id,
            max_bytes >> 20,
        )
    return kept


def _octet_length(session):
    """Bytes of a text column: PostgreSQL reads the size from the value's header (no detoasting); SQLite
    (quick local runs) gets an upper bound of 4 bytes a character."""
    if session.get_bind().dialect.name == "postgresql":
        return func.octet_length
    return lambda column: func.length(column) * 4


def _fold(session, journaled: list[int]) -> None:
    if session.get_bind().dialect.name == "postgresql":
        mine = log_chunks.c.log_id == task_logs.c.id
        journal = (
            select(
                func.string_agg(
                    log_chunks.c.data, aggregate_order_by(literal(""), log_chunks.c.start_offset)
                )
            )
            .where(mine)
            .scalar_subquery()
        )
        last = (
            select(
                func.concat_ws(
                    "|",
                    log_chunks.c.since,
                    log_chunks.c.seen,
                    log_chunks.c.partial,
                    log_chunks.c.restarts,
                )
            )
            .where(mine)
            .order_by(log_chunks.c.start_offset.desc())
            .limit(1)
            .scalar_subquery()
        )
        session.execute(
            update(task_logs)
            .where(task_logs.c.id.in_(journaled))
            .values(logs=task_logs.c.logs + journal, resume=last, updated_at=utcnow())
        )
    else:
        for log_id in journaled:
            rows = session.execute(
                select(log_chunks)
                .where(log_chunks.c.log_id == log_id)
                .order_by(log_chunks.c.start_offset)
            ).all()
            resume = Position(
                rows[-1].since, rows[-1].seen, rows[-1].partial, rows[-1].restarts
            ).encode()
            session.execute(
                update(task_logs)
                .where(task_logs.c.id == log_id)
                .values(
                    logs=task_logs.c.logs + "".join(row.data for row in rows),
                    resume=resume,
                    updated_at=utcnow(),
                )
            )
    session.execute(delete(log_chunks).where(log_chunks.c.log_id.in_(journaled)))


@dataclass(frozen=True)
class ChunkRow:
    log_id: int
    start: int
    data: str
    position: Position


def append_chunks(session, rows: list["ChunkRow"], locked: bool = False) -> set[tuple[int, int]]:
    """Append journal rows, each only if it starts exactly where its log's stored text ends (compare and
    append); return (log_id, start) of those written. Rows that lost to another writer are skipped."""
    if not rows:
        return set()
    if not locked:
        lock_logs(session, [row.log_id for row in rows])
    if session.get_bind().dialect.name != "postgresql":
        rows = [row for row in rows if stored_length(session, row.log_id) == row.start]
        for row in rows:
            session.execute(log_chunks.insert().values(**_chunk_values(row)))
        return {(row.log_id, row.start) for row in rows}
    values = [_chunk_values(row) for row in rows]
    # The rows go as an execute parameter: a value bound into the statement object (`.bindparams`) would
    # stay in a reference cycle, megabytes each, until the cyclic garbage collector ran.
    rows_json = json.dumps(values, default=str, ensure_ascii=False)
    return {
        (row.log_id, row.start_offset)
        for row in session.execute(_APPEND_AT_END, {"rows": rows_json})
    }


def _chunk_values(row: "ChunkRow") -> dict:
    return {
        "log_id": row.log_id,
        "start_offset": row.start,
        "end_offset": row.start + len(row.data),
        "data": row.data,
        "since": row.position.since,
        "seen": row.position.seen,
        "partial": row.position.partial,
        "restarts": row.position.restarts,
        "created_at": utcnow(),
    }


# One statement for a whole flush: rows arrive as a JSON array; each is inserted only where its log's
# stored end (its last chunk's end, or the compacted text's length when it has no chunk) is its start.
_APPEND_AT_END = text("""
INSERT INTO log_chunks (log_id, start_offset, end_offset, data, since, seen, partial, restarts, created_at)
SELECT r.log_id, r.start_offset, r.end_offset, r.data, r.since, r.seen, r.partial, r.restarts, r.created_at
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(log_id integer, start_offset bigint, end_offset bigint,
     data text, since varchar, seen integer, partial bigint, restarts integer, created_at timestamptz)
WHERE r.start_offset = COALESCE(
    (SELECT c.end_offset FROM log_chunks c WHERE c.log_id = r.log_id ORDER BY c.start_offset DESC LIMIT 1),
    (SELECT length(t.logs) FROM task_logs t WHERE t.id = r.log_id))
ON CONFLICT (log_id, start_offset) DO NOTHING
RETURNING log_id, start_offset
""")


def check_database(session) -> None:
    """Raise unless the database answers."""
    session.execute(select(literal(1)))


def tasks_older_than(session, cutoff, limit: int | None) -> list[str]:
    """Task ids whose newest row (task or any of its logs) is older than `cutoff`."""
    newest = (
        select(
            task_logs.c.task_id.label("task_id"),
            func.max(task_logs.c.updated_at).label("updated_at"),
        )
        .group_by(task_logs.c.task_id)
        .union_all(select(tasks.c.task_id, tasks.c.updated_at))
        .subquery()
    )
    query = (
        select(newest.c.task_id)
        .group_by(newest.c.task_id)
        .having(func.max(newest.c.updated_at) < cutoff)
        .order_by(newest.c.task_id)
    )
    return list(session.execute(query.limit(limit) if limit else query).scalars())


def delete_tasks(session, task_ids: list[str]) -> None:
    """Remove these tasks' rows, their logs and journals."""
    log_ids = select(task_logs.c.id).where(task_logs.c.task_id.in_(task_ids))
    session.execute(delete(log_chunks).where(log_chunks.c.log_id.in_(log_ids)))
    session.execute(delete(task_logs).where(task_logs.c.task_id.in_(task_ids)))
    session.execute(delete(tasks).where(tasks.c.task_id.in_(task_ids)))
