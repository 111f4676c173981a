"""task_logs.resume: where the capture stood at the final save, so compaction keeps the resume position

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("task_logs") as batch:
        batch.add_column(sa.Column("resume", sa.String(80), nullable=True))


def downgrade():
    with op.batch_alter_table("task_logs") as batch:
        batch.drop_column("resume")
