"""Out of database connections or WebSocket slots: a clear answer, never a hang."""

import threading
import time

import pytest
import websocket

from tasklogs.extensions import db
from testkit import scenarios
from testkit.apps import dispose, make_app

pytestmark = pytest.mark.faults


def test_no_free_database_connection_answers_quickly(database_url, kube_adapter, kube, task_id):
    app = make_app(database_url, kube_adapter, TASKLOGS_DB_POOL_SIZE=1, TASKLOGS_DB_POOL_TIMEOUT=1)
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "x\n")
    release = threading.Event()

    def hold():
        with app.app_context():
            with db.engine.connect(), db.engine.connect():  # pool_size 1 + overflow 1: all taken
                release.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.3)
    try:
        started = time.monotonic()
        response = app.test_client().get(f"/api/v1/tasks/{task_id}/logs")
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"waited {elapsed:.1f} s"
        assert response.status_code == 200 and response.headers["X-Tasklogs-Degraded"] == "database"
        assert response.get_json()["logs"][0]["logs"] == "x\n"
    finally:
        release.set()
        holder.join()
        dispose(app)


def test_no_free_websocket_slot_is_503(serve, kube, task_id):
    _, live = serve(TASKLOGS_MAX_TAILS=1)
    scenarios.workflow(kube, task_id)
    url = live.ws_url(f"/ws/tasks/{task_id}/logs")
    first = websocket.create_connection(url, timeout=5)
    try:
        websocket.create_connection(url, timeout=5)
        raise AssertionError("the second tail must be refused")
    except websocket.WebSocketBadStatusException as error:
        assert error.status_code == 503 and b"too_many_connections" in error.resp_body
    first.close()
