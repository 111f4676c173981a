"""Several replicas on one database: one upstream stream per container, and a takeover when the
capturing worker is killed with SIGKILL."""

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from testkit import scenarios
from testkit.waiting import wait_for
from testkit.wsclient import TailClient, log_text

pytestmark = pytest.mark.e2e


def process_info(server) -> dict:
    """The worker's pid and what its engine does, from /readyz (whatever its readiness)."""
    try:
        with urllib.request.urlopen(server.url("/readyz?verbose=1"), timeout=5) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read())
        print("readyz", error.code, body)
    return body["process"]


def test_capturing_worker_killed_another_replica_takes_over_without_gap_or_duplicate(
    gunicorn, kube, task_id
):
    first, second = gunicorn(1, TASKLOGS_CAPTURE_LINGER=30), gunicorn(1, TASKLOGS_CAPTURE_LINGER=30)
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "before\n")
    viewer_one = TailClient(first.url(f"/ws/tasks/{task_id}/logs", "ws"))
    frames_one = [viewer_one.frame()]
    assert wait_for(lambda: process_info(first).get("leading") == 1)
    viewer_two = TailClient(second.url(f"/ws/tasks/{task_id}/logs", "ws"))
    frames_two = [viewer_two.frame()]
    assert process_info(second) | {"leading": 0} == process_info(second), (
        "the second replica follows"
    )
    assert kube.open_streams() == 1, "two replicas, one container: one upstream stream"
    reader = threading.Thread(target=lambda: frames_two.extend(viewer_two.rest()))
    reader.start()

    for index in range(20):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
        time.sleep(0.02)
    frames_one += viewer_one.frames_until(
        lambda f: f["type"] == "append" and "line 19" in f["data"]
    )
    os.kill(process_info(first)["pid"], signal.SIGKILL)
    for index in range(20, 60):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
        time.sleep(0.02)
    assert wait_for(lambda: process_info(second).get("leading") == 1), (
        "the survivor takes the capture over"
    )
    for index in range(60, 80):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
    scenarios.finish(kube, wf)
    reader.join(30)

    expected = "before\n" + "".join(f"line {i}\n" for i in range(80))
    assert viewer_two.close_code == 1000 and frames_two[-1]["type"] == "complete"
    assert log_text(frames_two, wf.pod()) == expected
    resumed = TailClient(
        second.url(f"/ws/tasks/{task_id}/logs?cursor={frames_one[-1]['cursor']}", "ws")
    ).rest()
    assert log_text(frames_one + resumed, wf.pod()) == expected, (
        "the killed worker's client resumes with its cursor"
    )
    with urllib.request.urlopen(
        second.url(f"/api/v1/tasks/{task_id}/logs"), timeout=10
    ) as response:
        body = json.loads(response.read())
    assert (body["complete"], body["logs"][0]["logs"]) == (True, expected)
