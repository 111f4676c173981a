"""tasks, task_logs (the design's table) and the log_chunks journal

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    _create_tasks()
    _create_task_logs()
    _create_log_chunks()


def _create_tasks():
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(253), primary_key=True),
        sa.Column("phase", sa.String(32), nullable=False, server_default=""),
        sa.Column("complete", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def _create_task_logs():
    op.create_table(
        "task_logs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(253), nullable=False),
        sa.Column("node_id", sa.String(253), nullable=False),
        sa.Column("pod_name", sa.String(253), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False, server_default=""),
        sa.Column("logs", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("task_id", "node_id", "pod_name", name="uq_task_logs_task_node_pod"),
    )
    op.create_index("ix_task_logs_task_id", "task_logs", ["task_id"])


def _create_log_chunks():
    op.create_table(
        "log_chunks",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column(
            "log_id",
            sa.Integer(),
            sa.ForeignKey("task_logs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("start_offset", sa.BigInteger(), nullable=False),
        sa.Column("end_offset", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("since", sa.String(40), nullable=False, server_default=""),
        sa.Column("seen", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("partial", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("restarts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("log_id", "start_offset", name="uq_log_chunks_log_start"),
    )


def downgrade():
    op.drop_table("log_chunks")
    op.drop_index("ix_task_logs_task_id", table_name="task_logs")
    op.drop_table("task_logs")
    op.drop_table("tasks")
