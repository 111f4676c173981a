"""The Kubernetes API answers 500, times out, resets connections; a pod is deleted mid-tail."""

import time

import pytest

from testkit import scenarios
from testkit.wsclient import TailClient, log_text

pytestmark = pytest.mark.faults


def saved_running_task(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "stored line\n")
    assert (
        client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["logs"][0]["logs"] == "stored line\n"
    )
    return wf


@pytest.mark.parametrize("fault", ["500", "timeout", "reset"])
def test_rest_serves_the_stored_copy_marked_degraded(client, kube, task_id, fault):
    saved_running_task(client, kube, task_id)
    if fault == "500":
        kube.fail("workflows", 500, times=None)
    elif fault == "timeout":
        kube.delay("workflows", 5, times=None)  # the adapter's read timeout is 3 s in the tests
    else:
        kube.reset("workflows", times=None)
    started = time.monotonic()
    response = client.get(f"/api/v1/tasks/{task_id}/logs")
    assert time.monotonic() - started < 15
    assert response.status_code == 200 and response.headers["X-Tasklogs-Degraded"] == "kubernetes"
    assert response.get_json()["logs"][0]["logs"] == "stored line\n"


def test_rest_without_stored_copy_says_503(client, kube, task_id):
    scenarios.workflow(kube, task_id)
    kube.fail("workflows", 503, times=None)
    response = client.get(f"/api/v1/tasks/{task_id}/logs")
    assert response.status_code == 503 and response.get_json()["error"] == "cluster_unavailable"


def test_tail_heals_after_errors_timeouts_and_resets_without_gap_or_duplicate(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    client = TailClient(
        live.ws_url(f"/ws/tasks/{task_id}/logs"), timeout=30
    )  # backoff after a run of faults
    frames = [client.frame()]
    for index in range(10):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
    kube.fail("pods/log", 500, times=3)
    kube.reset("pods/log", times=2)
    kube.fail("workflows", 500, times=3)
    kube.cut_streams(wf.pod())
    for index in range(10, 20):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
        time.sleep(0.05)
    kube.delay("pods/log", 7, times=1)  # longer than the stream idle timeout (5 s in the tests)
    kube.cut_streams(wf.pod())
    for index in range(20, 30):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
    frames += client.frames_until(lambda f: f["type"] == "append" and "line 29" in f["data"])
    scenarios.finish(kube, wf)
    frames += client.rest()
    assert log_text(frames, wf.pod()) == "".join(f"line {i}\n" for i in range(30))
    assert frames[-1]["type"] == "complete"


def test_pod_deleted_mid_tail_ends_its_log_with_everything_captured(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    client = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
    frames = [client.frame()]
    kube.write_log(wf.pod("a"), "main", "last words\n")
    frames += client.frames_until(lambda f: f["type"] == "append")
    kube.delete_pod(wf.pod("a"))
    frames += client.frames_until(lambda f: f["type"] == "gone")
    assert frames[-1]["pod"] == wf.pod("a") and "deleted" in frames[-1]["message"]
    kube.write_log(wf.pod("b"), "main", "still here\n")
    scenarios.finish(kube, wf, phase="Failed")
    frames += client.rest()
    assert log_text(frames, wf.pod("a")) == "last words\n"
    assert log_text(frames, wf.pod("b")) == "still here\n"
    assert frames[-1] == {"type": "complete", "phase": "Failed"}
