"""The tables: `tasks` (one row per workflow), `task_logs` (one row per pod container, as the design names it)
and `log_chunks` (the append-only journal of a running pod's log, compacted into `task_logs.logs`
by the final save)."""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
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

    task_id = db.Column(String(253), primary_key=True)
    phase = db.Column(String(32), nullable=False, default="")
    complete = db.Column(Boolean, nullable=False, default=False)
    created_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


class TaskLog(db.Model):  # type: ignore[name-defined]
    __tablename__ = "task_logs"
    __table_args__ = (
        UniqueConstraint(
            "task_id",
            "node_id",
            "pod_name",
            "container",
            name="uq_task_logs_task_node_pod_container",
        ),
    )

    id = db.Column(Integer, primary_key=True, autoincrement=True)
    task_id = db.Column(String(253), nullable=False, index=True)
    node_id = db.Column(String(253), nullable=False)
    pod_name = db.Column(String(253), nullable=False)
    container = db.Column(String(63), nullable=False, default="main")
    phase = db.Column(String(32), nullable=False, default="")
    logs = db.Column(Text, nullable=False, default="")
    resume = db.Column(
        String(80), nullable=True
    )  # the capture's Position after `logs`, kept by the final save
    created_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


class LogChunk(db.Model):  # type: ignore[name-defined]
    """A piece of a pod's log at character offset `start_offset`, and where the capture stood after it
    (`since`, `seen`, `partial`, `restarts`) so that any process can resume the capture exactly there."""

    __tablename__ = "log_chunks"
    __table_args__ = (UniqueConstraint("log_id", "start_offset", name="uq_log_chunks_log_start"),)

    id = db.Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    log_id = db.Column(Integer, ForeignKey("task_logs.id", ondelete="CASCADE"), nullable=False)
    start_offset = db.Column(BigInteger, nullable=False)
    end_offset = db.Column(BigInteger, nullable=False)
    data = db.Column(Text, nullable=False)
    since = db.Column(String(40), nullable=False, default="")
    seen = db.Column(Integer, nullable=False, default=0)
    partial = db.Column(BigInteger, nullable=False, default=0)
    restarts = db.Column(Integer, nullable=False, default=0)
    created_at = db.Column(DateTime(timezone=True), nullable=False, default=utcnow)
