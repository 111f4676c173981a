"""search: a trigram index over the pages' text (PostgreSQL), and the pages in time order

`pg_trgm` (a trusted extension since PostgreSQL 13: the database owner may create it) and a GIN
`gin_trgm_ops` index on `log_pages.text` serve `LIKE`/`ILIKE '%q%'` for the search API. The index
holds the trigrams of the detoasted text, so lz4- or pglz-compressed TOAST values are indexed like any
other; a match is rechecked on the page itself (one decompression per candidate page). Building it
reads every page once: about a minute per GB of log text on two cores (see bench/README.md), under a
lock that blocks writes to `log_pages` meanwhile.

The index holds only *sealed* pages: those of logs whose final save ran, which never change again.
Indexing the live capture's small pages as they are appended multiplied the WAL of the write path by
five (11.4 bytes per log byte against 2.3, `python -m bench.ingest` with and without the index), so
the pages of running tasks stay out of it and a search reads them through a partial b-tree of the
unsealed pages instead. Pages of complete tasks stored before this revision are sealed here.

`(last_ts, id)` lets a search walk the newest pages first without sorting the table. SQLite (quick
local runs) gets only that one: its search scans the pages with LIKE.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("log_pages") as batch:
        batch.add_column(
            sa.Column("sealed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE log_pages SET sealed = true WHERE log_id IN (SELECT l.id FROM task_logs l JOIN tasks t"
        " ON t.namespace = l.namespace AND t.task_id = l.task_id WHERE t.complete)"
    )
    op.create_index("ix_log_pages_last_ts", "log_pages", ["last_ts", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_log_pages_text_trgm ON log_pages USING gin (text gin_trgm_ops)"
            " WHERE sealed"
        )
        op.execute("CREATE INDEX ix_log_pages_unsealed ON log_pages (last_ts, id) WHERE NOT sealed")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_log_pages_unsealed")
        op.execute("DROP INDEX IF EXISTS ix_log_pages_text_trgm")
    op.drop_index("ix_log_pages_last_ts", "log_pages")
    with op.batch_alter_table("log_pages") as batch:
        batch.drop_column("sealed")
