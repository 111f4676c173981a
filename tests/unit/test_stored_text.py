"""A stored log's text read in stretches (`engine.lines.StoredText`): whole, from inside a page, up to
a stop, as UTF-8, with reads ahead, through a final save that cuts the pages anew between two
stretches, and with the store failing under a read ahead. SQLite store; PostgreSQL's side (bytes as
sent, one partition) is in tests/integration/test_stretches.py."""

import pytest
from sqlalchemy import delete

from tasklogs.engine.lines import StoredText, stored_texts
from tasklogs.errors import StoreUnavailable
from tasklogs.identity import LogId
from tasklogs.logstream import Position
from tasklogs.pages import PAGE_CHARS
from tasklogs.store import repository
from tasklogs.store.models import LogPage
from testkit.names import ref
from testkit.pagecuts import cut_every

# Six pages and a bit, with two- and three-byte characters, and lines that cross the pages' edges.
LINE = "step 0042 \u00e9t\u00e9 \u65e5\u672c\u8a9e done\n"
TEXT = LINE * (6 * PAGE_CHARS // len(LINE)) + "tail without a newline"
STRETCH = PAGE_CHARS  # the least a stretch may be: a page at most starts in each


@pytest.fixture
def log_id(services, wf):
    """A log whose pages are TEXT cut every PAGE_CHARS characters."""
    with services.units() as uow:
        (row_id,) = uow.record_phases(
            ref(wf), "Succeeded", [(LogId("n", "p", "main"), "x")]
        ).values()
        cut(uow.session, row_id, PAGE_CHARS)
        uow.commit()
    return row_id


def cut(session, row_id: int, page_chars: int) -> None:
    """Store TEXT as the log's only pages, cut every `page_chars` characters."""
    session.execute(delete(LogPage.__table__).where(LogPage.__table__.c.log_id == row_id))
    pages = cut_every(TEXT, [1] * TEXT.count("\n"), page_chars, position=Position())
    repository.append_pages(session, [repository.PageRun(row_id, pages)])


@pytest.mark.parametrize("ahead", [0, 1, 2])
@pytest.mark.parametrize("stretch", [STRETCH, 3 * STRETCH, 100 * STRETCH])
def test_the_whole_text_in_pieces_of_at_most_a_page(services, log_id, ahead, stretch):
    pieces = list(StoredText(services.units, log_id, stretch=stretch, ahead=ahead).texts(0))
    assert "".join(pieces) == TEXT
    assert max(map(len, pieces)) <= PAGE_CHARS


@pytest.mark.parametrize("start", [0, 1, PAGE_CHARS - 1, PAGE_CHARS, 2 * PAGE_CHARS + 7, len(TEXT)])
def test_from_any_character(services, log_id, start):
    reader = StoredText(services.units, log_id, stretch=STRETCH, ahead=1)
    assert "".join(reader.texts(start)) == TEXT[start:]
    assert b"".join(reader.utf8(start)) == TEXT[start:].encode()


def test_utf8_pieces_are_bytes_cut_on_characters(services, log_id):
    start = TEXT.index("\u65e5", PAGE_CHARS)  # a three-byte character in the second page
    pieces = list(StoredText(services.units, log_id, stretch=STRETCH).utf8(start))
    assert all(isinstance(piece, bytes) for piece in pieces)
    assert pieces[0].decode().startswith("\u65e5\u672c\u8a9e done\n")
    assert b"".join(pieces) == TEXT[start:].encode()


@pytest.mark.parametrize(
    "start, stop", [(0, 0), (0, 5), (3, PAGE_CHARS + 3), (PAGE_CHARS, 4 * PAGE_CHARS), (10, 10**9)]
)
def test_never_past_stop(services, log_id, start, stop):
    assert "".join(stored_texts(services.units, log_id, start, stop)) == TEXT[start:stop]


@pytest.mark.parametrize("page_chars", [PAGE_CHARS // 3, PAGE_CHARS // 2 + 17, 1000])
def test_pages_cut_anew_between_two_stretches(services, log_id, page_chars):
    """A final save merges pages between two reads: the next stretch's first page may start before
    the text sent (the overlap is skipped) or after it (read again from there); nothing is lost or
    sent twice."""
    reader = StoredText(services.units, log_id, stretch=STRETCH)
    pieces = reader.texts(0)
    sent = next(pieces)  # the first stretch is read: its pages are PAGE_CHARS long
    with services.units() as uow:
        cut(uow.session, log_id, page_chars)
        uow.commit()
    assert sent + "".join(pieces) == TEXT


def test_an_empty_log_and_an_unknown_one_read_nothing(services, wf):
    with services.units() as uow:
        (row_id,) = uow.record_phases(ref(wf), "Running", [(LogId("n", "p", "main"), "x")]).values()
        uow.commit()
    assert list(StoredText(services.units, row_id, ahead=1).texts(0)) == []
    assert list(StoredText(services.units, 10**9).utf8(0)) == []


@pytest.mark.parametrize("ahead", [0, 1])
def test_a_failing_store_fails_the_read_where_it_failed(services, log_id, ahead):
    calls = []

    def units():
        calls.append(1)
        if len(calls) > 2:
            raise StoreUnavailable("database unavailable: OperationalError")
        return services.units()

    pieces = StoredText(units, log_id, stretch=STRETCH, ahead=ahead).texts(0)
    got = [next(pieces) for _ in range(2)]  # two stretches of one page each
    with pytest.raises(StoreUnavailable):
        next(pieces)
    assert "".join(got) == TEXT[: 2 * PAGE_CHARS]


def test_a_stretch_smaller_than_a_page_is_refused(services):
    with pytest.raises(ValueError, match="stretch"):
        StoredText(services.units, 1, stretch=PAGE_CHARS - 1)
