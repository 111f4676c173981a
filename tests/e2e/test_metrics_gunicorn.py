"""Metrics and JSON logs as deployed: gunicorn with two gevent workers adding up their values in one
`/metrics`, a dead worker's live gauges dropped, and the collector's own `/metrics` port."""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from testkit import ROOT, scenarios
from testkit.gunicorn import service_env
from testkit.metrics import scrape_url
from testkit.processes import free_port
from testkit.waiting import wait_for
from testkit.wsclient import TailClient

pytestmark = pytest.mark.e2e
TOKEN = "e2e-Secret-token-4711"
REST_RULE = "/api/v1/tasks/<task_id>/logs"
WS_RULE = "/ws/tasks/<task_id>/logs"
FLASK = os.path.join(os.path.dirname(sys.executable), "flask")


def json_lines(output: str) -> list[dict]:
    """Every line the process wrote, each of which must be one JSON object."""
    lines = [line for line in output.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


def read(url: str, request_id: str) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Request-Id": request_id}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
        assert answer.headers["X-Request-Id"] == request_id
        answer.read()
        return answer.status


def worker_pids(master: int) -> list[int]:
    with open(f"/proc/{master}/task/{master}/children") as children:
        return [int(pid) for pid in children.read().split()]


def test_two_workers_add_up_log_json_with_request_ids_and_drop_dead_workers_gauges(
    gunicorn, kube, task_id
):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "hello\n")
    running = scenarios.workflow(kube, f"{task_id}-running")
    server = gunicorn(
        2,
        TASKLOGS_AUTH="token",
        TASKLOGS_API_TOKEN=TOKEN,
        TASKLOGS_LOG_FORMAT="json",
        TASKLOGS_ACCESS_LOG="-",
    )
    url = server.url(f"/api/v1/tasks/{task_id}/logs")
    reads = 24
    assert all(read(url, f"e2e-{index}") == 200 for index in range(reads))
    ended = TailClient(server.url(f"/ws/tasks/{task_id}/logs?access_token={TOKEN}", "ws"))
    assert ended.frame()["type"] == "snapshot"
    scenarios.finish(kube, wf)
    assert ended.rest()[-1]["type"] == "complete" and ended.close_code == 1000
    ended.close()
    upgraded = {"route": WS_RULE, "method": "GET", "status": 101}
    metrics_url = server.url("/metrics")
    assert wait_for(
        lambda: scrape_url(metrics_url).value("tasklogs_http_requests_total", **upgraded) == 1
    )
    tail = TailClient(server.url(f"/ws/tasks/{running.task_id}/logs?access_token={TOKEN}", "ws"))
    assert tail.frame()["type"] == "snapshot"
    scraped = scrape_url(metrics_url)
    assert scraped.value("tasklogs_tail_closes_total", code=1000) == 1
    assert scraped.value("tasklogs_http_request_duration_seconds_count", route=WS_RULE) == 0
    assert (
        scraped.value("tasklogs_http_requests_total", route=REST_RULE, method="GET", status=200)
        == reads
    )
    assert scraped.value("tasklogs_http_request_duration_seconds_count", route=REST_RULE) == reads
    assert scraped.value("tasklogs_tails_open") == 1
    assert scraped.value("tasklogs_capture_streams_open") >= 1
    assert not any(task_id in value for found in scraped.label_values().values() for value in found)

    lines = json_lines(server.output())
    access = [line for line in lines if line["logger"] == "tasklogs.access"]
    assert {line["request_id"] for line in access} >= {f"e2e-{i}" for i in range(reads)}
    tails = [line["access"] for line in access if line["access"]["status"] == 101]
    assert [(t["task"], t["close"]) for t in tails] == [(task_id, 1000)], "one line per tail"
    assert tails[0]["bytes"] > 0 and tails[0]["duration_ms"] >= 0
    assert len({line["process"] for line in access}) == 2, (
        "both workers answered: the sum is theirs"
    )
    served = [line for line in lines if line["logger"] == "gunicorn.access"]
    by_id = {line["request_id"]: line for line in served}
    assert {f"e2e-{i}" for i in range(reads)} <= set(by_id)
    assert (
        by_id["e2e-0"]["path"] == f"/api/v1/tasks/{task_id}/logs"
        and by_id["e2e-0"]["status"] == "200"
    )
    assert TOKEN not in server.output()

    for pid in worker_pids(server.process.pid):
        os.kill(pid, signal.SIGKILL)
    tail.close()
    assert wait_for(lambda: len(worker_pids(server.process.pid)) == 2, 30)
    server.wait_ready()
    after = scrape_url(server.url("/metrics"))
    assert after.value("tasklogs_tails_open") == 0, "a killed worker's tails are no longer open"
    assert after.value("tasklogs_capture_streams_open") == 0
    assert (
        after.value("tasklogs_http_requests_total", route=REST_RULE, method="GET", status=200)
        == reads
    ), "what dead workers counted still counts"


def start_collector(env: dict, log_path: str) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(
        [FLASK, "--app", "wsgi", "collect"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )


def test_the_collector_serves_its_own_metrics_and_logs_json(
    database_url, collector_kubeconfig, kube, task_id, tmp_path
):
    port = free_port()
    log_path = str(tmp_path / "collector.log")
    env = service_env(
        database_url, collector_kubeconfig, TASKLOGS_METRICS_PORT=port, TASKLOGS_LOG_FORMAT="json"
    )
    wf = scenarios.workflow(kube, task_id)
    collector = start_collector(env, log_path)
    try:
        assert wait_for(lambda: kube.open_streams() == 1, 20), open(log_path).read()
        text = "".join(f"line {index} caf\u00e9\n" for index in range(20))
        kube.write_log(wf.pod(), "main", text)
        url = f"http://127.0.0.1:{port}/metrics"
        assert wait_for(
            lambda: scrape_url(url).value("tasklogs_stored_bytes_total") >= len(text.encode()), 20
        )
        scraped = scrape_url(url)
        assert scraped.value("tasklogs_capture_streams_open") == 1
        assert scraped.value("tasklogs_capture_lag_seconds_count") >= 1
        assert scraped.value("tasklogs_journal_commit_seconds_count") >= 1
        assert scraped.total("tasklogs_kube_requests_total", verb="watch", code=200) >= 2
        assert scraped.total("tasklogs_kube_requests_total", verb="list", code=200) >= 2
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(15) == 0
    finally:
        if collector.poll() is None:
            collector.kill()
    lines = json_lines(open(log_path).read())
    assert any("collector metrics on" in line["message"] for line in lines)
    assert "postgresql://" not in open(log_path).read()


def test_a_collector_whose_metrics_port_is_taken_stops_with_one_line(
    database_url, collector_kubeconfig, tmp_path
):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = service_env(database_url, collector_kubeconfig, TASKLOGS_METRICS_PORT=port)
        log_path = str(tmp_path / "collector.log")
        collector = start_collector(env, log_path)
        assert collector.wait(30) != 0
    output = open(log_path).read()
    assert f"TASKLOGS_METRICS_PORT={port}: cannot serve metrics there" in output
    assert "Traceback" not in output
