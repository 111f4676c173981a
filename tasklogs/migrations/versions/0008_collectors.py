"""collectors: the membership of the collectors that share the running tasks

One row per running collector: its name, its scope (the served namespaces, as `TASKLOGS_NAMESPACES`
reads them: only collectors of one scope share work), when it started and its last heartbeat (the
database's clock, so the collectors' clocks need not agree). A collector deletes its row when it stops;
the row of one killed outright is ignored once its heartbeat is older than `TASKLOGS_COLLECTOR_TTL` and
removed later by the others.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "collectors",
        sa.Column("name", sa.String(120), primary_key=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade():
    op.drop_table("collectors")
