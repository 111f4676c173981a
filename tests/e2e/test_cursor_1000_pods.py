"""A workflow of 1000 pods resumes through gunicorn + gevent with a real WebSocket client: its cursor
fits in the request line (gunicorn's default of 4094 would answer 414)."""

import base64
import json
import random
import urllib.request
import zlib

import pytest

from testkit import scenarios
from testkit.wsclient import TailClient, log_text

pytestmark = pytest.mark.e2e

PODS = 1000


def test_a_task_of_1000_pods_resumes_from_its_cursor(gunicorn, kube, task_id):
    server = gunicorn(TASKLOGS_FRAME_CHARS="20000")
    steps = [f"s{index}" for index in range(PODS)]
    wf = scenarios.workflow(
        kube,
        task_id,
        steps,
        phase="Succeeded",
        pod_phase="Succeeded",
        container_state="terminated",
    )
    texts, sizes = {}, random.Random(7)  # irregular lengths: offsets that do not compress away
    for step in steps:
        texts[wf.pod(step)] = "".join(f"{step} {'x' * sizes.randint(0, 300)}\n" for _ in range(4))
        kube.write_log(wf.pod(step), "main", texts[wf.pod(step)])
    with urllib.request.urlopen(server.url(f"/api/v1/tasks/{task_id}/logs"), timeout=120) as r:
        assert json.loads(r.read())["complete"] is True  # captured and saved once

    first = TailClient(server.url(f"/ws/tasks/{task_id}/logs", "ws"), timeout=60)
    frames = first.rest()
    assert first.close_code == 1000 and frames[-1]["type"] == "complete"
    appends = [frame for frame in frames if frame["type"] == "append"]
    assert len(appends) > 4, "the backlog came as several appends, each with its cursor"
    middle = len(frames) // 2
    before, cursor = frames[:middle], frames[middle - 1]["cursor"]
    last = appends[-1]["cursor"]
    line = len(f"GET /ws/tasks/{task_id}/logs?cursor={last} HTTP/1.1")
    assert line < 8190 - 2000, line
    payload = json.dumps({"v": 1, "o": {f"{pod}/main": len(t) for pod, t in texts.items()}})
    old = base64.urlsafe_b64encode(zlib.compress(payload.encode(), 6))
    assert len(old) > 8190, "version 1 of the same cursor: beyond any request line"
    print(f"cursor of {PODS} pods: {len(last)} characters (version 1: {len(old)})")

    resumed = TailClient(server.url(f"/ws/tasks/{task_id}/logs?cursor={cursor}", "ws"), timeout=60)
    after = resumed.rest()
    assert resumed.close_code == 1000 and after[-1]["type"] == "complete"
    for pod, text in texts.items():
        assert log_text(after, pod, log_text(before, pod)) == text, pod

    at_end = TailClient(server.url(f"/ws/tasks/{task_id}/logs?cursor={last}", "ws"), timeout=60)
    rest = at_end.rest()
    assert at_end.close_code == 1000 and [f["type"] for f in rest] == ["snapshot", "complete"]
    assert all(entry["logs"] == "" for entry in rest[0]["logs"]), "nothing seen twice"
