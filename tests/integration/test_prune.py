"""`flask prune --older-than`: old tasks' logs go, in batches; recent ones stay."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from tasklogs.cli import parse_age
from tasklogs.extensions import db
from tasklogs.identity import LogId
from tasklogs.logstream import Position
from tasklogs.store import repository
from tasklogs.store.models import LogPage, Task, TaskLog
from testkit.names import ref


def make_task(task_id, age_days):
    session = db.session
    repository.save_task(session, ref(task_id), "Succeeded", complete=True)
    ids = repository.save_logs_to_database(
        session, ref(task_id), [{"node": "n", "pod": "p", "phase": "Succeeded"}]
    )
    repository.append_chunk(session, ids[LogId("n", "p", "main")], 0, "text\n", Position())
    stamp = datetime.now(UTC) - timedelta(days=age_days)
    session.execute(update(Task).where(Task.task_id == task_id).values(updated_at=stamp))
    session.execute(update(TaskLog).where(TaskLog.task_id == task_id).values(updated_at=stamp))
    session.commit()


def test_prune_removes_old_tasks_in_batches(database_url, task_id):
    from testkit.apps import dispose, make_app

    app = make_app(database_url)
    try:
        with app.app_context():
            old = [f"{task_id}-old-{n}" for n in range(5)]
            for name in old:
                make_task(name, age_days=40)
            make_task(f"{task_id}-new", age_days=1)
        runner = app.test_cli_runner()
        dry = runner.invoke(args=["prune", "--older-than", "30d", "--dry-run"])
        assert dry.exit_code == 0 and "would be removed" in dry.output
        result = runner.invoke(args=["prune", "--older-than", "30d", "--batch-size", "2"])
        assert result.exit_code == 0, result.output
        assert "removed the logs of" in result.output
        with app.app_context():
            left = set(
                db.session.execute(
                    select(TaskLog.task_id).where(TaskLog.task_id.like(f"{task_id}%"))
                ).scalars()
            )
            assert left == {f"{task_id}-new"}
            assert (
                db.session.execute(
                    select(func.count()).select_from(Task).where(Task.task_id.in_(old))
                ).scalar()
                == 0
            )
            assert (
                db.session.execute(
                    select(func.count())
                    .select_from(LogPage)
                    .join(TaskLog)
                    .where(TaskLog.task_id.in_(old))
                ).scalar()
                == 0
            )
    finally:
        dispose(app)


@pytest.mark.parametrize("bad", ["30", "thirty days", "0d", "-3d", "5y"])
def test_prune_refuses_bad_ages(database_url, bad):
    from testkit.apps import dispose, make_app

    app = make_app(database_url)
    try:
        result = app.test_cli_runner().invoke(args=["prune", "--older-than", bad])
        assert result.exit_code == 2 and "Invalid value" in result.output
    finally:
        dispose(app)


def test_ages():
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("2w") == timedelta(weeks=2)
