"""search: a trigram index over the pages' text (PostgreSQL), and the pages in time order

`pg_trgm` (a trusted extension since PostgreSQL 13: the database owner may create it) and a GIN
`gin_trgm_ops` index on `log_pages.text` serve `LIKE`/`ILIKE '%q%'` for the search API. The index
holds the trigrams of the detoasted text, so lz4- or pglz-compressed TOAST values are indexed like any
other; a match is rechecked on the page itself (one decompression per candidate page). Building it
reads every page once: about a minute per GB of log text on two cores (see bench/README.md), under a
lock that blocks writes to `log_pages` meanwhile.

`(last_ts, id)` lets a search walk the newest pages first without sorting the table. SQLite (quick
local runs) gets only that one: its search scans the pages with LIKE.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_log_pages_last_ts", "log_pages", ["last_ts", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_log_pages_text_trgm ON log_pages USING gin (text gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_log_pages_text_trgm")
    op.drop_index("ix_log_pages_last_ts", "log_pages")
