"""Metrics and request ids through the app on a live server: PostgreSQL, the fake API server, real
HTTP and WebSocket clients. Values are process-wide, so each test reads what its own actions added."""

import io
import json
import logging
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from tasklogs import logformat
from tasklogs.extensions import db
from tasklogs.store import repository
from tasklogs.store.models import Task
from testkit import scenarios
from testkit.metrics import Scrape, scrape_url
from testkit.names import ref
from testkit.waiting import wait_for
from testkit.wsclient import TailClient

REST_RULE = "/api/v1/namespaces/<namespace>/tasks/<task_id>/logs"
WS_RULE = "/ws/tasks/<task_id>/logs"


def get(url: str, headers: dict | None = None):
    """(status, headers, body) of a GET, errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def scrape(live) -> Scrape:
    return scrape_url(live.http_url("/metrics"))


def grew(after: Scrape, before: Scrape, name: str, **labels) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_a_read_and_a_tail_move_the_request_tail_capture_kube_and_journal_metrics(
    app, live, kube, task_id
):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "first line\n")
    before = scrape(live)
    status, _, _ = get(live.http_url(f"/api/v1/namespaces/argo/tasks/{task_id}/logs"))
    assert status == 200
    assert get(live.http_url(f"/api/v1/tasks/{task_id}-missing/logs"))[0] == 404
    assert get(live.http_url("/no/such/route"))[0] == 404
    tail = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
    assert tail.frame()["type"] == "snapshot"
    during = scrape(live)
    assert grew(during, before, "tasklogs_tails_open") == 1
    assert grew(during, before, "tasklogs_capture_streams_open") >= 1
    kube.write_log(wf.pod(), "main", "second line \u00e9\n")
    tail.frames_until(lambda frame: frame["type"] == "append")
    scenarios.finish(kube, wf)
    tail.rest()
    assert tail.close_code == 1000
    tail.close()
    # werkzeug's server ends a WebSocket's request only some time after the close (its request count
    # is checked under gunicorn, tests/e2e/test_metrics_gunicorn.py); the tail's own end is at once
    assert wait_for(
        lambda: (
            grew(scrape(live), before, "tasklogs_tail_closes_total", code=1000) == 1
            and scrape(live).value("tasklogs_tails_open") == before.value("tasklogs_tails_open")
        )
    )
    after = scrape(live)

    ok = {"route": REST_RULE, "method": "GET", "status": 200}
    assert grew(after, before, "tasklogs_http_requests_total", **ok) == 1
    assert grew(after, before, "tasklogs_http_request_duration_seconds_count", route=REST_RULE) == 1
    missing = {"route": "/api/v1/tasks/<task_id>/logs", "method": "GET", "status": 404}
    assert grew(after, before, "tasklogs_http_requests_total", **missing) == 1
    unmatched = {"route": "unmatched", "method": "GET", "status": 404}
    assert grew(after, before, "tasklogs_http_requests_total", **unmatched) == 1
    assert grew(after, before, "tasklogs_http_request_duration_seconds_count", route=WS_RULE) == 0
    assert grew(after, before, "tasklogs_capture_streams_open") == 0
    logs = {"verb": "get", "resource": "pods/log", "code": 200}
    assert grew(after, before, "tasklogs_kube_requests_total", **logs) >= 2
    gone = {"verb": "get", "resource": "workflows.argoproj.io", "code": 404}
    assert grew(after, before, "tasklogs_kube_requests_total", **gone) == 1
    # the REST read stored the first line itself; the tail's capture committed the second
    assert grew(after, before, "tasklogs_stored_bytes_total") >= len(
        "second line \u00e9\n".encode()
    )
    assert grew(after, before, "tasklogs_journal_commit_seconds_count") >= 1
    assert grew(after, before, "tasklogs_capture_lag_seconds_count") >= 1
    assert_bounded_labels(after, app, task_id)


def assert_bounded_labels(scraped: Scrape, app, task_id: str) -> None:
    """No label names a task; routes are the app's URL rules; the other labels are closed sets."""
    values = scraped.label_values()
    assert not any(task_id in value for found in values.values() for value in found)
    rules = {rule.rule for rule in app.url_map.iter_rules()} | {"unmatched"}
    assert values["route"] <= rules
    assert values["method"] <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert all(re.fullmatch(r"\d{3}|none", status) for status in values["status"])
    assert all(re.fullmatch(r"10\d\d|4008|other", code) for code in scraped_codes(scraped))
    assert values["verb"] <= {"get", "list", "watch", "create"}
    assert values["resource"] <= {
        "pods",
        "pods/log",
        "configmaps",  # an archived log's artifact repository
        "secrets",  # and its credentials
        "workflows.argoproj.io",
        "tokenreviews.authentication.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
    }


def scraped_codes(scraped: Scrape) -> set[str]:
    return {
        value
        for (name, labels) in scraped.samples
        if name == "tasklogs_tail_closes_total"
        for key, value in labels
        if key == "code"
    }


class Captured:
    """Every log record of the process, formatted as the JSON log format writes it."""

    def __init__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logformat.JsonFormatter())
        self.handler.setLevel(logging.INFO)

    def __enter__(self):
        root = logging.getLogger()
        self.level = root.level
        root.addHandler(self.handler)
        root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        logging.getLogger().removeHandler(self.handler)
        logging.getLogger().setLevel(self.level)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


def test_a_given_request_id_comes_back_and_a_malformed_one_is_replaced(live, kube, task_id):
    scenarios.workflow(kube, task_id)
    url = live.http_url(f"/api/v1/tasks/{task_id}/logs")
    with Captured() as captured:
        _, given, _ = get(url, {"X-Request-Id": "client-7f3a"})
        _, malformed, _ = get(url, {"X-Request-Id": "bad id\twith tab"})
        _, made, _ = get(url)
        _, refused, _ = get(live.http_url("/api/v1/tasks/Not_A_Name/logs"))
        # each line is written once its response is over, which the client may see first
        ours = (task_id, "Not_A_Name")
        assert wait_for(lambda: len(access_lines(captured, ours)) == 4)
    assert given["X-Request-Id"] == "client-7f3a"
    assert re.fullmatch(r"[0-9a-f]{32}", malformed["X-Request-Id"])
    assert re.fullmatch(r"[0-9a-f]{32}", made["X-Request-Id"])
    assert made["X-Request-Id"] != malformed["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", refused["X-Request-Id"]), "error answers carry one too"
    access = {line["request_id"]: line for line in access_lines(captured, ours)}
    answered = [given, malformed, made, refused]
    assert set(access) == {headers["X-Request-Id"] for headers in answered}
    assert all(line["access"]["request_id"] == rid for rid, line in access.items())
    line = access[refused["X-Request-Id"]]
    assert line["access"]["status"] == 400
    assert line["message"].endswith(f"request_id={refused['X-Request-Id']}")


def access_lines(captured: "Captured", tasks: tuple[str, ...] = ()) -> list[dict]:
    """The access lines captured (of requests for `tasks` only, when named: a tail another test left
    open may end, and leave its line, meanwhile)."""
    return [
        line
        for line in captured.lines()
        if line["logger"] == "tasklogs.access" and (not tasks or line["access"]["task"] in tasks)
    ]


def test_the_websocket_upgrade_answers_the_request_id(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "x\n")
    tail = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"), header=["X-Request-Id: ws-given-1"])
    try:
        assert tail.ws.getheaders()["x-request-id"] == "ws-given-1"
        assert tail.frame()["type"] == "snapshot"
    finally:
        tail.close()
    made = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
    try:
        assert re.fullmatch(r"[0-9a-f]{32}", made.ws.getheaders()["x-request-id"])
    finally:
        made.close()


def test_degraded_answers_are_counted_by_the_missing_store_and_logged_with_the_request_id(
    proxied_app, db_proxy, kube, task_id
):
    from testkit.apps import LiveServer

    live = LiveServer(proxied_app)
    try:
        wf = scenarios.workflow(kube, task_id)
        kube.write_log(wf.pod(), "main", "kept\n")
        url = live.http_url(f"/api/v1/tasks/{task_id}/logs")
        assert get(url)[0] == 200  # stored, not complete
        before = scrape(live)
        db_proxy.stop()
        with Captured() as captured:
            status, headers, _ = get(url, {"X-Request-Id": "degraded-db-1"})
        assert (status, headers["X-Tasklogs-Degraded"]) == (200, "database")
        db_proxy.start()
        kube.stop()
        status, headers, _ = get(url)
        assert (status, headers["X-Tasklogs-Degraded"]) == (200, "kubernetes")
        after = scrape(live)
    finally:
        live.close()
    assert grew(after, before, "tasklogs_degraded_responses_total", store="database") == 1
    assert grew(after, before, "tasklogs_degraded_responses_total", store="kubernetes") == 1
    assert after.total("tasklogs_kube_requests_total", code="error") > before.total(
        "tasklogs_kube_requests_total", code="error"
    ), "a request that got no answer is counted as an error"
    warned = [line for line in captured.lines() if "database unavailable" in line["message"]]
    assert warned and {line["request_id"] for line in warned} == {"degraded-db-1"}
    assert "postgresql" not in captured.stream.getvalue()


def test_prune_counts_the_tasks_it_removed(database_url, task_id):
    from testkit.apps import dispose, make_app

    app = make_app(database_url)
    try:
        with app.app_context():
            for index in range(3):
                repository.save_task(
                    db.session, ref(f"{task_id}-{index}"), "Succeeded", complete=True
                )
            old = datetime.now(UTC) - timedelta(days=400)
            db.session.execute(
                update(Task).where(Task.task_id.like(f"{task_id}-%")).values(updated_at=old)
            )
            db.session.commit()
        before = Scrape(app.test_client().get("/metrics").get_data(as_text=True))
        result = app.test_cli_runner().invoke(args=["prune", "--older-than", "365d"])
        assert result.exit_code == 0, result.output
        removed = int(re.search(r"removed the logs of (\d+) task", result.output).group(1))
        after = Scrape(app.test_client().get("/metrics").get_data(as_text=True))
    finally:
        dispose(app)
    assert removed >= 3
    assert grew(after, before, "tasklogs_pruned_tasks_total") == removed
