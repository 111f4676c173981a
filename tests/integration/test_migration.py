"""Migrations on a database holding revision 0003's rows: 0004 turns compacted `task_logs.logs` texts
with their `resume` positions and `log_chunks` journal rows into `log_pages`, and every log reads back
exactly as it was, with a line index that agrees with its text; 0005 gives the rows the default
namespace."""

import calendar
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import flask_migrate
import pytest
from sqlalchemy import inspect, select, text

from tasklogs.extensions import db
from tasklogs.identity import LogId
from tasklogs.logstream import Position, timestamp_nanos
from tasklogs.pages import PAGE_CHARS, decode_stamps
from tasklogs.store import repository
from tasklogs.store.models import LogPage
from testkit.apps import dispose, make_app
from testkit.databases import TEST_DATABASE, drop_database, recreate_database
from testkit.names import ref

CREATED = "2026-01-02 03:04:00+00:00"
UPDATED = "2026-01-02 03:05:00.250000+00:00"
UPDATED_NANOS = (calendar.timegm((2026, 1, 2, 3, 5, 0)) * 1_000_000_000) + 250_000_000


@dataclass
class Chunk:
    data: str
    position: Position
    created_at: str = CREATED


@dataclass
class OldLog:
    """A log as revision 0003 stored it: a compacted text (and resume position), then journal rows."""

    pod: str
    compacted: str = ""
    resume: Position | None = None
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.compacted + "".join(chunk.data for chunk in self.chunks)

    @property
    def position(self) -> Position:
        """Where its capture stood: the last journal row's position, else the compacted log's."""
        if self.chunks:
            return self.chunks[-1].position
        return self.resume or Position()

    def segments(self) -> list[tuple[int, str, int]]:
        """(offset, text, the stamp its lines get): what the migration knew of their time."""
        resume = self.resume or Position()
        segments = [(0, self.compacted, _nanos(resume.since, UPDATED_NANOS))]
        offset = len(self.compacted)
        for chunk in self.chunks:
            fallback = _datetime_nanos(chunk.created_at)
            segments.append((offset, chunk.data, _nanos(chunk.position.since, fallback)))
            offset += len(chunk.data)
        return segments


def _nanos(since: str, fallback: int) -> int:
    return timestamp_nanos(since.encode()) if since else fallback


def _datetime_nanos(moment: str) -> int:
    parsed = datetime.fromisoformat(moment)
    return calendar.timegm(parsed.utctimetuple()) * 1_000_000_000 + parsed.microsecond * 1000


def _as_stored(session, moment: str) -> str:
    """The time as the 0003 app wrote it: SQLAlchemy keeps SQLite's DateTime as naive UTC text."""
    if session.get_bind().dialect.name != "sqlite":
        return moment
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def big_text() -> str:
    lines, size, number = [], 0, 0
    while size < 300_000:
        line = f"line {number} \u00fc\u65e5\U0001f642 {'x' * (number % 50)}\n"
        lines.append(line)
        size += len(line)
        number += 1
    return "".join(lines)


def old_logs() -> list[OldLog]:
    return [
        OldLog(  # compacted mid-way: a compacted text, then the journal rows written after it
            "pod-compacted",
            "a \u00e9\n\u65e5\u672c\n\U0001f642 b\n",
            Position("2026-01-02T03:04:05.500000000Z", 1, 0, 0),
            [
                Chunk("c\nd", Position("2026-01-02T03:04:06.000000001Z", 0, 1, 0)),
                Chunk("\ne \u00fc\n", Position("2026-01-02T03:04:07.25Z", 1, 0, 1)),
            ],
        ),
        OldLog(  # only in the journal, some rows splitting a line
            "pod-journal",
            chunks=[
                Chunk("fir", Position("2026-01-02T03:04:05.1Z", 0, 3, 0)),
                Chunk("st\nsec", Position("2026-01-02T03:04:05.2Z", 0, 3, 0)),
                Chunk(
                    "ond \u20ac\nthi\u20ac", Position("", 0, 0, 0), "2026-01-02 03:04:09.5+00:00"
                ),
                Chunk("rd\n\n", Position("2026-01-02T03:04:05.4Z", 2, 0, 0)),
            ],
        ),
        OldLog("pod-empty"),
        OldLog(  # over two pages, compacted, no journal rows after it
            "pod-big",
            big_text(),
            Position("2026-01-02T03:04:08Z", 7, 3, 2),
        ),
        OldLog("pod-whole", "read whole\nwithout a resume position"),  # resume NULL
    ]


def insert_old_rows(session, task_id: str, logs: list[OldLog]) -> dict[str, int]:
    """Revision 0003's rows, written with plain SQL; return the log ids by pod."""
    created, updated = _as_stored(session, CREATED), _as_stored(session, UPDATED)
    session.execute(
        text(
            "INSERT INTO tasks (task_id, phase, complete, created_at, updated_at)"
            " VALUES (:task, 'Succeeded', true, :created, :updated)"
        ),
        {"task": task_id, "created": created, "updated": updated},
    )
    ids = {}
    for log in logs:
        ids[log.pod] = session.execute(
            text(
                "INSERT INTO task_logs (task_id, node_id, pod_name, container, phase, logs, resume,"
                " created_at, updated_at) VALUES (:task, :node, :pod, 'main', 'Succeeded', :logs,"
                " :resume, :created, :updated) RETURNING id"
            ),
            {
                "task": task_id,
                "node": f"node-{log.pod}",
                "pod": log.pod,
                "logs": log.compacted,
                "resume": log.resume.encode() if log.resume else None,
                "created": created,
                "updated": updated,
            },
        ).scalar_one()
        offset = len(log.compacted)
        for chunk in log.chunks:
            session.execute(
                text(
                    "INSERT INTO log_chunks (log_id, start_offset, end_offset, data, since, seen,"
                    " partial, restarts, created_at) VALUES (:log_id, :start, :end, :data, :since,"
                    " :seen, :partial, :restarts, :created)"
                ),
                {
                    "log_id": ids[log.pod],
                    "start": offset,
                    "end": offset + len(chunk.data),
                    "data": chunk.data,
                    "since": chunk.position.since,
                    "seen": chunk.position.seen,
                    "partial": chunk.position.partial,
                    "restarts": chunk.position.restarts,
                    "created": _as_stored(session, chunk.created_at),
                },
            )
            offset += len(chunk.data)
    return ids


def split_lines(text_: str) -> list[str]:
    pieces = text_.split("\n")
    return [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def line_offsets(text_: str) -> list[int]:
    offsets, offset = [], 0
    for line in split_lines(text_):
        offsets.append(offset)
        offset += len(line)
    return offsets


def line_stamps(log: OldLog) -> list[int]:
    """Each line's stamp: that of the old row its first character came from."""
    segments = log.segments()
    return [
        next(stamp for start, data, stamp in reversed(segments) if start <= offset and data)
        for offset in line_offsets(log.text)
    ]


def check_pages(session, log_id: int, log: OldLog) -> None:
    pages = LogPage.__table__
    rows = session.execute(
        select(pages).where(pages.c.log_id == log_id).order_by(pages.c.start_offset)
    ).all()
    whole, starts, stamps = log.text, line_offsets(log.text), line_stamps(log)
    assert "".join(row.text for row in rows) == whole
    offset = byte = 0
    for row in rows:
        start, end = row.start_offset, row.end_offset
        assert (start, row.start_byte) == (offset, byte), "pages are contiguous"
        assert end - start == len(row.text) and 0 < len(row.text) <= PAGE_CHARS
        assert row.byte_count == len(row.text.encode("utf-8"))
        started = [number for number, s in enumerate(starts, 1) if start <= s < end]
        assert row.first_line == sum(1 for s in starts if s <= start)
        assert row.last_line == sum(1 for s in starts if s <= end - 1)
        assert row.ends_line == row.text.endswith("\n")
        assert list(decode_stamps(row.stamps)) == [stamps[n - 1] for n in started]
        assert (row.first_ts, row.last_ts) == (
            stamps[row.first_line - 1],
            stamps[row.last_line - 1],
        )
        offset, byte = end, byte + row.byte_count
    assert (offset, byte) == (len(whole), len(whole.encode("utf-8")))


@pytest.fixture(
    params=[
        "postgresql",
        "sqlite",
    ]
)
def old_database(request, tmp_path, monkeypatch):
    """A database URL with nothing in it yet. SQLite runs in a time zone other than UTC: its times
    are naive text, which must be read as UTC whatever the machine's zone."""
    if request.param == "sqlite":
        monkeypatch.setenv("TZ", "America/New_York")
        time.tzset()
        yield f"sqlite:///{tmp_path / 'tasklogs.sqlite'}"
        monkeypatch.undo()
        time.tzset()
        return
    name = f"{TEST_DATABASE}_migration"
    yield recreate_database(name)
    drop_database(name)


@pytest.fixture
def migrated(old_database):
    """The app on a database brought to revision 0003, filled with its rows, then upgraded to head."""
    app = make_app(old_database, None, TASKLOGS_AUTO_MIGRATE=False)
    directory = app.extensions["migrate"].directory
    task_id, logs = f"wf-{uuid.uuid4().hex[:10]}", old_logs()
    with app.app_context():
        flask_migrate.upgrade(directory=directory, revision="0003")
        ids = insert_old_rows(db.session, task_id, logs)
        db.session.commit()
        db.session.remove()
        flask_migrate.upgrade(directory=directory)
    yield app, task_id, {log.pod: (ids[log.pod], log) for log in logs}
    dispose(app)


def test_every_log_reads_back_exactly_with_a_consistent_line_index(migrated):
    app, task_id, logs = migrated
    with app.app_context():
        session, postgres = db.session, db.engine.dialect.name == "postgresql"
        for log_id, log in logs.values():
            assert "".join(repository.read_log(session, log_id)) == log.text, log.pod
            if postgres:
                assert (
                    session.execute(
                        text("SELECT tasklogs_log_text(:id)"), {"id": log_id}
                    ).scalar_one()
                    == log.text
                )
            check_pages(session, log_id, log)
            lines, size = session.execute(
                text("SELECT lines, bytes FROM task_logs WHERE id = :id"), {"id": log_id}
            ).one()
            assert (lines, size) == (len(split_lines(log.text)), len(log.text.encode("utf-8")))


def test_stored_logs_resume_where_the_old_rows_stood(migrated):
    app, task_id, logs = migrated
    with app.app_context():
        stored = repository.get_stored_logs(db.session, ref(task_id))
    assert [s.log for s in stored] == [LogId(f"node-{pod}", pod, "main") for pod in logs]
    for s in stored:
        _, log = logs[s.log.pod]
        assert s.position == log.position, s.log.pod
        assert (s.end.offset, s.end.byte) == (len(log.text), len(log.text.encode("utf-8")))
        assert (s.end.lines, s.end.next_line) == (
            len(split_lines(log.text)),
            len(split_lines(log.text)) + (log.text.endswith("\n") or not log.text),
        )


def test_the_old_tables_and_columns_are_gone(migrated):
    app, _, _ = migrated
    with app.app_context():
        schema = inspect(db.engine)
        assert "log_chunks" not in schema.get_table_names()
        columns = {column["name"] for column in schema.get_columns("task_logs")}
        assert {"lines", "bytes", "source"} <= columns and not {"logs", "resume"} & columns
        assert (
            db.session.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0009"
        )
        sources = db.session.execute(text("SELECT DISTINCT source FROM task_logs")).scalars()
        assert list(sources) == [""], "logs stored before 0007 were captured from the cluster"


def test_rest_gives_the_same_text(migrated):
    app, task_id, logs = migrated
    response = app.test_client().get(f"/api/v1/tasks/{task_id}/logs")
    body = response.get_json()
    assert response.status_code == 200, body
    assert (body["source"], body["complete"], body["phase"]) == ("database", True, "Succeeded")
    assert {entry["pod"]: entry["logs"] for entry in body["logs"]} == {
        pod: log.text for pod, (_, log) in logs.items()
    }


def test_existing_rows_belong_to_the_default_namespace(migrated):
    """Migration 0005: rows stored before namespaces are the default namespace's; started_at is
    when the task was first stored, finished_at its last update (it is complete)."""
    app, task_id, logs = migrated
    with app.app_context():
        row = db.session.execute(
            text("SELECT namespace, started_at, finished_at FROM tasks WHERE task_id = :t"),
            {"t": task_id},
        ).one()
        namespaces = set(
            db.session.execute(
                text("SELECT DISTINCT namespace FROM task_logs WHERE task_id = :t"), {"t": task_id}
            ).scalars()
        )
    assert row.namespace == "argo" and namespaces == {"argo"}
    started, finished = (_utc(row.started_at), _utc(row.finished_at))
    assert (started, finished) == (datetime.fromisoformat(CREATED), datetime.fromisoformat(UPDATED))
    client = app.test_client()
    body = client.get(f"/api/v1/namespaces/argo/tasks/{task_id}/logs").get_json()
    assert {entry["pod"]: entry["logs"] for entry in body["logs"]} == {
        pod: log.text for pod, (_, log) in logs.items()
    }
    (listed,) = client.get(f"/api/v1/tasks?prefix={task_id}").get_json()["tasks"]
    assert (listed["namespace"], listed["complete"], listed["pods"]) == ("argo", True, len(logs))
    assert listed["bytes"] == sum(len(log.text.encode()) for _, log in logs.values())


def _utc(moment) -> datetime:
    """A time read with plain SQL: SQLite gives naive UTC text, PostgreSQL an aware datetime."""
    moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- migration 0007: log_pages partitioned by the day of its log's creation ---

PAGE_COLUMNS = (
    "id, log_id, start_offset, end_offset, start_byte, byte_count, first_line, last_line,"
    " ends_line, first_ts, last_ts, stamps, text, since, seen, partial, restarts, created_at"
)


def _pages_at_0006(session, task_id: str) -> dict[int, str]:
    """Revision 0006's rows: one task, three logs created on two days (one without pages); the
    pages written with plain SQL. Returns each log's creation day by log id."""
    session.execute(
        text(
            "INSERT INTO tasks (namespace, task_id, phase, complete, created_at, updated_at,"
            " started_at) VALUES ('argo', :t, 'Succeeded', true, :c, :c, :c)"
        ),
        {"t": task_id, "c": "2026-01-02 23:00:00+00"},
    )
    days = {}
    for pod, created in (("a", "2026-01-02 23:30:00+00"), ("b", "2026-01-03 00:10:00+00")):
        log_id = session.execute(
            text(
                "INSERT INTO task_logs (namespace, task_id, node_id, pod_name, container, phase,"
                " lines, bytes, created_at, updated_at) VALUES ('argo', :t, :pod, :pod, 'main',"
                " 'Succeeded', 2, 8, :c, :c) RETURNING id"
            ),
            {"t": task_id, "pod": pod, "c": created},
        ).scalar_one()
        days[log_id] = created[:10].replace("-", "")
        for start, body in ((0, f"{pod}-one\n"), (len(f"{pod}-one\n"), f"{pod}-two needle\n")):
            session.execute(
                text(
                    f"INSERT INTO log_pages ({PAGE_COLUMNS.split(', ', 1)[1]}) VALUES (:log,"
                    " :start, :end, :start, :bytes, :first, :first, true, 5, 5, '\\x0500000000000000',"
                    " :body, '', 0, 0, 0, :c)"
                ),
                {
                    "log": log_id,
                    "start": start,
                    "end": start + len(body),
                    "bytes": len(body.encode()),
                    "first": 1 if start == 0 else 2,
                    "body": body,
                    "c": created,
                },
            )
    return days


def _all_pages(session) -> list:
    return session.execute(text(f"SELECT {PAGE_COLUMNS} FROM log_pages ORDER BY id")).all()


@pytest.fixture
def at_0006(request):
    """A PostgreSQL database at revision 0006 holding pages, and the rows as they were."""
    name = f"{TEST_DATABASE}_migration_0007"
    url = recreate_database(name)
    app = make_app(url, None, TASKLOGS_AUTO_MIGRATE=False)
    directory = app.extensions["migrate"].directory
    task_id = f"wf-{uuid.uuid4().hex[:10]}"
    with app.app_context():
        flask_migrate.upgrade(directory=directory, revision="0006")
        days = _pages_at_0006(db.session, task_id)
        db.session.commit()
        before = _all_pages(db.session)
        db.session.remove()
    yield app, directory, task_id, days, before
    dispose(app)
    drop_database(name)


def test_0007_keeps_every_page_in_its_logs_day_partition(at_0006):
    app, directory, task_id, days, before = at_0006
    with app.app_context():
        flask_migrate.upgrade(directory=directory)
        session = db.session
        assert _all_pages(session) == before, "every row as it was, ids included"
        placed = session.execute(
            text("SELECT log_id, tableoid::regclass::text FROM log_pages")
        ).all()
        assert {(log_id, f"log_pages_p{days[log_id]}") for log_id in days} == set(placed)
        keyed = session.execute(
            text(
                "SELECT count(*) FROM log_pages p JOIN task_logs l ON l.id = p.log_id"
                " WHERE p.log_created_at <> l.created_at"
            )
        ).scalar()
        assert keyed == 0
        kind = session.execute(text("SELECT relkind FROM pg_class WHERE relname = 'log_pages'"))
        assert kind.scalar() == "p"
        for day in set(days.values()):
            indexes = " | ".join(
                session.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE tablename = :t"),
                    {"t": f"log_pages_p{day}"},
                ).scalars()
            )
            assert "gin (text gin_trgm_ops)" in indexes
        db.session.remove()
    client = app.test_client()
    body = client.get(f"/api/v1/tasks/{task_id}/logs").get_json()
    assert {entry["pod"]: entry["logs"] for entry in body["logs"]} == {
        "a": "a-one\na-two needle\n",
        "b": "b-one\nb-two needle\n",
    }
    found = client.get("/api/v1/search?q=two%20needle").get_data(as_text=True).splitlines()
    assert len(found) == 2


def test_0007_appends_continue_the_ids_and_the_downgrade_gives_the_rows_back(at_0006):
    app, directory, task_id, days, before = at_0006
    with app.app_context():
        flask_migrate.upgrade(directory=directory)
        session = db.session
        log_id = max(days)
        end = repository.append_chunk(
            session, log_id, len("b-one\nb-two needle\n"), "b-three\n", Position(), [7]
        )
        session.commit()
        assert end == len("b-one\nb-two needle\nb-three\n")
        after = _all_pages(session)
        assert after[:-1] == before and after[-1].id > max(row.id for row in before)
        db.session.remove()
        flask_migrate.downgrade(directory=directory, revision="0006")
        assert _all_pages(db.session) == after
        kind = db.session.execute(
            text("SELECT relkind FROM pg_class WHERE relname = 'log_pages'")
        ).scalar()
        assert kind == "r"
        db.session.remove()
        flask_migrate.upgrade(directory=directory)  # and up again
        assert _all_pages(db.session) == after
