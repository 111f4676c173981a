"""Kubernetes-only mode: the database is down (at start-up or later) and the service keeps answering."""

import logging

import pytest

from testkit import scenarios

pytestmark = pytest.mark.faults


def test_database_down_serves_from_kubernetes_marked_degraded(
    proxied_app, db_proxy, kube, task_id, caplog
):
    client = proxied_app.test_client()
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "live \u00e9\n")
    db_proxy.stop()
    with caplog.at_level(logging.WARNING):
        response = client.get(f"/api/v1/tasks/{task_id}/logs")
    assert response.status_code == 200
    assert response.headers["X-Tasklogs-Degraded"] == "database"
    body = response.get_json()
    assert (body["source"], body["logs"][0]["logs"]) == ("kubernetes", "live \u00e9\n")
    assert any("database unavailable" in record.getMessage() for record in caplog.records)
    assert "postgresql" not in response.get_data(as_text=True)


def test_database_back_stores_again(proxied_app, db_proxy, kube, task_id):
    client = proxied_app.test_client()
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "one\n")
    db_proxy.stop()
    response = client.get(f"/api/v1/tasks/{task_id}/logs")
    assert response.get_json() and response.headers["X-Tasklogs-Degraded"] == "database"
    db_proxy.start()
    scenarios.finish(kube, wf)
    assert client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["complete"] is True
    kube.stop()
    body = client.get(f"/api/v1/tasks/{task_id}/logs").get_json()
    assert (body["source"], body["logs"][0]["logs"]) == ("database", "one\n")


def test_both_down_is_503(proxied_app, db_proxy, kube, task_id):
    db_proxy.stop()
    kube.stop()
    response = proxied_app.test_client().get(f"/api/v1/tasks/{task_id}/logs")
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"


def test_app_starts_with_the_database_down_and_migrates_later(
    database_url, db_proxy, kube_adapter, kube, task_id
):
    from testkit.apps import dispose, make_app

    db_proxy.stop()
    app = make_app(db_proxy.url(database_url.rsplit("/", 1)[1]), kube_adapter)
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "x\n")
    response = app.test_client().get(f"/api/v1/tasks/{task_id}/logs")
    assert response.get_json()["logs"][0]["logs"] == "x\n"
    assert response.headers["X-Tasklogs-Degraded"] == "database"
    dispose(app)


def test_a_transaction_cut_by_a_partition_does_not_hold_its_locks_once_the_database_is_back(
    proxied_app, db_proxy, database_url, kube, task_id, caplog
):
    """PostgreSQL keeps the session of a connection cut by a partition it has not noticed, idle in its
    transaction with the row locks it took; the process ends that session on the first connection it
    opens once the database is reachable, so the log it had locked is written on at once."""
    from tasklogs.errors import StoreUnavailable
    from tasklogs.store import repository

    client = proxied_app.test_client()
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "one\n")
    assert client.get(f"/api/v1/tasks/{task_id}/logs").status_code == 200  # stores the rows
    log_id = _log_id(database_url, task_id)
    units = proxied_app.extensions["tasklogs"].units
    with pytest.raises(StoreUnavailable), units() as uow:
        repository.lock_logs(uow.session, [log_id])  # as an append does first
        db_proxy.stop(server_notices=False)
        repository.stored_end(uow.session, log_id)
    assert _sessions_locking(database_url, log_id) == 1, "the server kept the cut session"

    db_proxy.start()
    kube.write_log(wf.pod(), "main", "two\n")
    scenarios.finish(kube, wf)
    with caplog.at_level(logging.WARNING, logger="tasklogs"):
        done = _within(10, lambda: client.get(f"/api/v1/tasks/{task_id}/logs").get_json())
    assert done is not None, "the refresh waited on the cut session's lock"
    assert (done["complete"], done["logs"][0]["logs"]) == (True, "one\ntwo\n")
    assert _sessions_locking(database_url, log_id) == 0
    assert any("given up on" in record.getMessage() for record in caplog.records)


def _log_id(database_url, task_id) -> int:
    return _scalar(database_url, "SELECT id FROM task_logs WHERE task_id = %s", task_id)


def _sessions_locking(database_url, log_id) -> int:
    """How many other sessions sit idle in a transaction whose last statement share-locked the log's
    row (`lock_logs`)."""
    return _scalar(
        database_url,
        "SELECT count(*) FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid()"
        " AND a.state = 'idle in transaction' AND a.query LIKE %s",
        f"%task_logs.id IN ({log_id})%FOR SHARE%",
    )


def _scalar(database_url, query: str, *params):
    """The first column of the query's first row, on a connection of its own (closed after)."""
    import psycopg2

    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchone()[0]
    finally:
        connection.close()


def _within(seconds: float, call):
    """`call()`'s result, or None if it has not returned within `seconds` (it runs on in its thread)."""
    import threading

    results: list = []
    worker = threading.Thread(target=lambda: results.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    return results[0] if results else None
