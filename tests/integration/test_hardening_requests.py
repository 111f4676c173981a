"""Kubernetes requests that concurrent and repeated REST GETs cost: one refresh of a task at a time
(in a process and across replicas), and a short negative cache for ids the cluster does not know."""

import threading
import time
import uuid

from testkit import scenarios
from testkit.waiting import wait_for

FIVE_MIB = 5 << 20


def get(app, task_id):
    response = app.test_client().get(f"/api/v1/tasks/{task_id}/logs")
    return response.status_code, response.get_json()


def concurrently(calls) -> list:
    """Run the calls at once on threads; return their results in order."""
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index, call):
        start.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def big_log(kube, task_id) -> str:
    wf = scenarios.workflow(kube, task_id)
    line = "x" * 1023 + "\n"
    kube.write_log(wf.pod(), "main", line * (FIVE_MIB // len(line)))
    kube.delay("pods/log", 0.5)  # the first read takes a while: the others come meanwhile
    kube.reset_requests()
    return wf.pod()


def test_ten_concurrent_gets_of_one_log_share_one_kubernetes_read(app, kube, task_id):
    big_log(kube, task_id)
    results = concurrently([lambda: get(app, task_id)] * 10)
    assert [status for status, _ in results] == [200] * 10
    assert {len(body["logs"][0]["logs"]) for _, body in results} == {FIVE_MIB}
    assert kube.count(resource="pods/log") == 1, "one pods/log read for ten requests"


def test_replicas_share_one_refresh_through_the_advisory_lock(serve, kube, task_id):
    replicas = [serve()[0], serve()[0]]
    big_log(kube, task_id)
    results = concurrently([lambda app=app: get(app, task_id) for app in replicas * 4])
    assert [status for status, _ in results] == [200] * 8
    assert {len(body["logs"][0]["logs"]) for _, body in results} == {FIVE_MIB}
    assert kube.count(resource="pods/log") == 1, "one pods/log read for two replicas"


def test_a_failed_refresh_is_not_shared(app, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "text\n")
    kube.fail("workflows", status=500, times=1)
    kube.delay("workflows", 0.3, times=1)
    results = concurrently([lambda: get(app, task_id)] * 2)
    assert sorted(status for status, _ in results) == [200, 503], (
        "the waiter refreshes by itself when the refresh it waited for stored nothing"
    )


def test_an_unknown_task_costs_one_request_then_none(serve, kube):
    app, _ = serve(TASKLOGS_NOT_FOUND_TTL="60")  # the loops take longer than the default 5 s
    ids = [f"nope-{uuid.uuid4().hex[:8]}" for _ in range(100)]
    kube.reset_requests()
    for task_id in ids:
        status, body = get(app, task_id)
        assert status == 404 and body["error"] == "task_not_found"
    assert kube.count() == 100, "one Workflow GET per unknown id, no pod list"
    kube.reset_requests()
    for task_id in ids:
        assert get(app, task_id)[0] == 404
    assert kube.count() == 0, "the same unknown ids again within the TTL: no request"
    assert get(app, ids[0])[1]["message"].endswith("; asked a moment ago)")


def test_a_task_created_after_its_negative_entry_is_found_once_it_expires(serve, kube, task_id):
    ttl = 2.0  # long enough that creating the task and asking again fit inside it on a busy CI machine
    app, _ = serve(TASKLOGS_NOT_FOUND_TTL=str(ttl))
    asked = time.monotonic()  # the negative entry is stamped after this: it lives past asked + ttl
    assert get(app, task_id)[0] == 404
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "late\n")
    status = get(app, task_id)[0]
    assert time.monotonic() - asked < ttl, "the machine was too slow to ask again within the TTL"
    assert status == 404, "still within the TTL"
    assert wait_for(lambda: get(app, task_id)[0] == 200, ttl + 3)
    assert time.monotonic() - asked < ttl + 1.5, "found soon after the entry expired"
    assert get(app, task_id)[1]["logs"][0]["logs"] == "late\n"


def test_a_zero_ttl_asks_every_time(serve, kube, task_id):
    app, _ = serve(TASKLOGS_NOT_FOUND_TTL="0")
    kube.reset_requests()
    for _ in range(3):
        assert get(app, task_id)[0] == 404
    assert kube.count() == 3


def test_a_bad_ttl_stops_the_start_naming_the_variable(database_url, kube_adapter):
    import pytest

    from tasklogs.config import ConfigError
    from testkit.apps import make_app

    with pytest.raises(ConfigError, match="TASKLOGS_NOT_FOUND_TTL"):
        make_app(database_url, kube_adapter, TASKLOGS_NOT_FOUND_TTL="-1")
    with pytest.raises(ConfigError, match="TASKLOGS_MAX_WORKFLOW_MB"):
        make_app(database_url, kube_adapter, TASKLOGS_MAX_WORKFLOW_MB="0")
