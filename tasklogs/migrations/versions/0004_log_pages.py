"""log_pages: every log as bounded pages with a line and time index; task_logs gains lines and bytes

Logs already stored are converted: a compacted `task_logs.logs` text and then its `log_chunks`
journal rows become pages, in order. Their lines had no stored timestamps: each converted line is
stamped with what the old rows knew (a journal row's `since`, the compacted log's resume position, or
else the row's time). `log_chunks`, `task_logs.logs` and `task_logs.resume` are dropped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from tasklogs.logstream import Position, UnreadableLog, timestamp_nanos
from tasklogs.pages import LogEnd, encode_stamps, line_starts, paginate

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMPS = (
    sa.LargeBinary()
)  # pages.encode_stamps: one little-endian int64 per line starting in the page


def upgrade():
    _create_pages()
    with op.batch_alter_table("task_logs") as batch:
        batch.add_column(sa.Column("lines", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"))
    _convert(op.get_bind())
    op.drop_table("log_chunks")
    with op.batch_alter_table("task_logs") as batch:
        batch.drop_column("logs")
        batch.drop_column("resume")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LOG_TEXT_FUNCTION)


def downgrade():
    raise NotImplementedError("log_pages cannot be folded back into one text per log")


def _create_pages():
    op.create_table(
        "log_pages",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column(
            "log_id",
            sa.Integer(),
            sa.ForeignKey("task_logs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("start_offset", sa.BigInteger(), nullable=False),
        sa.Column("end_offset", sa.BigInteger(), nullable=False),
        sa.Column("start_byte", sa.BigInteger(), nullable=False),
        sa.Column("byte_count", sa.Integer(), nullable=False),
        sa.Column("first_line", sa.BigInteger(), nullable=False),
        sa.Column("last_line", sa.BigInteger(), nullable=False),
        sa.Column("ends_line", sa.Boolean(), nullable=False),
        sa.Column("first_ts", sa.BigInteger(), nullable=False),
        sa.Column("last_ts", sa.BigInteger(), nullable=False),
        sa.Column("stamps", STAMPS, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("since", sa.String(40), nullable=False, server_default=""),
        sa.Column("seen", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("partial", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("restarts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("log_id", "start_offset", name="uq_log_pages_log_start"),
    )
    op.create_index(
        "ix_log_pages_log_last_line", "log_pages", ["log_id", "last_line", "start_offset"]
    )
    op.create_index("ix_log_pages_log_last_ts", "log_pages", ["log_id", "last_ts", "start_offset"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        method = "lz4" if _has_lz4(bind) else "pglz"
        op.execute(f"ALTER TABLE log_pages ALTER COLUMN text SET COMPRESSION {method}")
        op.execute(f"ALTER TABLE log_pages ALTER COLUMN stamps SET COMPRESSION {method}")


def _has_lz4(bind) -> bool:
    values = bind.execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    return "lz4" in (values or [])


OLD_LOGS = sa.table(
    "task_logs",
    sa.column("id"),
    sa.column("logs"),
    sa.column("resume"),
    sa.column("updated_at"),
    sa.column("lines"),
    sa.column("bytes"),
)
OLD_CHUNKS = sa.table(
    "log_chunks",
    sa.column("log_id"),
    sa.column("start_offset"),
    sa.column("data"),
    sa.column("since"),
    sa.column("seen"),
    sa.column("partial"),
    sa.column("restarts"),
    sa.column("created_at"),
)
PAGES = sa.table(
    "log_pages",
    *(
        sa.column(name)
        for name in (
            "log_id",
            "start_offset",
            "end_offset",
            "start_byte",
            "byte_count",
            "first_line",
            "last_line",
            "ends_line",
            "first_ts",
            "last_ts",
            "text",
            "since",
            "seen",
            "partial",
            "restarts",
            "created_at",
        )
    ),
    sa.column("stamps", STAMPS),
)


def _convert(bind) -> None:
    """Each stored log, one at a time: its compacted text, then its journal rows, as pages."""
    rows = bind.execute(
        sa.select(OLD_LOGS.c.id, OLD_LOGS.c.resume, OLD_LOGS.c.updated_at).order_by(OLD_LOGS.c.id)
    ).all()
    for log_id, resume, updated_at in rows:
        end = LogEnd()
        compacted = bind.execute(sa.select(OLD_LOGS.c.logs).where(OLD_LOGS.c.id == log_id)).scalar()
        if compacted:
            position = Position.decode(resume)
            stamps = [_nanos(position.since, updated_at)] * line_starts(compacted, True)
            end = _insert_pages(bind, log_id, end, compacted, stamps, position, updated_at)
        end = _convert_journal(bind, log_id, end)
        bind.execute(
            OLD_LOGS.update().where(OLD_LOGS.c.id == log_id).values(lines=end.lines, bytes=end.byte)
        )


def _convert_journal(bind, log_id: int, end: LogEnd) -> LogEnd:
    """The log's journal rows after `end`, as one text cut into pages (each row's lines stamped with
    what that row knew)."""
    texts: list[str] = []
    stamps: list[int] = []
    offset, ends_line, last = end.offset, end.ends_line, None
    chunks = bind.execute(
        sa.select(OLD_CHUNKS)
        .where(OLD_CHUNKS.c.log_id == log_id)
        .order_by(OLD_CHUNKS.c.start_offset)
    )
    for chunk in chunks:
        if chunk.start_offset + len(chunk.data) <= offset:
            continue
        data = chunk.data[max(0, offset - chunk.start_offset) :]
        stamps += [_nanos(chunk.since, chunk.created_at)] * line_starts(data, ends_line)
        texts.append(data)
        offset, ends_line, last = offset + len(data), data.endswith("\n"), chunk
    if last is None:
        return end
    position = Position(last.since, last.seen, last.partial, last.restarts)
    return _insert_pages(bind, log_id, end, "".join(texts), stamps, position, last.created_at)


def _insert_pages(bind, log_id, end, text, stamps, position, created_at) -> LogEnd:
    pages = paginate(end, text, stamps, position)
    bind.execute(
        PAGES.insert(),
        [
            {
                "log_id": log_id,
                "start_offset": page.start_offset,
                "end_offset": page.end_offset,
                "start_byte": page.start_byte,
                "byte_count": page.byte_count,
                "first_line": page.first_line,
                "last_line": page.last_line,
                "ends_line": page.ends_line,
                "first_ts": page.first_ts,
                "last_ts": page.last_ts,
                "stamps": encode_stamps(page.stamps),
                "text": page.text,
                "since": position.since,
                "seen": position.seen,
                "partial": position.partial,
                "restarts": position.restarts,
                "created_at": created_at,
            }
            for page in pages
        ],
    )
    return pages[-1].end if pages else end


def _nanos(since: str, fallback: datetime) -> int:
    try:
        return timestamp_nanos(since.encode()) if since else _from_datetime(fallback)
    except UnreadableLog:
        return _from_datetime(fallback)


def _from_datetime(moment) -> int:
    if isinstance(moment, str):  # SQLite hands back text
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # SQLite kept UTC times without their zone
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


# The documented way for SQL users to read a whole log's text (up to PostgreSQL's 1 GB value limit;
# beyond it, read `log_pages.text` in `start_offset` order).
LOG_TEXT_FUNCTION = """
CREATE OR REPLACE FUNCTION tasklogs_log_text(p_log_id integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_agg(text, '' ORDER BY start_offset), '')
    FROM log_pages WHERE log_id = p_log_id
$$
"""
