"""task_logs.source: where a log's text came from

"" for a log captured from the cluster (every log before this revision); "artifacts" for one read from
the artifact Argo's archiveLogs wrote, once its pod was gone. The REST body names it per log.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "task_logs", sa.Column("source", sa.String(16), nullable=False, server_default="")
    )


def downgrade():
    op.drop_column("task_logs", "source")
