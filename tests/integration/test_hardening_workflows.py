"""Workflow bombs and malformed statuses through the real client and the fake API server: a 502
`workflow_unreadable` naming the task and what is wrong, nothing stored, and the collector carries on."""

import base64
import gzip

import pytest

from tasklogs.store import repository
from testkit import scenarios
from testkit.names import ref
from testkit.waiting import wait_for

from .test_collector import collectors, rest  # noqa: F401 - the collectors fixture


def get(client, task_id):
    response = client.get(f"/api/v1/tasks/{task_id}/logs")
    return response.status_code, response.get_json()


def bomb(megabytes: int) -> str:
    body = b'{"n":{"type":"Pod","name":"x","x":"' + b"a" * (megabytes << 20) + b'"}}'
    return base64.b64encode(gzip.compress(body, 9)).decode()


def stored_task(app, task_id):
    from tasklogs.extensions import db

    with app.app_context():
        return repository.get_task(db.session, ref(task_id))


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda s: s.update(nodes="garbage"), "status.nodes is a string"),
        (
            lambda s: next(n for n in s["nodes"].values() if n["type"] == "Pod").update(name=["a"]),
            ".name is a list, not a string",
        ),
        (lambda s: s.update(phase={"x": 1}), "status.phase is an object"),
        (
            lambda s: s.update(nodes=None, compressedNodes=bomb(80)),
            "inflates to more than 64 MB (TASKLOGS_MAX_WORKFLOW_MB)",
        ),
    ],
)
def test_an_unreadable_workflow_answers_502_and_stores_nothing(
    app, client, kube, task_id, change, words
):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "text\n")
    kube.update_workflow(task_id, lambda body: change(body["status"]))
    status, body = get(client, task_id)
    assert status == 502 and body["error"] == "workflow_unreadable"
    assert repr(task_id) in body["message"] and words in body["message"], body["message"]
    assert stored_task(app, task_id) is None, "bad input changes nothing"


def test_the_limit_is_a_setting(serve, kube, task_id):
    app, _ = serve(TASKLOGS_MAX_WORKFLOW_MB="1")
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "fits\n")
    kube.update_workflow(
        task_id, lambda body: body["status"].update(nodes=None, compressedNodes=bomb(2))
    )
    status, body = get(app.test_client(), task_id)
    assert status == 502 and "more than 1 MB" in body["message"]


def test_a_fixed_workflow_is_served_again(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "text\n")
    kept = {}
    kube.update_workflow(
        task_id, lambda body: kept.update(body["status"]) or body["status"].update(nodes="x")
    )
    assert get(client, task_id)[0] == 502
    kube.update_workflow(task_id, lambda body: body["status"].update(nodes=kept["nodes"]))
    status, body = get(client, task_id)
    assert status == 200 and body["logs"][0]["logs"] == "text\n"


def test_the_collector_carries_on_beside_an_unreadable_workflow(collectors, kube, task_id):  # noqa: F811
    running = collectors()
    bad, good = f"{task_id}-bad", f"{task_id}-good"
    bad_wf = scenarios.workflow(kube, bad)
    kept = {}
    kube.update_workflow(
        bad, lambda body: kept.update(body["status"]) or body["status"].update(nodes="x")
    )
    good_wf = scenarios.workflow(kube, good)
    kube.write_log(good_wf.pod(), "main", "good\n")
    kube.write_log(bad_wf.pod(), "main", "bad, then mended\n")
    scenarios.finish(kube, good_wf)
    assert wait_for(lambda: rest(running.app, good).get("complete"), 10)
    engine = running.app.extensions["tasklogs"].engine
    (driver,) = [d for d in engine.drivers() if d.task == ref(bad)]
    assert driver.error is not None and driver.error.code == "workflow_unreadable"
    kube.update_workflow(bad, lambda body: body["status"].update(nodes=kept["nodes"]))
    scenarios.finish(kube, bad_wf)
    assert wait_for(lambda: rest(running.app, bad).get("complete"), 10)
    assert rest(running.app, bad)["logs"][0]["logs"] == "bad, then mended\n"
