"""WS /ws/tasks/{task_id}/logs on a real server with a real WebSocket client."""

import json
import select
import time

from testkit import scenarios
from testkit.names import ref
from testkit.waiting import wait_for
from testkit.wsclient import TailClient, TailConnection, log_text


def tail(live, task_id, query=""):
    return TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs{query}"))


def test_snapshot_appends_phases_complete_and_normal_close(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "before\n")
    client = tail(live, task_id)
    snapshot = client.frame()
    assert snapshot["type"] == "snapshot" and snapshot["task_id"] == task_id
    assert (snapshot["phase"], snapshot["complete"], snapshot["source"]) == (
        "Running",
        False,
        "kubernetes",
    )
    assert snapshot["logs"][0]["logs"] == "before\n" and snapshot["cursor"]
    kube.write_log(wf.pod(), "main", "after 1\n")
    appended = client.frames_until(lambda f: f["type"] == "append")
    assert (
        appended[-1]["data"] == "after 1\n"
        and appended[-1]["pod"] == wf.pod()
        and appended[-1]["cursor"]
    )
    kube.write_log(wf.pod(), "main", "after 2\n")
    scenarios.finish(kube, wf)
    rest = client.rest()
    assert client.close_code == 1000
    assert rest[-1] == {"type": "complete", "phase": "Succeeded"}
    assert {"type": "phase", "phase": "Succeeded", "node": None} in rest
    assert {"type": "phase", "phase": "Succeeded", "node": wf.nodes["a"]} in rest
    assert log_text([snapshot] + appended + rest, wf.pod()) == "before\nafter 1\nafter 2\n"


def test_resume_with_cursor_gets_exactly_what_was_missed(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "one\n")
    first = tail(live, task_id)
    snapshot = first.frame()
    first.close()
    kube.write_log(wf.pod(), "main", "two\n")
    second = tail(live, task_id, f"?cursor={snapshot['cursor']}")
    frames = [second.frame()]
    assert frames[0]["type"] == "snapshot" and frames[0]["logs"][0]["offset"] == 4
    if frames[0]["logs"][0]["logs"] != "two\n":
        frames += second.frames_until(lambda f: f["type"] == "append")
    assert log_text(frames, wf.pod(), base="one\n") == "one\ntwo\n"
    second.close()


def test_finished_task_sends_snapshot_and_complete_at_once(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "done\n")
    scenarios.finish(kube, wf)
    client = tail(live, task_id)
    frames = client.rest()
    assert [f["type"] for f in frames] == ["snapshot", "complete"] and client.close_code == 1000


def test_errors_are_frames_then_a_close(live, kube, task_id):
    client = tail(live, "Not_Valid")
    frame = client.frame()
    assert (
        frame["type"] == "error" and frame["status"] == 400 and frame["error"] == "invalid_task_id"
    )
    assert client.frame() is None and client.close_code == 1008
    client = tail(live, task_id)
    frame = client.frame()
    assert (frame["type"], frame["status"]) == ("error", 404)
    client = tail(live, task_id, "?cursor=garbage")
    assert client.frame()["status"] == 400


def test_client_disconnecting_mid_tail_releases_its_viewer_and_then_the_stream(
    app, live, kube, task_id
):
    scenarios.workflow(kube, task_id)
    client = tail(live, task_id)
    client.frame()
    assert wait_for(lambda: kube.open_streams() == 1)
    feed = app.extensions["tasklogs"].engine.driver(ref(task_id)).feed
    client.close()
    assert wait_for(lambda: not feed.viewers, timeout=1.0), "the viewer must leave at once"
    assert wait_for(lambda: kube.open_streams() == 0, timeout=3.0), (
        "the capture must stop once nobody watches"
    )
    kube.reset_requests()
    time.sleep(0.5)
    assert kube.count() == 0, "a task nobody watches must not be read"


def test_long_backlog_comes_in_bounded_frames_after_the_snapshot(serve, kube, task_id):
    _, live = serve(TASKLOGS_FRAME_CHARS=1000)
    wf = scenarios.workflow(kube, task_id, ["a", "b", "c"])
    for step in ("a", "b", "c"):
        kube.write_log(wf.pod(step), "main", "".join(f"{step} line {i:04d}\n" for i in range(300)))
    client = tail(live, task_id)
    frames = [client.frame()]
    snapshot_text = sum(len(entry["logs"]) for entry in frames[0]["logs"])
    assert snapshot_text <= 1000 and len(frames[0]["logs"]) == 3
    scenarios.finish(kube, wf)
    frames += client.rest()
    assert all(len(f.get("data", "")) <= 1000 for f in frames)
    for step in ("a", "b", "c"):
        assert log_text(frames, wf.pod(step)) == "".join(
            f"{step} line {i:04d}\n" for i in range(300)
        )


def test_the_bench_client_rebuilds_the_log_and_sees_the_normal_close(live, kube, task_id):
    """testkit's non-blocking TailConnection (the bench's 1000 clients) against the real server."""
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "one\n")
    connection = TailConnection("127.0.0.1", live.port, f"/ws/tasks/{task_id}/logs")
    select.select([], [connection], [], 5)
    connection.send_request()
    deadline, finished = time.monotonic() + 10, False
    while (
        time.monotonic() < deadline
        and select.select([connection], [], [], 1)[0]
        and connection.receive()
    ):
        if connection.frames and not finished:  # the snapshot is in
            kube.write_log(wf.pod(), "main", "two\n")
            scenarios.finish(kube, wf)
            finished = True
    connection.close()
    frames = [json.loads(payload) for _, payload in connection.frames]
    assert connection.error is None and connection.close_code == 1000
    assert frames[0]["type"] == "snapshot" and frames[-1]["type"] == "complete"
    assert log_text(frames, wf.pod()) == "one\ntwo\n"
