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
