"""partitions: `log_pages` partitioned by day of its log's creation (PostgreSQL), for retention by
partition

Every page gains `log_created_at`, its log's `task_logs.created_at` (which never changes): the range
partition key. On PostgreSQL the table is rebuilt as `PARTITION BY RANGE (log_created_at)`: a
partition per UTC day that holds logs (`log_pages_pYYYYMMDD`), today's and the next days', and
`log_pages_default` for stragglers; the rows are copied with their ids, then the primary key
(`id, log_created_at`), the unique key (`log_id, start_offset, log_created_at`: a partitioned table's
unique keys must hold the partition key; a log's pages share one value, so it is as strict as before),
the line, time and search indexes (the pg_trgm GIN index included: each partition gets its own) are
built on the filled partitions. This rewrites the table once: time and WAL about those of writing the
pages again. `task_logs` gains an index on `created_at` (which partition holds which logs).

SQLite (quick local runs) stays unpartitioned: it only gains the column.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from tasklogs.store import partitions

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DAYS_AHEAD = 3  # the service creates more ahead as days pass (TASKLOGS_PARTITIONS_AHEAD)
COLUMNS = (
    "id, log_id, start_offset, end_offset, start_byte, byte_count, first_line, last_line, ends_line,"
    " first_ts, last_ts, stamps, text, since, seen, partial, restarts, sealed, created_at"
)
INDEXES = (
    "CREATE INDEX ix_log_pages_log_last_line ON log_pages (log_id, last_line, start_offset)",
    "CREATE INDEX ix_log_pages_log_last_ts ON log_pages (log_id, last_ts, start_offset)",
    "CREATE INDEX ix_log_pages_last_ts ON log_pages (last_ts, id)",
    # the search's indexes of 0006: sealed pages by trigram, the running tasks' pages by time
    "CREATE INDEX ix_log_pages_text_trgm ON log_pages USING gin (text gin_trgm_ops) WHERE sealed",
    "CREATE INDEX ix_log_pages_unsealed ON log_pages (last_ts, id) WHERE NOT sealed",
)


def upgrade():
    op.create_index("ix_task_logs_created_at", "task_logs", ["created_at"])
    if op.get_bind().dialect.name != "postgresql":
        _add_column_sqlite()
        return
    op.execute("ALTER TABLE log_pages RENAME TO log_pages_unpartitioned")
    for name in ("log_pages_pkey", "uq_log_pages_log_start"):
        op.execute(f"ALTER TABLE log_pages_unpartitioned DROP CONSTRAINT {name}")
    for name in ("ix_log_pages_log_last_line", "ix_log_pages_log_last_ts", "ix_log_pages_last_ts"):
        op.execute(f"DROP INDEX {name}")
    op.execute("DROP INDEX IF EXISTS ix_log_pages_text_trgm")
    op.execute("DROP INDEX IF EXISTS ix_log_pages_unsealed")
    op.execute("ALTER SEQUENCE log_pages_id_seq OWNED BY NONE")
    _create_partitioned()
    connection = op.get_bind()  # what partitions' functions need of a session: execute
    partitions.create_default(connection)
    partitions.create_partitions(connection, _days_with_logs() + _days_ahead())
    op.execute(
        f"INSERT INTO log_pages ({COLUMNS}, log_created_at)"
        f" SELECT {', '.join('p.' + c.strip() for c in COLUMNS.split(','))}, l.created_at"
        " FROM log_pages_unpartitioned p JOIN task_logs l ON l.id = p.log_id"
    )
    op.execute("DROP TABLE log_pages_unpartitioned")
    op.execute("ALTER SEQUENCE log_pages_id_seq OWNED BY log_pages.id")
    _constrain_and_index()


def _add_column_sqlite():
    with op.batch_alter_table("log_pages") as batch:
        batch.add_column(
            sa.Column(
                "log_created_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default="1970-01-01 00:00:00",
            )
        )
    op.execute(
        "UPDATE log_pages SET log_created_at ="
        " (SELECT l.created_at FROM task_logs l WHERE l.id = log_pages.log_id)"
    )


def _create_partitioned():
    """The parent table, with the columns of 0004 and 0006 and the key; compression is inherited by every
    partition created from it."""
    method = "lz4" if _has_lz4() else "pglz"
    op.execute(f"""
        CREATE TABLE log_pages (
            id bigint NOT NULL DEFAULT nextval('log_pages_id_seq'),
            log_id integer NOT NULL,
            start_offset bigint NOT NULL,
            end_offset bigint NOT NULL,
            start_byte bigint NOT NULL,
            byte_count integer NOT NULL,
            first_line bigint NOT NULL,
            last_line bigint NOT NULL,
            ends_line boolean NOT NULL,
            first_ts bigint NOT NULL,
            last_ts bigint NOT NULL,
            stamps bytea COMPRESSION {method} NOT NULL,
            text text COMPRESSION {method} NOT NULL,
            since varchar(40) NOT NULL DEFAULT '',
            seen integer NOT NULL DEFAULT 0,
            partial bigint NOT NULL DEFAULT 0,
            restarts integer NOT NULL DEFAULT 0,
            sealed boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL,
            log_created_at timestamptz NOT NULL
        ) PARTITION BY RANGE (log_created_at)
    """)


def _constrain_and_index():
    op.execute(
        "ALTER TABLE log_pages ADD CONSTRAINT log_pages_pkey PRIMARY KEY (id, log_created_at)"
    )
    op.execute(
        "ALTER TABLE log_pages ADD CONSTRAINT uq_log_pages_log_start"
        " UNIQUE (log_id, start_offset, log_created_at)"
    )
    op.execute(
        "ALTER TABLE log_pages ADD CONSTRAINT log_pages_log_id_fkey FOREIGN KEY (log_id)"
        " REFERENCES task_logs (id) ON DELETE CASCADE"
    )
    for statement in INDEXES:
        op.execute(statement)


def _days_with_logs() -> list:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT DISTINCT (l.created_at AT TIME ZONE 'UTC')::date FROM task_logs l"
            " WHERE EXISTS (SELECT 1 FROM log_pages_unpartitioned p WHERE p.log_id = l.id)"
        )
    )
    return [row[0] for row in rows]


def _days_ahead() -> list:
    today = datetime.now(UTC).date()
    return [today + partitions.DAY * n for n in range(DAYS_AHEAD + 1)]


def _has_lz4() -> bool:
    values = (
        op.get_bind()
        .execute(
            sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        )
        .scalar()
    )
    return "lz4" in (values or [])


def downgrade():
    op.drop_index("ix_task_logs_created_at", "task_logs")
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("log_pages") as batch:
            batch.drop_column("log_created_at")
        return
    op.execute("ALTER TABLE log_pages RENAME TO log_pages_partitioned")
    op.execute("ALTER SEQUENCE log_pages_id_seq OWNED BY NONE")
    op.execute(
        "CREATE TABLE log_pages (LIKE log_pages_partitioned INCLUDING DEFAULTS INCLUDING COMPRESSION)"
    )
    op.execute("ALTER TABLE log_pages DROP COLUMN log_created_at")
    op.execute(f"INSERT INTO log_pages ({COLUMNS}) SELECT {COLUMNS} FROM log_pages_partitioned")
    op.execute("DROP TABLE log_pages_partitioned")
    op.execute("ALTER SEQUENCE log_pages_id_seq OWNED BY log_pages.id")
    op.execute("ALTER TABLE log_pages ADD PRIMARY KEY (id)")
    op.execute(
        "ALTER TABLE log_pages ADD CONSTRAINT uq_log_pages_log_start UNIQUE (log_id, start_offset)"
    )
    op.execute(
        "ALTER TABLE log_pages ADD CONSTRAINT log_pages_log_id_fkey FOREIGN KEY (log_id)"
        " REFERENCES task_logs (id) ON DELETE CASCADE"
    )
    for statement in INDEXES:
        op.execute(statement)
