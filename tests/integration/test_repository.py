"""The repository on real PostgreSQL: upserts, pages appended and merged, NUL-free text."""

import threading

import pytest
from sqlalchemy import func, select

from tasklogs.identity import LogId
from tasklogs.logstream import Position
from tasklogs.pages import PAGE_CHARS, line_starts, lines_of
from tasklogs.store import repository
from tasklogs.store.models import LogPage, TaskLog
from testkit.names import ref


def entries(*pods, phase="Running"):
    return [{"node": f"node-{pod}", "pod": pod, "phase": phase} for pod in pods]


def test_save_and_get_round_trip_in_creation_order(store, task_id):
    repository.save_logs_to_database(
        store,
        ref(task_id),
        [
            {"node": "n2", "pod": "p2", "phase": "Succeeded", "logs": "second\n"},
            {"node": "n1", "pod": "p1", "phase": "Failed", "logs": "first \u00e9\n"},
        ],
    )
    assert repository.get_logs_from_database(store, ref(task_id)) == [
        {"node": "n2", "pod": "p2", "container": "main", "phase": "Succeeded", "logs": "second\n"},
        {
            "node": "n1",
            "pod": "p1",
            "container": "main",
            "phase": "Failed",
            "logs": "first \u00e9\n",
        },
    ]


def test_unknown_task_has_no_logs(store, task_id):
    assert repository.get_logs_from_database(store, ref(task_id)) == []
    assert repository.get_task(store, ref(task_id)) is None


def test_save_is_an_upsert_keyed_by_task_node_pod(store, task_id):
    repository.save_logs_to_database(
        store, ref(task_id), [{"node": "n", "pod": "p", "phase": "Running", "logs": "a"}]
    )
    repository.save_logs_to_database(
        store, ref(task_id), [{"node": "n", "pod": "p", "phase": "Succeeded", "logs": "ab"}]
    )
    repository.save_logs_to_database(
        store, ref(task_id), [{"node": "n", "pod": "p", "phase": "Succeeded"}]
    )
    assert repository.get_logs_from_database(store, ref(task_id)) == [
        {"node": "n", "pod": "p", "container": "main", "phase": "Succeeded", "logs": "ab"}
    ]


def test_each_container_of_a_pod_is_its_own_log(store, task_id):
    ids = repository.save_logs_to_database(
        store,
        ref(task_id),
        [
            {
                "node": "n",
                "pod": "p",
                "container": "main",
                "phase": "Running",
                "logs": "from main\n",
            },
            {
                "node": "n",
                "pod": "p",
                "container": "init",
                "phase": "Running",
                "logs": "from init\n",
            },
        ],
    )
    assert len(set(ids.values())) == 2 and set(ids) == {
        LogId("n", "p", "main"),
        LogId("n", "p", "init"),
    }
    assert [
        (e["container"], e["logs"]) for e in repository.get_logs_from_database(store, ref(task_id))
    ] == [("main", "from main\n"), ("init", "from init\n")]


def test_concurrent_saves_from_many_workers_never_duplicate_rows(database_url, store, task_id):
    store.commit()
    app = store.get_bind()
    errors = []

    def save():
        from sqlalchemy.orm import Session

        try:
            with Session(app) as session:
                repository.save_logs_to_database(session, ref(task_id), entries("p1", "p2"))
                session.commit()
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=save) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (
        store.execute(
            select(func.count()).select_from(TaskLog).where(TaskLog.task_id == task_id)
        ).scalar()
        == 2
    )


def pages_of(store, log_id):
    return store.execute(
        select(LogPage.start_offset, LogPage.end_offset, LogPage.text)
        .where(LogPage.log_id == log_id)
        .order_by(LogPage.start_offset)
    ).all()


def test_journal_appends_resume_positions_and_cas(store, task_id):
    log_id = repository.save_logs_to_database(store, ref(task_id), entries("p"))[
        LogId("node-p", "p", "main")
    ]
    first = Position("2026-01-01T00:00:01.000000000Z", 1, 0)
    assert repository.append_chunk(store, log_id, 0, "hello ", first, [10]) == 6
    second = Position("2026-01-01T00:00:02Z", 0, 5)
    assert repository.append_chunk(store, log_id, 0, "hello world", second, [10]) == 11
    assert repository.append_chunk(store, log_id, 3, "lo", first) == 11  # already stored
    assert repository.append_chunk(store, log_id, 20, "gap", first) == 11  # beyond the end: refused
    [stored] = repository.get_stored_logs(store, ref(task_id))
    assert (stored.length, stored.position) == (11, second)
    assert "".join(repository.read_log(store, log_id, 4)) == "o world"
    assert pages_of(store, log_id) == [(0, 6, "hello "), (6, 11, "world")]


def test_pages_know_their_lines_bytes_and_timestamps(store, task_id):
    log_id = repository.save_logs_to_database(store, ref(task_id), entries("p"))[
        LogId("node-p", "p", "main")
    ]
    offset = 0
    for piece, stamps in [("a\n", [1]), ("bb\n\u00e9", [2, 3]), ("\u20ac\n", []), ("tail", [4])]:
        offset = repository.append_chunk(store, log_id, offset, piece, Position(), stamps)
    pages = repository.read_pages(store, log_id)
    assert [(p.first_line, p.last_line, p.ends_line, p.stamps) for p in pages] == [
        (1, 1, True, (1,)),
        (2, 3, False, (2, 3)),
        (3, 3, True, ()),
        (4, 4, False, (4,)),
    ]
    assert [p.start_byte for p in pages] == [0, 2, 7, 11]  # é is 2 bytes, € 3
    [stored] = repository.get_stored_logs(store, ref(task_id))
    assert (stored.end.lines, stored.end.byte, stored.length) == (4, 15, 12)
    assert repository.page_offset_of_line(store, log_id, 3) == 2
    assert repository.page_offset_of_line(store, log_id, 5) is None
    assert repository.page_offset_of_time(store, log_id, 3) == 2


def test_the_final_save_merges_small_pages_in_order_and_records_sizes(store, task_id):
    log_id = repository.save_logs_to_database(store, ref(task_id), entries("p"))[
        LogId("node-p", "p", "main")
    ]
    offset = 0
    for index, piece in enumerate(["a\n", "bb\n", "\u00e9\u20ac\n", "tail"]):
        offset = repository.append_chunk(store, log_id, offset, piece, Position(), [index])
    repository.merge_pages(store, ref(task_id))
    [page] = repository.read_pages(store, log_id)
    assert (page.text, page.stamps, page.last_line, page.ends_line) == (
        "a\nbb\n\u00e9\u20ac\ntail",
        (0, 1, 2, 3),
        4,
        False,
    )
    row = store.execute(select(TaskLog.lines, TaskLog.bytes).where(TaskLog.id == log_id)).one()
    assert tuple(row) == (4, len("a\nbb\n\u00e9\u20ac\ntail".encode()))
    assert repository.append_chunk(store, log_id, offset - 4, "tail more", Position()) == offset + 5
    assert "".join(repository.read_log(store, log_id, 2)) == "bb\n\u00e9\u20ac\ntail more"


def test_postgresql_text_refuses_nul_so_the_parser_must_replace_it(store, task_id):
    from sqlalchemy.exc import DataError

    with pytest.raises((ValueError, DataError)):
        repository.save_logs_to_database(
            store, ref(task_id), [{"node": "n", "pod": "p", "phase": "", "logs": "a\x00b"}]
        )


def test_task_rows(store, task_id):
    repository.save_task(store, ref(task_id), "Running")
    repository.save_task(store, ref(task_id), "Succeeded", complete=True)
    stored = repository.get_task(store, ref(task_id))
    assert (stored.phase, stored.complete) == ("Succeeded", True)


def test_large_pages_are_not_rewritten_by_the_final_save(store, task_id):
    """Only runs of small pages are merged: a big page (a catch-up's) stays as written."""
    from tasklogs.pages import PAGE_CHARS

    log_id = repository.save_logs_to_database(store, ref(task_id), entries("p"))[
        LogId("node-p", "p", "main")
    ]
    big = ("x" * 99 + "\n") * (PAGE_CHARS // 100)
    offset = repository.append_chunk(store, log_id, 0, "small\n", Position(), [1])
    offset = repository.append_chunk(
        store, log_id, offset, big, Position(), [2] * (PAGE_CHARS // 100)
    )
    for index in range(3):
        offset = repository.append_chunk(store, log_id, offset, f"s{index}\n", Position(), [3])
    before = {
        start: page_id
        for start, page_id in store.execute(
            select(LogPage.start_offset, LogPage.id).where(LogPage.log_id == log_id)
        )
    }
    repository.merge_pages(store, ref(task_id))
    after = pages_of(store, log_id)
    assert [(start, end) for start, end, _ in after] == [
        (0, 6),
        (6, 6 + len(big)),
        (6 + len(big), offset),
    ]
    assert after[2][2] == "s0\ns1\ns2\n"
    kept = store.execute(
        select(LogPage.id).where(LogPage.log_id == log_id, LogPage.start_offset == 6)
    ).scalar()
    assert kept == before[6], "the big page is the same row"
    assert "".join(repository.read_log(store, log_id)) == "small\n" + big + "s0\ns1\ns2\n"


def appended_in_pieces(session, log_id: int, text: str, piece: int) -> None:
    """`text` appended `piece` characters at a time, as a live capture's writes land: most of them end
    inside a line. Each line's timestamp is its number."""
    offset, line = 0, 1
    ends_line = True
    for start in range(0, len(text), piece):
        part = text[start : start + piece]
        count = line_starts(part, ends_line)
        stamps = list(range(line, line + count))
        offset = repository.append_chunk(session, log_id, offset, part, Position(), stamps)
        line, ends_line = line + count, part.endswith("\n")


def merged_pages_end_with_lines(session, log_id: int, text: str, long_lines: list[range]) -> None:
    """After the final save: the text exact, every line with its stamp, every page of at most 1.75
    PAGE_CHARS, and a page ending inside a line only inside one of `long_lines` (character ranges of
    lines longer than half a page)."""
    pages = repository.read_pages(session, log_id, limit=10**6)
    assert "".join(page.text for page in pages) == text
    assert [(line.number, line.ts) for line in lines_of(pages)] == [
        (n, n) for n in range(1, text.count("\n") + 1)
    ]
    assert max(len(page.text) for page in pages) <= 1.75 * PAGE_CHARS
    cuts = [page.end_offset for page in pages[:-1] if not page.ends_line]
    assert all(any(cut in lines for lines in long_lines) for cut in cuts), cuts
    assert len(pages) <= 2 + len(text) // PAGE_CHARS + 2 * len(long_lines)


def test_the_final_save_merges_a_live_logs_pages_at_line_ends(store, task_id):
    """A search looks in one page at a time, so the merged pages end where lines end."""
    log_id = repository.save_logs_to_database(store, ref(task_id), entries("p"))[
        LogId("node-p", "p", "main")
    ]
    text = "".join(f"line {n:05d} " + "x" * (n % 150) + "\n" for n in range(1, 5000))
    appended_in_pieces(store, log_id, text, 997)
    assert (
        sum(not page.ends_line for page in repository.read_pages(store, log_id, limit=10**6)) > 400
    )
    repository.merge_pages(store, ref(task_id))
    merged_pages_end_with_lines(store, log_id, text, [])


def test_a_line_longer_than_half_a_page_is_cut_and_the_pages_stay_bounded(store, task_id):
    log_id = repository.save_logs_to_database(store, ref(task_id), entries("p"))[
        LogId("node-p", "p", "main")
    ]
    head = "".join(f"short {n}\n" for n in range(3000))
    giant = "progress " + "=" * (3 * PAGE_CHARS) + "\n"
    text = head + giant + "after\n" * 2000
    appended_in_pieces(store, log_id, text, 1000)
    repository.merge_pages(store, ref(task_id))
    merged_pages_end_with_lines(store, log_id, text, [range(len(head), len(head) + len(giant))])
