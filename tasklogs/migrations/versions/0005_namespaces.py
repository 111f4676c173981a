"""namespaces: tasks are keyed by (namespace, task_id); tasks gain started_at and finished_at

Rows stored before belong to the service's default namespace (`TASKLOGS_NAMESPACE`). `started_at` of an
existing task is when tasklogs first stored it; `finished_at` is its last update if it is complete.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _default_namespace() -> str:
    from tasklogs.bootstrap import services

    return services().settings.cluster.namespace


def _drop_primary_key(batch) -> None:
    """PostgreSQL names it `tasks_pkey`; SQLite's is unnamed, and batch mode replaces it when the new
    one is created."""
    if op.get_bind().dialect.name != "sqlite":
        batch.drop_constraint("tasks_pkey", type_="primary")


def upgrade():
    namespace = _default_namespace()
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("namespace", sa.String(63), nullable=False, server_default=namespace)
        )
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE tasks SET started_at = created_at")
    op.execute("UPDATE tasks SET finished_at = updated_at WHERE complete")
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("namespace", server_default=None)
        batch.alter_column("started_at", nullable=False)
        _drop_primary_key(batch)
        batch.create_primary_key("tasks_pkey", ["namespace", "task_id"])
        batch.create_index("ix_tasks_listing", ["started_at", "namespace", "task_id"])
    with op.batch_alter_table("task_logs") as batch:
        batch.add_column(
            sa.Column("namespace", sa.String(63), nullable=False, server_default=namespace)
        )
    with op.batch_alter_table("task_logs") as batch:
        batch.alter_column("namespace", server_default=None)
        batch.drop_constraint("uq_task_logs_task_node_pod_container", type_="unique")
        batch.create_unique_constraint(
            "uq_task_logs_task_node_pod_container",
            ["namespace", "task_id", "node_id", "pod_name", "container"],
        )
        batch.drop_index("ix_task_logs_task_id")
        batch.create_index("ix_task_logs_task", ["namespace", "task_id"])


def downgrade():
    with op.batch_alter_table("task_logs") as batch:
        batch.drop_index("ix_task_logs_task")
        batch.create_index("ix_task_logs_task_id", ["task_id"])
        batch.drop_constraint("uq_task_logs_task_node_pod_container", type_="unique")
        batch.create_unique_constraint(
            "uq_task_logs_task_node_pod_container", ["task_id", "node_id", "pod_name", "container"]
        )
        batch.drop_column("namespace")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_listing")
        _drop_primary_key(batch)
        batch.create_primary_key("tasks_pkey", ["task_id"])
        batch.drop_column("finished_at")
        batch.drop_column("started_at")
        batch.drop_column("namespace")
