"""The repository on real PostgreSQL: upserts, the append-only journal, compaction, NUL-free text."""

import threading

import pytest
from sqlalchemy import func, select

from tasklogs.identity import LogId
from tasklogs.logstream import Position
from tasklogs.store import repository
from tasklogs.store.models import LogChunk, TaskLog


def entries(*pods, phase="Running"):
    return [{"node": f"node-{pod}", "pod": pod, "phase": phase} for pod in pods]


def test_save_and_get_round_trip_in_creation_order(store, task_id):
    repository.save_logs_to_database(
        store,
        task_id,
        [
            {"node": "n2", "pod": "p2", "phase": "Succeeded", "logs": "second\n"},
            {"node": "n1", "pod": "p1", "phase": "Failed", "logs": "first \u00e9\n"},
        ],
    )
    assert repository.get_logs_from_database(store, task_id) == [
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
    assert repository.get_logs_from_database(store, task_id) == []
    assert repository.get_task(store, task_id) is None


def test_save_is_an_upsert_keyed_by_task_node_pod(store, task_id):
    repository.save_logs_to_database(
        store, task_id, [{"node": "n", "pod": "p", "phase": "Running", "logs": "a"}]
    )
    repository.save_logs_to_database(
        store, task_id, [{"node": "n", "pod": "p", "phase": "Succeeded", "logs": "ab"}]
    )
    repository.save_logs_to_database(
        store, task_id, [{"node": "n", "pod": "p", "phase": "Succeeded"}]
    )
    assert repository.get_logs_from_database(store, task_id) == [
        {"node": "n", "pod": "p", "container": "main", "phase": "Succeeded", "logs": "ab"}
    ]


def test_each_container_of_a_pod_is_its_own_log(store, task_id):
    ids = repository.save_logs_to_database(
        store,
        task_id,
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
        (e["container"], e["logs"]) for e in repository.get_logs_from_database(store, task_id)
    ] == [("main", "from main\n"), ("init", "from init\n")]


def test_concurrent_saves_from_many_workers_never_duplicate_rows(database_url, store, task_id):
    store.commit()
    app = store.get_bind()
    errors = []

    def save():
        from sqlalchemy.orm import Session

        try:
            with Session(app) as session:
                repository.save_logs_to_database(session, task_id, entries("p1", "p2"))
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


def test_journal_appends_resume_positions_and_cas(store, task_id):
    log_id = repository.save_logs_to_database(store, task_id, entries("p"))[
        LogId("node-p", "p", "main")
    ]
    first = Position("2026-01-01T00:00:01.000000000Z", 1, 0)
    assert repository.append_chunk(store, log_id, 0, "hello ", first) == 6
    assert (
        repository.append_chunk(
            store, log_id, 0, "hello world", Position("2026-01-01T00:00:02Z", 0, 5)
        )
        == 11
    )
    assert (
        repository.append_chunk(store, log_id, 3, "lo", first) == 11
    )  # already stored: nothing written
    assert repository.append_chunk(store, log_id, 20, "gap", first) == 11  # beyond the end: refused
    [stored] = repository.get_stored_logs(store, task_id)
    assert (stored.length, stored.position) == (11, Position("2026-01-01T00:00:02Z", 0, 5))
    assert "".join(repository.read_log(store, log_id, 4, piece=2)) == "o world"
    assert (
        store.execute(
            select(func.count()).select_from(LogChunk).where(LogChunk.log_id == log_id)
        ).scalar()
        == 2
    )


def test_compaction_folds_the_journal_in_order(store, task_id):
    log_id = repository.save_logs_to_database(store, task_id, entries("p"))[
        LogId("node-p", "p", "main")
    ]
    offset = 0
    for piece in ["a\n", "bb\n", "\u00e9\u20ac\n", "tail"]:
        offset = repository.append_chunk(store, log_id, offset, piece, Position())
    repository.compact_logs(store, task_id)
    assert (
        store.execute(select(TaskLog.logs).where(TaskLog.id == log_id)).scalar()
        == "a\nbb\n\u00e9\u20ac\ntail"
    )
    assert (
        store.execute(
            select(func.count()).select_from(LogChunk).where(LogChunk.log_id == log_id)
        ).scalar()
        == 0
    )
    assert repository.append_chunk(store, log_id, offset - 4, "tail more", Position()) == offset + 5
    assert "".join(repository.read_log(store, log_id, 2, piece=3)) == "bb\n\u00e9\u20ac\ntail more"


def test_postgresql_text_refuses_nul_so_the_parser_must_replace_it(store, task_id):
    from sqlalchemy.exc import DataError

    with pytest.raises((ValueError, DataError)):
        repository.save_logs_to_database(
            store, task_id, [{"node": "n", "pod": "p", "phase": "", "logs": "a\x00b"}]
        )


def test_task_rows(store, task_id):
    repository.save_task(store, task_id, "Running")
    repository.save_task(store, task_id, "Succeeded", complete=True)
    stored = repository.get_task(store, task_id)
    assert (stored.phase, stored.complete) == ("Succeeded", True)


def test_compaction_keeps_the_journal_of_a_log_too_large_to_fold(store, task_id):
    """A PostgreSQL text value holds at most 1 GB: past the limit a log stays journaled, served the same."""
    ids = repository.save_logs_to_database(store, task_id, entries("small", "large"))
    small, large = (
        ids[LogId("node-small", "small", "main")],
        ids[LogId("node-large", "large", "main")],
    )
    repository.append_chunk(store, small, 0, "short\n", Position())
    offset = 0
    for index in range(5):
        offset = repository.append_chunk(store, large, offset, f"line {index} \u20ac\n", Position())
    assert repository.compact_logs(store, task_id, max_bytes=40) == [large]
    chunks = lambda log_id: store.execute(  # noqa: E731
        select(func.count()).select_from(LogChunk).where(LogChunk.log_id == log_id)
    ).scalar()
    assert (chunks(small), chunks(large)) == (0, 5)
    assert store.execute(select(TaskLog.logs).where(TaskLog.id == small)).scalar() == "short\n"
    assert repository.get_logs_from_database(store, task_id)[1]["logs"] == "".join(
        f"line {i} \u20ac\n" for i in range(5)
    )
    assert "".join(repository.read_log(store, large, 9)) == "".join(
        f"line {i} \u20ac\n" for i in range(1, 5)
    )
    assert repository.compact_logs(store, task_id) == [], "under the default limit it folds"
    assert (
        chunks(large) == 0
        and repository.get_logs_from_database(store, task_id)[1]["logs"].count("\n") == 5
    )
