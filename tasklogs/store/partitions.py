"""The time partitions of `log_pages` on PostgreSQL (SQLite, for quick local runs, has none).

`log_pages` is `PARTITION BY RANGE (log_created_at)`: every page carries the creation time of its log
(`task_logs.created_at`, which never changes), so all of a log's pages live in one partition, one per
UTC day (`log_pages_pYYYYMMDD`). `log_pages_default` catches a page whose day has no partition yet (the
service was down for longer than it creates partitions ahead); creating that day's partition later
moves those rows into it.

Retention drops a day's partition whole once every task with a log created that day is older than the
cutoff (the meaning `prune --older-than` always had: a task goes whole once its newest row is older);
a partition that still holds a task updated since stays, and its expired tasks are deleted by rows.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

DAY = timedelta(days=1)
PARENT = "log_pages"
DEFAULT = "log_pages_default"
NAME = re.compile(r"log_pages_p(\d{8})")
# Creating or dropping a partition takes an ACCESS EXCLUSIVE lock on `log_pages` for an instant; a
# long transaction in the way makes upkeep give up (and try again later) instead of queueing every
# reader and writer of the table behind it.
LOCK_TIMEOUT = "2s"


@dataclass(frozen=True, order=True)
class Partition:
    """One day's partition: pages of logs created on `day` (UTC)."""

    day: date

    @property
    def name(self) -> str:
        return f"log_pages_p{self.day:%Y%m%d}"

    @property
    def start(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + DAY

    def bounds(self) -> str:
        """The FOR VALUES clause (UTC literals: the session's time zone cannot shift them)."""
        return f"FOR VALUES FROM ('{self.start.isoformat()}') TO ('{self.end.isoformat()}')"


def of_day(moment: datetime) -> Partition:
    """The partition holding pages of a log created at `moment`."""
    return Partition(moment.astimezone(UTC).date())


def is_partitioned(session) -> bool:
    """Whether `log_pages` is a partitioned table here (PostgreSQL from migration 0007 on)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    kind = session.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": PARENT}
    ).scalar()
    return kind == "p"


def attached(session) -> list[Partition]:
    """The day partitions of `log_pages`, oldest first (the default one and any a person attached
    under another name are not managed here)."""
    names = session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": PARENT},
    ).scalars()
    found = (NAME.fullmatch(name) for name in names)
    return sorted(
        Partition(datetime.strptime(match.group(1), "%Y%m%d").date()) for match in found if match
    )


def create_default(session) -> None:
    session.execute(text(f"CREATE TABLE IF NOT EXISTS {DEFAULT} PARTITION OF {PARENT} DEFAULT"))


def create_partitions(session, days: list[date]) -> list[Partition]:
    """Create the partitions of these days that do not exist yet (moving any of their rows out of
    the default partition); return those created."""
    have = set(attached(session))
    created = []
    for partition in sorted({Partition(day) for day in days} - have):
        if _create(session, partition):
            created.append(partition)
    return created


def create_ahead(session, today: date, days_ahead: int) -> list[Partition]:
    """Make sure today's partition and the next `days_ahead` days' exist."""
    return create_partitions(session, [today + DAY * n for n in range(days_ahead + 1)])


def _create(session, partition: Partition) -> bool:
    _lock_parent(session)
    if _exists(session, partition):  # made by another process since `attached` was read
        return False
    in_range = "log_created_at >= :start AND log_created_at < :end"
    bounds = {"start": partition.start, "end": partition.end}
    strays = session.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} WHERE {in_range})"), bounds
    ).scalar()
    if strays:  # the new partition's range must be empty in the default partition
        session.execute(
            text(
                "CREATE TEMPORARY TABLE tasklogs_strays ON COMMIT DROP AS"
                f" WITH moved AS (DELETE FROM {DEFAULT} WHERE {in_range} RETURNING *)"
                " SELECT * FROM moved"
            ),
            bounds,
        )
    session.execute(
        text(f"CREATE TABLE {partition.name} PARTITION OF {PARENT} {partition.bounds()}")
    )
    if strays:
        session.execute(text(f"INSERT INTO {PARENT} SELECT * FROM tasklogs_strays"))
        session.execute(text("DROP TABLE tasklogs_strays"))
    return True


# A task is live at `cutoff` when its row or any of its logs' rows was updated since: the meaning of
# `repository.tasks_older_than`, asked of the tasks with a log created in [start, end).
_HOLDS_LIVE_TASK = text("""
SELECT EXISTS (
    SELECT 1 FROM task_logs l
    WHERE l.created_at >= :start AND l.created_at < :end AND (
        EXISTS (SELECT 1 FROM tasks t WHERE t.namespace = l.namespace AND t.task_id = l.task_id
                                        AND t.updated_at >= :cutoff)
        OR EXISTS (SELECT 1 FROM task_logs o WHERE o.namespace = l.namespace
                                             AND o.task_id = l.task_id AND o.updated_at >= :cutoff)))
""")


def droppable(session, cutoff: datetime) -> list[Partition]:
    """The partitions every task of which is older than `cutoff`, oldest first."""
    return [
        partition
        for partition in attached(session)
        if partition.end <= cutoff and not _holds_live_task(session, partition, cutoff)
    ]


def _holds_live_task(session, partition: Partition, cutoff: datetime) -> bool:
    bounds = {"start": partition.start, "end": partition.end, "cutoff": cutoff}
    return bool(session.execute(_HOLDS_LIVE_TASK, bounds).scalar())


def drop_partition(session, partition: Partition, cutoff: datetime) -> bool:
    """Drop the partition if all its tasks are still older than `cutoff` once no page can be written
    to it (checked again under its lock: a task refreshed meanwhile keeps it). True if dropped."""
    set_lock_timeout(session)
    _lock_parent(session)
    if not _exists(session, partition) or _holds_live_task(session, partition, cutoff):
        return False
    session.execute(text(f"DROP TABLE {partition.name}"))
    return True


def set_lock_timeout(session) -> None:
    """Upkeep's DDL gives up after LOCK_TIMEOUT rather than queue the table's users behind it."""
    session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


def _exists(session, partition: Partition) -> bool:
    found = session.execute(text("SELECT to_regclass(:name)"), {"name": partition.name}).scalar()
    return found is not None


def _lock_parent(session) -> None:
    """The lock DDL on a partition takes on `log_pages` anyway, taken first: every reader and writer
    locks the parent before a partition, so nobody can hold a partition while waiting for us."""
    session.execute(text(f"LOCK TABLE ONLY {PARENT} IN ACCESS EXCLUSIVE MODE"))
