"""A download's stretches on PostgreSQL: text as the UTF-8 bytes PostgreSQL sent (on that statement's
cursor alone), looked up in the log's own partition, and read whole through `StoredText` with a read
ahead on pooled connections."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from tasklogs.bootstrap import services
from tasklogs.engine.lines import StoredText
from tasklogs.extensions import db
from tasklogs.identity import LogId
from tasklogs.logstream import Position
from tasklogs.pages import PAGE_CHARS
from tasklogs.store import repository
from tasklogs.store.models import TaskLog
from testkit.names import ref
from testkit.pagecuts import cut_every

TEXT = "".join(f"{n:06d} \u00e9t\u00e9 \u65e5\u672c\u8a9e\n" for n in range(60_000))  # ~1 MB


@pytest.fixture
def stored(store, task_id):
    """(log row id, its created_at): TEXT in pages of PAGE_CHARS (cut inside lines)."""
    session = db.session
    ids = repository.record_logs(session, ref(task_id), [(LogId("n", "p", "main"), "Succeeded")])
    (log_id,) = ids.values()
    pages = cut_every(TEXT, [1] * TEXT.count("\n"), PAGE_CHARS, position=Position())
    repository.append_pages(session, [repository.PageRun(log_id, pages)])
    session.commit()
    created = session.execute(select(TaskLog.created_at).where(TaskLog.id == log_id)).scalar_one()
    return log_id, created


def test_utf8_stretches_are_the_bytes_postgresql_sent(stored):
    log_id, created = stored
    session = db.session
    utf8 = repository.read_stretch(session, log_id, 0, 10**9, True, created, utf8=True)
    assert all(isinstance(page, bytes) for _, _, page in utf8)
    assert b"".join(page for _, _, page in utf8) == TEXT.encode()
    texts = repository.read_stretch(session, log_id, 0, 10**9, True, created)
    assert all(isinstance(page, str) for _, _, page in texts)  # the next statement: str again
    assert [(start, end) for start, end, _ in texts] == [(start, end) for start, end, _ in utf8]
    assert texts[-1][1] == len(TEXT)


def test_a_stretch_is_read_in_the_logs_partition(stored):
    log_id, created = stored
    session = db.session
    middle = 3 * PAGE_CHARS + 5
    holding = repository.read_stretch(session, log_id, middle, middle + 1, True, created)
    assert [start for start, _, _ in holding] == [3 * PAGE_CHARS]
    assert repository.read_stretch(session, log_id, middle, middle + 1, True) == holding
    elsewhere = created - timedelta(days=40)  # another partition: the condition is applied
    assert repository.read_stretch(session, log_id, 0, 10**9, True, elsewhere) == []
    assert repository.read_stretch(session, log_id, 0, 10**9, False, elsewhere) == []


def test_page_reads_in_the_logs_partition(stored):
    log_id, created = stored
    session = db.session
    elsewhere = created - timedelta(days=40)
    line = 30_000
    at = repository.page_offset_of_line(session, log_id, line)
    assert at is not None and at > 0
    pages = repository.read_pages(session, log_id, at, 2, created)
    assert pages == repository.read_pages(session, log_id, at, 2) and len(pages) == 2
    assert pages[0].first_line <= line <= pages[0].last_line
    assert repository.read_pages(session, log_id, at, 2, elsewhere) == []


@pytest.mark.parametrize("ahead", [0, 1, 2])
def test_stored_text_reads_ahead_on_pooled_connections(stored, ahead):
    log_id, created = stored
    units = services().units  # the app's: units of work on its pool
    reader = StoredText(units, log_id, created, stretch=PAGE_CHARS, ahead=ahead)
    assert b"".join(reader.utf8(0)) == TEXT.encode()
    assert "".join(reader.texts(PAGE_CHARS + 1)) == TEXT[PAGE_CHARS + 1 :]
