"""The seed's naive design (from the original design document), as the benchmark's baseline.

`WS /ws/tasks/{task_id}/logs`, same URL and frames as tasklogs. Each viewer runs its own loop: read the
database, then every 2 seconds get the workflow, list its pods, read EVERY pod's WHOLE log (no follow, no
sinceTime), save each whole text into its row (`UPDATE ... SET logs = <whole text>`), send the client what
is new (by length), until the workflow completes. Nothing is shared between viewers.

Run: `gunicorn -c bench/baseline_gunicorn.py bench.baseline:app` with DATABASE_URL and KUBECONFIG.
"""

import json
import os
import time

from flask import Flask
from flask_sock import Sock
from kubernetes import client, config
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert

from tasklogs.cursor import encode_cursor

POLL_SECONDS = 2.0
FINAL_PHASES = ("Succeeded", "Failed", "Error")
NAMESPACE = os.environ.get("TASKLOGS_NAMESPACE", "argo")
CONTAINER = "main"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
NODE_ID_ANNOTATION = "workflows.argoproj.io/node-id"

metadata = MetaData()
task_logs = Table(
    "baseline_task_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(253), nullable=False, index=True),
    Column("node_id", String(253), nullable=False),
    Column("pod_name", String(253), nullable=False),
    Column("phase", String(32), nullable=False, default=""),
    Column("logs", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("task_id", "node_id", "pod_name"),
)


def database_engine():
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
    engine = create_engine(url, pool_size=10, max_overflow=10, pool_timeout=30)
    metadata.create_all(engine)
    return engine


def kubernetes_apis():
    """CoreV1Api and CustomObjectsApi from KUBECONFIG (the pool as large as tasklogs' own: 64)."""
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 64
    api_client = client.ApiClient(configuration)
    return client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)


def fetch_logs_from_kubernetes(core, custom, task_id: str) -> tuple[str, list[dict]]:
    """(workflow phase, [{node, pod, phase, logs}]): the workflow, its pods, each pod's whole log."""
    workflow = custom.get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NAMESPACE, "workflows", task_id
    )
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"{WORKFLOW_LABEL}={task_id}").items
    pods.sort(key=lambda pod: (pod.metadata.creation_timestamp, pod.metadata.name))
    entries = []
    for pod in pods:
        text = core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, container=CONTAINER)
        entries.append(
            {
                "node": (pod.metadata.annotations or {}).get(NODE_ID_ANNOTATION, pod.metadata.name),
                "pod": pod.metadata.name,
                "phase": pod.status.phase,
                "logs": text,
            }
        )
    return workflow.get("status", {}).get("phase", ""), entries


def save_logs_to_database(engine, task_id: str, entries: list[dict]) -> None:
    """Upsert each pod's row with its whole text."""
    with engine.begin() as connection:
        for entry in entries:
            values = {
                "task_id": task_id,
                "node_id": entry["node"],
                "pod_name": entry["pod"],
                "phase": entry["phase"],
                "logs": entry["logs"],
            }
            statement = insert(task_logs).values(**values)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["task_id", "node_id", "pod_name"],
                    set_={
                        "logs": statement.excluded.logs,
                        "phase": statement.excluded.phase,
                        "updated_at": func.now(),
                    },
                )
            )


def get_logs_from_database(engine, task_id: str) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(task_logs)
            .where(task_logs.c.task_id == task_id)
            .order_by(task_logs.c.created_at, task_logs.c.id)
        )
        return [
            {"node": row.node_id, "pod": row.pod_name, "phase": row.phase, "logs": row.logs}
            for row in rows
        ]


class Viewer:
    """One client's loop: everything it does is its own (requests, saves, diffs)."""

    def __init__(self, ws, engine, core, custom, task_id: str):
        self.ws, self.engine, self.core, self.custom, self.task_id = (
            ws,
            engine,
            core,
            custom,
            task_id,
        )
        self.sent: dict[str, int] = {}
        self.phases: dict[str | None, str] = {}

    def run(self) -> None:
        stored = get_logs_from_database(self.engine, self.task_id)
        phase, entries = fetch_logs_from_kubernetes(self.core, self.custom, self.task_id)
        save_logs_to_database(self.engine, self.task_id, entries)
        self._snapshot(phase, entries or stored)
        while phase not in FINAL_PHASES:
            time.sleep(POLL_SECONDS)
            phase, entries = fetch_logs_from_kubernetes(self.core, self.custom, self.task_id)
            save_logs_to_database(self.engine, self.task_id, entries)
            self._appends(phase, entries)
        self._send({"type": "complete", "phase": phase})
        self.ws.close(reason=1000, message="task complete")

    def _snapshot(self, phase: str, entries: list[dict]) -> None:
        logs = [
            {
                "node": e["node"],
                "pod": e["pod"],
                "container": CONTAINER,
                "phase": e["phase"],
                "offset": 0,
                "logs": e["logs"],
            }
            for e in entries
        ]
        self.sent = {e["pod"]: len(e["logs"]) for e in entries}
        self.phases = {None: phase, **{e["node"]: e["phase"] for e in entries}}
        self._send(
            {
                "type": "snapshot",
                "task_id": self.task_id,
                "phase": phase,
                "source": "kubernetes",
                "complete": False,
                "logs": logs,
                "cursor": encode_cursor(self.sent),
            }
        )

    def _appends(self, phase: str, entries: list[dict]) -> None:
        for entry in entries:
            start = self.sent.get(entry["pod"], 0)
            if len(entry["logs"]) > start:
                self.sent[entry["pod"]] = len(entry["logs"])
                self._send(
                    {
                        "type": "append",
                        "node": entry["node"],
                        "pod": entry["pod"],
                        "container": CONTAINER,
                        "offset": start,
                        "data": entry["logs"][start:],
                        "cursor": encode_cursor(self.sent),
                    }
                )
            self._phase(entry["phase"], entry["node"])
        self._phase(phase, None)

    def _phase(self, phase: str, node: str | None) -> None:
        if self.phases.get(node) != phase:
            self.phases[node] = phase
            self._send({"type": "phase", "phase": phase, "node": node})

    def _send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))


def create_app() -> Flask:
    app = Flask(__name__)
    engine, (core, custom) = database_engine(), kubernetes_apis()
    sock = Sock(app)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @sock.route("/ws/tasks/<task_id>/logs")
    def tail_task_logs(ws, task_id: str):
        Viewer(ws, engine, core, custom, task_id).run()

    return app


app = create_app()
