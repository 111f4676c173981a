"""Retention by partition on PostgreSQL: `log_pages` is partitioned by the day its log was created;
partitions exist ahead of time, retention drops whole old ones (and deletes by rows only the expired
tasks of a partition that still holds a newer task), `prune --older-than` keeps its meaning, and
nothing newer is lost: reads and search answer as before.

Every test puts its old tasks on days of its own, far in the past, so that tests sharing the session's
database never share a partition they look at."""

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text, update

from tasklogs import retention
from tasklogs.config import ConfigError, load_config
from tasklogs.errors import StoreUnavailable
from tasklogs.extensions import db
from tasklogs.logstream import Position
from tasklogs.store import partitions, repository
from tasklogs.store.models import Task, TaskLog
from testkit.apps import dispose, make_app
from testkit.databases import psycopg2_url
from testkit.names import ref

NOW = datetime.now(UTC)


@pytest.fixture
def pg_app(database_url, kube_adapter):
    app = make_app(database_url, kube_adapter)
    with app.app_context():
        yield app
        db.session.rollback()
    dispose(app)


@pytest.fixture
def days_back():
    """A day far in the past that no other test uses: `days_back(n)` is n days before it."""
    base = random.Random().randrange(400, 20_000)
    return lambda offset=0: (NOW - timedelta(days=base + offset)).date()


def at(day, hour=12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def stored_task(name: str, created: datetime, updated: datetime, lines: int = 3) -> int:
    """A complete task with one log created at `created` (its pages in that day's partition) and
    last updated at `updated`; returns the log's row id."""
    session = db.session
    task = ref(name)
    repository.save_task(session, task, "Succeeded", complete=True)
    (log_id,) = repository.save_logs_to_database(
        session, task, [{"node": "n", "pod": f"{name}-pod", "phase": "Succeeded"}]
    ).values()
    session.execute(update(TaskLog).where(TaskLog.id == log_id).values(created_at=created))
    body = "".join(f"{name} line {n}\n" for n in range(lines))
    repository.append_chunk(session, log_id, 0, body, Position(), [0] * lines)
    repository.merge_pages(session, task)
    session.execute(update(Task).where(Task.task_id == name).values(updated_at=updated))
    session.execute(update(TaskLog).where(TaskLog.id == log_id).values(updated_at=updated))
    session.commit()
    return log_id


def names_of(session) -> set[str]:
    return {p.name for p in partitions.attached(session)}


def rows_of(session, name: str) -> tuple[int, int]:
    """(tasks rows, pages rows) stored for the task."""
    return session.execute(
        text(
            "SELECT (SELECT count(*) FROM tasks WHERE task_id = :t),"
            " (SELECT count(*) FROM log_pages p JOIN task_logs l ON l.id = p.log_id"
            "  WHERE l.task_id = :t)"
        ),
        {"t": name},
    ).one()


def partition_holding(session, log_id: int) -> str:
    return session.execute(
        text("SELECT DISTINCT tableoid::regclass::text FROM log_pages WHERE log_id = :id"),
        {"id": log_id},
    ).scalar_one()


def test_partitions_exist_ahead_with_every_index(pg_app):
    session = db.session
    today = NOW.date()
    ahead = {partitions.Partition(today + timedelta(days=n)).name for n in range(4)}
    assert ahead <= names_of(session)
    for name in sorted(ahead) + [partitions.DEFAULT]:
        indexes = session.execute(
            text("SELECT indexdef FROM pg_indexes WHERE tablename = :t"), {"t": name}
        ).scalars()
        found = " | ".join(indexes)
        assert "gin (text gin_trgm_ops)" in found, name
        assert "UNIQUE INDEX" in found and "(log_id, start_offset, log_created_at)" in found
        assert "(log_id, last_line, start_offset)" in found and "(last_ts, id)" in found


def test_a_new_page_goes_to_its_logs_day(pg_app, task_id):
    log_id = stored_task(task_id, NOW, NOW)
    assert partition_holding(db.session, log_id) == partitions.of_day(NOW).name


def test_upkeep_creates_the_days_ahead(pg_app):
    session = db.session
    far = NOW.date() + timedelta(days=8)
    units = pg_app.extensions["tasklogs"].units
    created = retention.create_partitions_ahead(units, 8)
    assert partitions.Partition(far).name in created or partitions.Partition(far).name in names_of(
        session
    )
    assert partitions.Partition(far).name in names_of(session)
    assert retention.create_partitions_ahead(units, 8) == []  # nothing twice
    session.commit()


def test_stragglers_in_the_default_partition_move_into_their_new_day(pg_app, days_back, task_id):
    session = db.session
    day = days_back()
    log_id = stored_task(task_id, at(day), NOW)
    assert partition_holding(session, log_id) == partitions.DEFAULT
    assert partitions.create_partitions(session, [day]) == [partitions.Partition(day)]
    session.commit()
    assert partition_holding(session, log_id) == partitions.Partition(day).name
    assert "".join(repository.read_log(session, log_id)) == "".join(
        f"{task_id} line {n}\n" for n in range(3)
    )


def old_and_new(days_back, task_id) -> dict[str, int]:
    """Day A: two expired tasks. Day B: one expired, one updated yesterday. And one task of today."""
    session = db.session
    day_a, day_b = days_back(1), days_back()
    partitions.create_partitions(session, [day_a, day_b])
    session.commit()
    old = NOW - timedelta(days=40)
    return {
        "a1": stored_task(f"{task_id}-a1", at(day_a, 1), old),
        "a2": stored_task(f"{task_id}-a2", at(day_a, 23), old),
        "b-old": stored_task(f"{task_id}-b-old", at(day_b), old),
        "b-live": stored_task(f"{task_id}-b-live", at(day_b), NOW - timedelta(days=1)),
        "new": stored_task(f"{task_id}-new", NOW, NOW),
    }


def test_retention_drops_whole_old_partitions_and_keeps_every_newer_task(
    pg_app, days_back, task_id
):
    session = db.session
    old_and_new(days_back, task_id)
    day_a, day_b = partitions.Partition(days_back(1)), partitions.Partition(days_back())
    units = pg_app.extensions["tasklogs"].units
    preview = retention.prune_preview(units, NOW - timedelta(days=30))
    assert day_a.name in preview.partitions and day_b.name not in preview.partitions
    assert day_a.name in names_of(session)  # a preview removes nothing

    pruned = retention.prune(units, NOW - timedelta(days=30), by_day=True)
    session.rollback()
    assert day_a.name in pruned.partitions and day_b.name not in pruned.partitions
    assert day_a.name not in names_of(session) and day_b.name in names_of(session)
    for gone in ("a1", "a2", "b-old"):
        assert rows_of(session, f"{task_id}-{gone}") == (0, 0), gone
    for kept in ("b-live", "new"):
        name = f"{task_id}-{kept}"
        assert rows_of(session, name) == (1, 1), kept
        body = pg_app.test_client().get(f"/api/v1/tasks/{name}/logs?format=text")
        assert body.status_code == 200
        assert body.get_data(as_text=True) == "".join(f"{name} line {n}\n" for n in range(3))


def test_search_finds_what_is_kept_and_nothing_dropped(pg_app, days_back, task_id):
    old_and_new(days_back, task_id)
    retention.prune(pg_app.extensions["tasklogs"].units, NOW - timedelta(days=30))
    response = pg_app.test_client().get(f"/api/v1/search?q={task_id}&limit=100")
    assert response.status_code == 200
    found = {json.loads(line)["text"] for line in response.get_data(as_text=True).splitlines()}
    assert found == {f"{task_id}-{kept} line {n}" for kept in ("b-live", "new") for n in range(3)}


def test_the_service_applies_retention_itself(
    database_url, kube_adapter, days_back, task_id, caplog
):
    app = make_app(
        database_url, kube_adapter, TASKLOGS_RETENTION="30d", TASKLOGS_UPKEEP_INTERVAL=0.2
    )
    try:
        with app.app_context():
            logs = old_and_new(days_back, task_id)
            old_partition = partitions.Partition(days_back(1)).name
            app.extensions["tasklogs"].engine  # noqa: B018 - starting it starts the upkeep
            deadline = time.monotonic() + 10

            def pruned() -> bool:  # the partitions are dropped first, the rows then deleted
                done = old_partition not in names_of(db.session)
                done = done and rows_of(db.session, f"{task_id}-a1") == (0, 0)
                db.session.rollback()
                return done

            while not pruned() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert old_partition not in names_of(db.session), caplog.text
            assert rows_of(db.session, f"{task_id}-a1") == (0, 0)
            assert rows_of(db.session, f"{task_id}-new") == (1, 1)
            assert len(logs) == 5
    finally:
        dispose(app)


def test_prune_older_than_keeps_its_meaning_by_partition_and_by_rows(pg_app, days_back, task_id):
    logs = old_and_new(days_back, task_id)
    session = db.session
    # A task of today, last updated 13 hours ago: --older-than 12h removes it, by rows; the live
    # task of day B was updated an hour ago.
    session.execute(
        update(TaskLog)
        .where(TaskLog.id == logs["b-live"])
        .values(updated_at=NOW - timedelta(hours=1))
    )
    session.execute(
        update(Task)
        .where(Task.task_id == f"{task_id}-new")
        .values(updated_at=NOW - timedelta(hours=13))
    )
    session.execute(
        update(TaskLog)
        .where(TaskLog.id == logs["new"])
        .values(updated_at=NOW - timedelta(hours=13))
    )
    session.commit()
    runner = pg_app.test_cli_runner()
    dry = runner.invoke(args=["prune", "--older-than", "12h", "--dry-run"])
    assert dry.exit_code == 0 and "would be removed" in dry.output, dry.output
    assert partitions.Partition(days_back(1)).name in dry.output
    result = runner.invoke(args=["prune", "--older-than", "12h"])
    assert result.exit_code == 0, result.output
    assert "removed the logs of" in result.output and "whole partition(s)" in result.output
    session.rollback()
    assert partitions.Partition(days_back(1)).name not in names_of(session)
    for gone in ("a1", "a2", "b-old", "new"):
        assert rows_of(session, f"{task_id}-{gone}") == (0, 0), gone
    assert rows_of(session, f"{task_id}-b-live") == (1, 1)


def test_prune_without_an_age_or_retention_is_refused_and_removes_nothing(pg_app, task_id):
    stored_task(task_id, NOW, NOW - timedelta(days=400))
    result = pg_app.test_cli_runner().invoke(args=["prune"])
    assert result.exit_code == 2
    assert "give --older-than (such as 30d) or set TASKLOGS_RETENTION" in result.output
    assert rows_of(db.session, task_id) == (1, 1)


def test_prune_takes_tasklogs_retention_as_its_default(database_url, task_id):
    app = make_app(database_url, TASKLOGS_RETENTION="30d")
    try:
        with app.app_context():
            stored_task(task_id, NOW, NOW - timedelta(days=31))
            stored_task(f"{task_id}-kept", NOW, NOW - timedelta(days=29))
        result = app.test_cli_runner().invoke(args=["prune"])
        assert result.exit_code == 0, result.output
        with app.app_context():
            assert rows_of(db.session, task_id) == (0, 0)
            assert rows_of(db.session, f"{task_id}-kept") == (1, 1)
    finally:
        dispose(app)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TASKLOGS_RETENTION", "30", "TASKLOGS_RETENTION='30': use a positive number and a unit"),
        ("TASKLOGS_RETENTION", "0d", "TASKLOGS_RETENTION='0d'"),
        ("TASKLOGS_PARTITIONS_AHEAD", "-1", "TASKLOGS_PARTITIONS_AHEAD='-1': must be 0 or more"),
        ("TASKLOGS_UPKEEP_INTERVAL", "0", "TASKLOGS_UPKEEP_INTERVAL='0': must be greater than 0"),
    ],
)
def test_bad_retention_settings_stop_start_up(variable, value, says):
    with pytest.raises(ConfigError, match="^" + says.replace("(", r"\(")):
        load_config({variable: value})


def test_a_partition_in_use_is_left_for_later_and_nothing_is_removed(pg_app, days_back, task_id):
    """A transaction reading `log_pages` holds the lock a drop needs: the prune gives up after the
    lock timeout with StoreUnavailable, removing nothing, and the next prune drops it."""
    logs = old_and_new(days_back, task_id)
    old_partition = partitions.Partition(days_back(1)).name
    units = pg_app.extensions["tasklogs"].units
    reader = create_engine(psycopg2_url(pg_app.config["SQLALCHEMY_DATABASE_URI"]))
    connection = reader.connect()
    connection.execute(
        text("SELECT count(*) FROM log_pages WHERE log_id = :id"), {"id": logs["new"]}
    )
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            retention.prune(units, NOW - timedelta(days=30))
        assert time.monotonic() - began < 10
        db.session.rollback()
        assert old_partition in names_of(db.session)
        assert rows_of(db.session, f"{task_id}-a1") == (1, 1)
        assert rows_of(db.session, f"{task_id}-b-old") == (1, 1)
    finally:
        connection.rollback()
        connection.close()
        reader.dispose()
    db.session.rollback()  # its reads hold the same lock
    retention.prune(units, NOW - timedelta(days=30))
    db.session.rollback()
    assert old_partition not in names_of(db.session)


def test_a_task_refreshed_meanwhile_keeps_its_partition(pg_app, days_back, task_id):
    """The check is made again under the lock: a task updated after the partition was found
    droppable keeps it."""
    logs = old_and_new(days_back, task_id)
    session = db.session
    day_a = partitions.Partition(days_back(1))
    assert day_a in partitions.droppable(session, NOW - timedelta(days=30))
    session.execute(update(TaskLog).where(TaskLog.id == logs["a2"]).values(updated_at=NOW))
    session.commit()
    assert not partitions.drop_partition(session, day_a, NOW - timedelta(days=30))
    session.commit()
    assert day_a.name in names_of(session)
    assert rows_of(session, f"{task_id}-a2") == (1, 1)


def test_concurrent_upkeep_creates_each_partition_once(pg_app):
    units = pg_app.extensions["tasklogs"].units
    results, errors = [], []

    def run():
        try:
            results.append(retention.create_partitions_ahead(units, 10))
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    created = [name for names in results for name in names]
    assert len(created) == len(set(created))
    assert partitions.Partition(NOW.date() + timedelta(days=10)).name in names_of(db.session)
