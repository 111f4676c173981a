"""The deployed shape: gunicorn + gevent worker, real HTTP and WebSocket, PostgreSQL, the fake cluster."""

import json
import re
import urllib.error
import urllib.request

import pytest
from sqlalchemy import create_engine, inspect

from testkit import scenarios
from testkit.databases import TEST_DATABASE, drop_database, recreate_database
from testkit.gunicorn import Gunicorn, service_env
from testkit.waiting import wait_for
from testkit.wsclient import TailClient, log_text

pytestmark = pytest.mark.e2e

# derived: parallel runs with their own TASKLOGS_TEST_DATABASE never collide
FRESH_DATABASE = f"{TEST_DATABASE}_fresh"


def fetch(server, path):
    try:
        with urllib.request.urlopen(server.url(path), timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_rest_and_websocket_tail_through_gunicorn_gevent(gunicorn, kube, task_id):
    server = gunicorn(workers=2)
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    kube.write_log(wf.pod("a"), "main", "hello\n")
    status, _, body = fetch(server, f"/api/v1/tasks/{task_id}/logs")
    assert status == 200 and body["logs"][0]["logs"] == "hello\n"

    client = TailClient(server.url(f"/ws/tasks/{task_id}/logs", "ws"))
    frames = [client.frame()]
    for index in range(20):
        kube.write_log(wf.pod("a"), "main", f"a {index}\n")
        kube.write_log(wf.pod("b"), "main", f"b {index} \u00e9\n")
    scenarios.finish(kube, wf)
    frames += client.rest()
    assert client.close_code == 1000 and frames[-1]["type"] == "complete"
    assert log_text(frames, wf.pod("a")) == "hello\n" + "".join(f"a {i}\n" for i in range(20))
    assert log_text(frames, wf.pod("b")) == "".join(f"b {i} \u00e9\n" for i in range(20))

    status, _, body = fetch(server, f"/api/v1/tasks/{task_id}/logs")
    assert (body["source"], body["complete"]) == ("database", True)


def test_errors_are_json_through_gunicorn(gunicorn, kube):
    server = gunicorn()
    status, _, body = fetch(server, "/api/v1/tasks/Bad_Id/logs")
    assert status == 400 and body["error"] == "invalid_task_id"
    status, _, body = fetch(server, "/no/such/route")
    assert status == 404 and body["error"] == "not_found"
    assert fetch(server, "/readyz")[::2] == (200, {"ready": True})
    status, _, body = fetch(server, "/readyz?verbose=1")
    assert status == 200 and (body["ready"], body["database"], body["kubernetes"]) == (
        True,
        "ok",
        "ok",
    )
    kube.stop()
    assert wait_for(lambda: fetch(server, "/readyz")[0] == 503, timeout=10), (
        "the checks are made again after a few seconds"
    )
    status, _, body = fetch(server, "/readyz?verbose=1")
    assert status == 503 and body["kubernetes"] != "ok" and body["database"] == "ok"


def test_command_line_bind_wins_over_the_config_file(gunicorn):
    server = gunicorn()
    assert re.search(rf"Listening at: http://127\.0\.0\.1:{server.port}", server.output())
    assert "0.0.0.0:8000" not in server.output()


def test_four_workers_starting_at_once_on_a_fresh_database(kubeconfig, tmp_path):
    """Migrations run under an advisory lock: every worker boots and the schema exists once."""
    url = recreate_database(FRESH_DATABASE)
    try:
        for attempt in range(3):
            server = Gunicorn(
                service_env(url, kubeconfig), 4, str(tmp_path / f"fresh{attempt}.log")
            )
            output = server.output()
            server.stop()
            assert output.count("Booting worker") == 4, output
            assert (
                "Traceback" not in output
                and "Worker failed" not in output
                and "exiting" not in output.lower()
            )
            recreate_database(FRESH_DATABASE) if attempt < 2 else None
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
        assert {"tasks", "task_logs", "log_pages", "alembic_version"} <= set(
            inspect(engine).get_table_names()
        )
        engine.dispose()
    finally:
        drop_database(FRESH_DATABASE)


def test_quick_start_on_sqlite_without_postgresql(kubeconfig, kube, task_id, tmp_path):
    """The README's `make run` on a laptop: no DATABASE_URL means an SQLite file and one worker; REST,
    the live tail and the final save all work there."""
    env = {
        **service_env(f"sqlite:///{tmp_path / 'tasklogs.sqlite'}", kubeconfig),
        "TASKLOGS_WORKERS": None,
    }
    server = Gunicorn(env, None, str(tmp_path / "sqlite.log"))
    try:
        assert server.output().count("Booting worker") == 1, "SQLite mode runs one process"
        wf = scenarios.workflow(kube, task_id)
        kube.write_log(wf.pod(), "main", "first\n")
        status, _, body = fetch(server, f"/api/v1/tasks/{task_id}/logs")
        assert status == 200 and body["logs"][0]["logs"] == "first\n"
        client = TailClient(server.url(f"/ws/tasks/{task_id}/logs", "ws"))
        frames = [client.frame()]
        for index in range(10):
            kube.write_log(wf.pod(), "main", f"line {index}\n")
        scenarios.finish(kube, wf)
        frames += client.rest()
        expected = "first\n" + "".join(f"line {i}\n" for i in range(10))
        assert client.close_code == 1000 and log_text(frames, wf.pod()) == expected
        kube.stop()
        status, _, body = fetch(server, f"/api/v1/tasks/{task_id}/logs")
        assert (status, body["source"], body["complete"], body["logs"][0]["logs"]) == (
            200,
            "database",
            True,
            expected,
        )
        assert "Traceback" not in server.output()
    finally:
        server.stop()
