"""Errors a person can act on: an unreachable cluster named with its address and the cause, a missing
kubeconfig naming the paths tried, no Retry-After on a misconfiguration, one start-up line per store,
commands that fail with one line, and `--help` that touches nothing."""

import logging
import os
import socket
import subprocess
import sys
import threading

import pytest

from tasklogs.errors import ClusterMisconfigured, ClusterUnavailable
from tasklogs.kube import Kube, load_api_client
from testkit import ROOT
from testkit.apps import dispose, make_app
from testkit.databases import with_password
from testkit.processes import free_port

PASSWORD = "s3cret-pass"


def kubeconfig_for(tmp_path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: argo}}]\n"
        "current-context: x\n"
    )
    return str(path)


def adapter(kubeconfig: str) -> Kube:
    return Kube(load_api_client(kubeconfig), "argo", connect_timeout=2, read_timeout=2)


@pytest.fixture
def not_tls():
    """A port that answers plain HTTP to a TLS client."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            connection.close()

    threading.Thread(target=answer, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_refused_connection_names_the_server_and_is_worth_a_retry(
    database_url, tmp_path, task_id
):
    server = f"https://127.0.0.1:{free_port()}"
    kube = adapter(kubeconfig_for(tmp_path, server))
    with pytest.raises(ClusterUnavailable) as caught:
        kube.get_workflow("wf")
    assert not isinstance(caught.value, ClusterMisconfigured)
    assert caught.value.message == (
        f"Kubernetes API at {server} unreachable (get workflows.argoproj.io):"
        " connection refused (nothing listens there)"
    )
    app = make_app(database_url, kube)
    try:
        response = app.test_client().get(f"/api/v1/tasks/{task_id}/logs")
    finally:
        dispose(app)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.get_json()["error"] == "cluster_unavailable"
    assert server in response.get_json()["message"]


def test_a_name_that_does_not_resolve_is_a_misconfiguration(database_url, tmp_path, task_id):
    server = "https://tasklogs-no-such-host.invalid:6443"
    kube = adapter(kubeconfig_for(tmp_path, server))
    app = make_app(database_url, kube)
    try:
        response = app.test_client().get(f"/api/v1/tasks/{task_id}/logs")
    finally:
        dispose(app)
    body = response.get_json()
    assert response.status_code == 503 and "Retry-After" not in response.headers
    assert body["error"] == "cluster_misconfigured"
    assert body["message"] == (
        f"Kubernetes API at {server} unreachable (get workflows.argoproj.io):"
        " DNS lookup failed (the server name does not resolve)"
    )


def test_tls_refused_is_a_misconfiguration(tmp_path, not_tls):
    server = f"https://127.0.0.1:{not_tls}"
    with pytest.raises(ClusterMisconfigured, match=r"TLS handshake failed \(") as caught:
        adapter(kubeconfig_for(tmp_path, server)).get_workflow("wf")
    assert server in caught.value.message and caught.value.retry_after is None


def test_a_missing_kubeconfig_names_every_path_tried(monkeypatch, tmp_path):
    first, second = str(tmp_path / "one"), str(tmp_path / "two")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([first, second]))
    with pytest.raises(ClusterMisconfigured) as caught:
        load_api_client()
    message = caught.value.message
    assert f"tried {first}, {second} (KUBECONFIG)" in message
    assert "KUBERNETES_SERVICE_HOST unset" in message
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ClusterMisconfigured, match=r"tried .*/\.kube/config \(the default path\)"):
        load_api_client()


def test_start_up_says_what_each_store_is_without_secrets(database_url, kube_adapter, caplog):
    url = with_password(database_url, PASSWORD)
    with caplog.at_level(logging.INFO, logger="tasklogs"):
        app = make_app(url, kube_adapter, TASKLOGS_AUTO_MIGRATE=False)
        dispose(app)
    lines = [r.getMessage() for r in caplog.records if r.name == "tasklogs"]
    (database,) = [line for line in lines if line.startswith("database: ")]
    (kubernetes,) = [line for line in lines if line.startswith("kubernetes: ")]
    assert database.startswith("database: PostgreSQL 127.0.0.1:") and " as " in database
    assert kubernetes == (
        f"kubernetes: API server {kube_adapter.api_client.configuration.host}, namespaces argo"
    )
    assert PASSWORD not in caplog.text


def flask_command(tmp_path, *arguments, **env):
    """`flask --app wsgi ...` in a fresh folder whose package link puts Flask's instance folder there."""
    (tmp_path / "packages").mkdir(exist_ok=True)
    link = tmp_path / "packages" / "tasklogs"
    if not link.exists():
        link.symlink_to(os.path.join(ROOT, "tasklogs"))
    (tmp_path / "wsgi.py").write_text(open(os.path.join(ROOT, "wsgi.py")).read())
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "KUBECONFIG", "TASKLOGS_AUTH")
    }
    environment.update(PYTHONPATH=str(tmp_path / "packages"), **env)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *arguments],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("arguments", [["--help"], ["collect", "--help"], ["prune", "--help"]])
def test_help_touches_no_database_and_creates_no_file(tmp_path, arguments):
    done = flask_command(tmp_path, *arguments)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "packages" / "instance").exists(), "no SQLite file, no instance folder"
    assert done.stderr == "", "nothing logged"
    dead = flask_command(
        tmp_path, *arguments, DATABASE_URL=f"postgresql://u:p@127.0.0.1:{free_port()}/db"
    )
    assert dead.returncode == 0 and dead.stderr == ""


def test_collect_help_lists_the_environment_it_needs(tmp_path):
    done = flask_command(tmp_path, "collect", "--help")
    for variable in ("DATABASE_URL", "KUBECONFIG", "TASKLOGS_NAMESPACES", "TASKLOGS_CONTAINERS"):
        assert variable in done.stdout


def error_lines(done) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("Error: ")]


def test_collect_with_the_database_down_stops_with_one_line(tmp_path, kubeconfig):
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/tasklogs"
    done = flask_command(tmp_path, "collect", DATABASE_URL=url, KUBECONFIG=kubeconfig)
    assert done.returncode == 1
    assert error_lines(done) == ["Error: database unavailable: OperationalError"]
    assert "Traceback" not in done.stderr and PASSWORD not in done.stderr


def test_collect_without_a_cluster_stops_with_one_line(tmp_path, database_url):
    kubeconfig = kubeconfig_for(tmp_path, f"https://127.0.0.1:{free_port()}")
    done = flask_command(tmp_path, "collect", DATABASE_URL=database_url, KUBECONFIG=kubeconfig)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = error_lines(done)
    assert "unreachable (list workflows.argoproj.io): connection refused" in line


def test_prune_with_the_database_down_fails_with_one_line(tmp_path):
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/tasklogs"
    done = flask_command(tmp_path, "prune", "--older-than", "30d", DATABASE_URL=url)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert error_lines(done) == ["Error: database unavailable: OperationalError"]
    assert PASSWORD not in done.stderr
