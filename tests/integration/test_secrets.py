"""A database password and an API token never reach a response, a log record or a process's output:
the store down at start-up and on requests, a database that refuses, gunicorn's start."""

import logging

import pytest
from sqlalchemy.engine import make_url

from testkit import scenarios
from testkit.apps import dispose, make_app
from testkit.databases import ADMIN_URL
from testkit.gunicorn import Gunicorn, service_env
from testkit.processes import free_port
from testkit.waiting import wait_for

PASSWORD = "s3cret-Pw"
TOKEN = "tok-0123456789abcdef"


def with_password(url: str, port: int | None = None, database: str | None = None) -> str:
    """The admin URL (no password: the tests' trust auth) with PASSWORD, another port or database."""
    parsed = make_url(url)
    changed = parsed.set(
        password=PASSWORD, port=port or parsed.port, database=database or parsed.database
    )
    return changed.render_as_string(hide_password=False)


def everything_said(response_texts, caplog) -> str:
    return "\n".join([*response_texts, caplog.text, *(r.getMessage() for r in caplog.records)])


@pytest.mark.parametrize("case", ["nothing listens", "no such database"])
def test_a_store_that_cannot_be_reached_is_reported_without_the_password(
    case, kube, kube_adapter, task_id, caplog
):
    url = (
        with_password(ADMIN_URL, port=free_port())
        if case == "nothing listens"
        else with_password(ADMIN_URL, database="tl_deploy_no_such_database")
    )
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "hello\n")
    with caplog.at_level(logging.INFO):
        app = make_app(url, kube_adapter, TASKLOGS_API_TOKEN=TOKEN)
        try:
            client = app.test_client()
            auth = {"Authorization": f"Bearer {TOKEN}"}
            ready = client.get("/readyz?verbose=1", headers=auth)
            logs = client.get(f"/api/v1/tasks/{task_id}/logs", headers=auth)
            refused = client.get(
                f"/api/v1/tasks/{task_id}/logs", headers={"Authorization": "Bearer wrong-token-1"}
            )
        finally:
            dispose(app)
    assert ready.status_code == 503
    assert ready.get_json()["database"].startswith("database unavailable")
    assert logs.status_code == 200 and logs.headers["X-Tasklogs-Degraded"] == "database"
    assert refused.status_code == 401
    said = everything_said(
        [ready.get_data(as_text=True), logs.get_data(as_text=True), refused.get_data(as_text=True)],
        caplog,
    )
    assert "database unreachable at start-up" in said, "the start-up log says the store is down"
    assert PASSWORD not in said and TOKEN not in said


def test_gunicorn_with_an_unreachable_database_logs_no_password(kubeconfig, tmp_path):
    url = with_password(ADMIN_URL, port=free_port())
    log_path = str(tmp_path / "gunicorn.log")
    server = Gunicorn(
        service_env(url, kubeconfig, TASKLOGS_API_TOKEN=TOKEN, TASKLOGS_LOG_LEVEL="DEBUG"),
        1,
        log_path,
    )
    try:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            server.url("/readyz"), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(request, timeout=10)
        assert not_ready.value.code == 503
        assert PASSWORD not in not_ready.value.read().decode()
        assert wait_for(lambda: "database unreachable" in server.output())
    finally:
        server.stop()
    output = server.output()
    assert "Booting worker" in output
    assert PASSWORD not in output and TOKEN not in output


def test_gunicorn_with_a_malformed_database_url_stops_without_printing_it(kubeconfig, tmp_path):
    url = f"postgresql://u:{PASSWORD}@db:notaport/tasklogs"
    log_path = str(tmp_path / "gunicorn.log")
    with pytest.raises(RuntimeError, match="exited"):
        Gunicorn(service_env(url, kubeconfig), 1, log_path)
    with open(log_path) as log:
        output = log.read()
    assert "DATABASE_URL='postgresql://u:***@db:notaport/tasklogs'" in output
    assert PASSWORD not in output
