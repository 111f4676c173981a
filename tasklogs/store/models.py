"""The tables: `tasks` (one row per workflow), `task_logs` (the catalogue: one row per pod container, as
the design names it) and `log_pages` (each log's text as bounded pages with a line and time index)."""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)

from ..extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


# Flask-SQLAlchemy builds `db.Model` at run time: mypy cannot see it as a class.
class Task(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_listing", "started_at", "namespace", "task_id"),)

    namespace = db.Column(String(63), primary_key=True)
    task_id = db.Column(String(253), primary_key=True)
    phase = db.Column(String(32), nullable=False, default="")
    complete = db.Column(Boolean, nullable=False, default=False)
    created_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
    started_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
    finished_at = db.Column(DateTime(timezone=True), nullable=True)


class TaskLog(db.Model):  # type: ignore[name-defined]
    """One log: a container of a pod of a node of the task. `lines` and `bytes` are its size as of the
    final save (while it runs, its last page says)."""

    __tablename__ = "task_logs"
    __table_args__ = (
        UniqueConstraint(
            "namespace",
            "task_id",
            "node_id",
            "pod_name",
            "container",
            name="uq_task_logs_task_node_pod_container",
        ),
        Index("ix_task_logs_task", "namespace", "task_id"),
    )

    id = db.Column(Integer, primary_key=True, autoincrement=True)
    namespace = db.Column(String(63), nullable=False)
    task_id = db.Column(String(253), nullable=False)
    node_id = db.Column(String(253), nullable=False)
    pod_name = db.Column(String(253), nullable=False)
    container = db.Column(String(63), nullable=False, default="main")
    phase = db.Column(String(32), nullable=False, default="")
    lines = db.Column(BigInteger, nullable=False, default=0)
    bytes = db.Column(BigInteger, nullable=False, default=0)
    # "" captured from the cluster; "artifacts" read from Argo's archived log (migration 0007)
    source = db.Column(String(16), nullable=False, default="", server_default="")
    created_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


class LogPage(db.Model):  # type: ignore[name-defined]
    """A bounded piece of a log: its text from character `start_offset` (byte `start_byte`), the lines it
    holds (`first_line` is the line of its first character, `last_line` of its last; `ends_line` when its
    text ends with a newline), the capture timestamps (nanoseconds) of the lines starting in it
    (`stamps`), of its first and last character's lines (`first_ts`, `last_ts`), and where the capture
    stood after it (`since`, `seen`, `partial`, `restarts`) so that any process can resume exactly there.

    Pages are only ever appended while a pod runs; the final save merges small ones into pages of about
    PAGE_CHARS characters (text and stamps compressed with lz4 on PostgreSQL). On PostgreSQL a GIN
    trigram index (`ix_log_pages_text_trgm`, migration 0006, not declared here: SQLite has no such
    index) serves the search's `LIKE '%q%'`.

    `log_created_at` is the page's log's `task_logs.created_at`: on PostgreSQL (migration 0007) the
    table is partitioned by range on it, a partition per day (`store.partitions`), so retention drops
    whole days; there the primary key is (id, log_created_at) and the unique key (log_id,
    start_offset, log_created_at), as strict as declared here since a log's pages share the value."""

    __tablename__ = "log_pages"
    __table_args__ = (
        UniqueConstraint("log_id", "start_offset", name="uq_log_pages_log_start"),
        Index("ix_log_pages_log_last_line", "log_id", "last_line", "start_offset"),
        Index("ix_log_pages_log_last_ts", "log_id", "last_ts", "start_offset"),
        Index("ix_log_pages_last_ts", "last_ts", "id"),  # the search walks pages newest first
    )

    id = db.Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    log_id = db.Column(Integer, ForeignKey("task_logs.id", ondelete="CASCADE"), nullable=False)
    start_offset = db.Column(BigInteger, nullable=False)
    end_offset = db.Column(BigInteger, nullable=False)
    start_byte = db.Column(BigInteger, nullable=False)
    byte_count = db.Column(Integer, nullable=False)
    first_line = db.Column(BigInteger, nullable=False)
    last_line = db.Column(BigInteger, nullable=False)
    ends_line = db.Column(Boolean, nullable=False)
    first_ts = db.Column(BigInteger, nullable=False)
    last_ts = db.Column(BigInteger, nullable=False)
    stamps = db.Column(
        LargeBinary, nullable=False
    )  # pages.encode_stamps: an int64 per line starting here
    text = db.Column(Text, nullable=False)
    since = db.Column(String(40), nullable=False, default="")
    seen = db.Column(Integer, nullable=False, default=0)
    partial = db.Column(BigInteger, nullable=False, default=0)
    restarts = db.Column(Integer, nullable=False, default=0)
    # the final save ran: the page will not change again, and the search's trigram index holds it
    sealed = db.Column(Boolean, nullable=False, default=False)
    created_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
    log_created_at = db.Column(DateTime(timezone=True), nullable=False)


class CollectorMember(db.Model):  # type: ignore[name-defined]
    """One running collector (`flask --app wsgi collect`): the collectors of one `scope` (the served
    namespaces) share its running tasks among those whose `heartbeat_at` (the database's clock) is
    recent (`tasklogs.shards`)."""

    __tablename__ = "collectors"

    name = db.Column(String(120), primary_key=True)
    scope = db.Column(Text, nullable=False)
    started_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
    heartbeat_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
