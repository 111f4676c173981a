"""task_logs: one row per container (TASKLOGS_CONTAINERS adds init, wait or sidecars to main)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("task_logs") as batch:
        batch.add_column(
            sa.Column("container", sa.String(63), nullable=False, server_default="main")
        )
        batch.drop_constraint("uq_task_logs_task_node_pod", type_="unique")
        batch.create_unique_constraint(
            "uq_task_logs_task_node_pod_container", ["task_id", "node_id", "pod_name", "container"]
        )


def downgrade():
    with op.batch_alter_table("task_logs") as batch:
        batch.drop_constraint("uq_task_logs_task_node_pod_container", type_="unique")
        batch.create_unique_constraint(
            "uq_task_logs_task_node_pod", ["task_id", "node_id", "pod_name"]
        )
        batch.drop_column("container")
