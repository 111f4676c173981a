"""Retention on SQLite (quick local runs): no partitions, so a prune deletes rows, with the same
meaning as on PostgreSQL; upkeep has nothing to create and waits out a database that is down."""

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from tasklogs import retention
from tasklogs.config import DatabaseSettings
from tasklogs.logstream import Position
from tasklogs.store import repository
from tasklogs.store.models import Task, TaskLog
from testkit.names import ref

NOW = datetime.now(UTC)


def stored(memstore, name: str, updated: datetime) -> None:
    with memstore.units() as uow:
        session = uow.session
        repository.save_task(session, ref(name), "Succeeded", complete=True)
        (log_id,) = repository.save_logs_to_database(
            session, ref(name), [{"node": "n", "pod": "p", "phase": "Succeeded"}]
        ).values()
        repository.append_chunk(session, log_id, 0, f"{name}\n", Position())
        session.execute(update(Task).where(Task.task_id == name).values(updated_at=updated))
        session.execute(update(TaskLog).where(TaskLog.id == log_id).values(updated_at=updated))
        uow.commit()


def names(memstore) -> set[str]:
    with memstore.units() as uow:
        return {t.name for t in repository.tasks_older_than(uow.session, NOW, None)}


def test_prune_deletes_the_rows_of_expired_tasks_only(memstore, wf):
    stored(memstore, f"{wf}-old", NOW - timedelta(days=31))
    stored(memstore, f"{wf}-new", NOW - timedelta(days=29))
    preview = retention.prune_preview(memstore.units, NOW - timedelta(days=30))
    assert (preview.partitions, preview.tasks) == ([], 1)
    assert names(memstore) == {f"{wf}-old", f"{wf}-new"}
    pruned = retention.prune(memstore.units, NOW - timedelta(days=30), batch_size=1)
    assert (pruned.partitions, pruned.tasks) == ([], 1)
    assert names(memstore) == {f"{wf}-new"}
    with memstore.units() as uow:
        (log,) = repository.get_stored_logs(uow.session, ref(f"{wf}-new"))
        assert "".join(repository.read_log(uow.session, log.log_id)) == f"{wf}-new\n"


def test_retention_by_day_leaves_a_task_of_a_day_not_over_yet(memstore, wf):
    """The rows cutoff is the start of the cutoff's day: a task expired since then waits."""
    cutoff = datetime(2026, 1, 10, 12, tzinfo=UTC)
    stored(memstore, f"{wf}-before-the-day", datetime(2026, 1, 9, 23, tzinfo=UTC))
    stored(memstore, f"{wf}-that-day", datetime(2026, 1, 10, 6, tzinfo=UTC))
    assert retention.prune(memstore.units, cutoff, by_day=True).tasks == 1
    assert f"{wf}-that-day" in names(memstore)
    assert f"{wf}-before-the-day" not in names(memstore)


def test_upkeep_on_sqlite_creates_nothing_and_applies_retention(memstore, wf):
    stored(memstore, wf, NOW - timedelta(days=400))
    assert retention.create_partitions_ahead(memstore.units, 3) == []
    retention.Upkeep(memstore.units, DatabaseSettings(retention=timedelta(days=30))).round()
    assert wf not in names(memstore)


def test_upkeep_waits_out_a_database_that_is_down(memstore, caplog):
    memstore.down = True
    upkeep = retention.Upkeep(memstore.units, DatabaseSettings(retention=timedelta(days=30)))
    with caplog.at_level(logging.WARNING, logger="tasklogs.retention"):
        upkeep.round()
    assert "upkeep postponed to its next round: database unavailable" in caplog.text
