"""The live-tail engine: shared captures, the append-only journal, exactly-once resume, slow clients."""

import socket
import threading
import time

from sqlalchemy import select

from tasklogs.extensions import db
from tasklogs.store.models import LogPage, TaskLog
from testkit import scenarios
from testkit.names import ref
from testkit.waiting import wait_for
from testkit.wsclient import TailClient, log_text


def tail(live, task_id, query=""):
    return TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs{query}"))


def collect(client, frames):
    frames.extend(client.rest())


def stored(app, task_id):
    """{pod: (number of pages, text)} as stored."""
    with app.app_context():
        rows = db.session.execute(
            select(TaskLog.id, TaskLog.pod_name).where(TaskLog.task_id == task_id)
        ).all()
        pages = {
            row.pod_name: db.session.execute(
                select(LogPage.text).where(LogPage.log_id == row.id).order_by(LogPage.start_offset)
            )
            .scalars()
            .all()
            for row in rows
        }
        return {pod: (len(texts), "".join(texts)) for pod, texts in pages.items()}


def test_viewers_share_one_stream_per_container(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    kube.write_log(wf.pod("a"), "main", "first\n")
    clients = [tail(live, task_id) for _ in range(20)]
    snapshots = [[client.frame()] for client in clients]
    assert wait_for(lambda: kube.open_streams() == 2)
    threads = [
        threading.Thread(target=collect, args=(client, frames))
        for client, frames in zip(clients, snapshots, strict=True)
    ]
    for thread in threads:
        thread.start()
    for index in range(50):
        kube.write_log(wf.pod("a"), "main", f"a{index}\n")
        kube.write_log(wf.pod("b"), "main", f"b{index}\n")
    assert kube.open_streams() == 2, "twenty viewers, two containers: two upstream streams"
    scenarios.finish(kube, wf)
    for thread in threads:
        thread.join(20)
    expected_a = "first\n" + "".join(f"a{i}\n" for i in range(50))
    expected_b = "".join(f"b{i}\n" for i in range(50))
    for client, frames in zip(clients, snapshots, strict=True):
        assert client.close_code == 1000 and frames[-1]["type"] == "complete"
        assert log_text(frames, wf.pod("a")) == expected_a
        assert log_text(frames, wf.pod("b")) == expected_b
    per_container = kube.count(resource="pods/log") / 2
    assert per_container <= 4, (
        f"log requests must not grow with viewers ({per_container} per container)"
    )


def test_phase_changes_come_from_one_poll_per_workflow(app, live, kube, task_id):
    scenarios.workflow(kube, task_id, phase="Pending")
    clients = [tail(live, task_id) for _ in range(10)]
    for client in clients:
        assert client.frame()["phase"] == "Pending"
    kube.reset_requests()
    time.sleep(1.0)
    gets = kube.count(verb="get", resource="workflows")
    interval = app.extensions["tasklogs"].settings.capture.poll_interval
    assert gets >= 0.3 / interval, f"{gets} workflow reads in 1 s: the workflow is not being polled"
    assert gets <= 1.0 / interval + 2, f"{gets} workflow reads in 1 s for 10 viewers"

    def running(body):
        body["status"]["phase"] = "Running"
        body["metadata"]["labels"]["workflows.argoproj.io/phase"] = "Running"

    kube.update_workflow(task_id, running)
    for client in clients:
        frames = client.frames_until(
            lambda frame: frame["type"] == "phase" and frame["node"] is None
        )
        assert frames[-1]["phase"] == "Running", "the polled phase change reaches every viewer"
    for client in clients:
        client.close()


def test_running_log_is_appended_as_pages_and_merged_at_the_end(app, live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    client = tail(live, task_id)
    frames = [client.frame()]
    for index in range(30):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
        time.sleep(0.01)
    expected = "".join(f"line {i}\n" for i in range(30))
    assert wait_for(lambda: stored(app, task_id).get(wf.pod(), (0, ""))[1] == expected)
    scenarios.finish(kube, wf)
    frames += client.rest()
    assert log_text(frames, wf.pod()) == expected
    assert stored(app, task_id)[wf.pod()] == (1, expected), (
        "the final save merges the capture's small pages into one"
    )


def test_upstream_stream_cut_mid_line_loses_and_repeats_nothing(app, live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    client = tail(live, task_id)
    frames = [client.frame()]
    assert wait_for(lambda: kube.open_streams() == 1)
    same_second = "2026-03-04T05:06:07.{:09d}Z"
    for index in range(5):
        kube.write_log(wf.pod(), "main", f"burst {index}\n", ts=same_second.format(index * 10))
    kube.write_log(wf.pod(), "main", "half a li", ts=same_second.format(100))
    feed = app.extensions["tasklogs"].engine.driver(ref(task_id)).feed
    captured = len(kube.log_bytes(wf.pod(), "main").decode())
    assert wait_for(lambda: feed.streams[f"{wf.pod()}/main"].end == captured), (
        "the partial line is captured before the cut"
    )
    kube.cut_streams(wf.pod())
    kube.write_log(wf.pod(), "main", "ne \u20ac\n")
    for cut in range(3):
        assert wait_for(lambda: kube.open_streams() == 1), (
            "the capture re-opens the stream after a cut"
        )
        kube.cut_streams(wf.pod())
        kube.write_log(wf.pod(), "main", f"after cut {cut}\n")
    scenarios.finish(kube, wf)
    frames += client.rest()
    expected = kube.log_bytes(wf.pod(), "main").decode()
    assert "half a line \u20ac\n" in expected
    assert log_text(frames, wf.pod()) == expected
    assert stored(app, task_id)[wf.pod()][1] == expected
    assert kube.count(resource="pods/log") >= 6, "one read, one follow, then one re-open per cut"


def test_stream_cut_inside_a_multibyte_character(app, live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "\u00e9t\u00e9 \u20ac\u20ac\u20ac\n" * 3)
    kube.cut("pods/log", after_bytes=5 + 31, times=2)  # inside the first line's text, mid-character
    client = tail(live, task_id)
    frames = [client.frame()]
    kube.write_log(wf.pod(), "main", "tail\n")
    scenarios.finish(kube, wf)
    frames += client.rest()
    assert log_text(frames, wf.pod()) == "\u00e9t\u00e9 \u20ac\u20ac\u20ac\n" * 3 + "tail\n"


def test_slow_client_is_closed_with_4008_and_does_not_slow_others(serve, kube, task_id):
    _, live = serve(TASKLOGS_VIEWER_QUEUE=20)
    wf = scenarios.workflow(kube, task_id)
    slow = TailClient(
        live.ws_url(f"/ws/tasks/{task_id}/logs"),
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),),
    )
    fast = tail(live, task_id)
    slow.frame()
    fast_frames = [fast.frame()]
    line = "x" * 100_000 + "\n"
    reader = threading.Thread(
        target=lambda: fast_frames.extend(
            fast.frames_until(lambda f: f["type"] == "append" and f["data"].endswith(f"0079{line}"))
        )
    )
    reader.start()
    for index in range(
        80
    ):  # 8 MB in 80 frames: more than the slow client's socket buffers and queue hold
        kube.write_log(wf.pod(), "main", f"{index:04d}{line}")
        time.sleep(0.04)
    reader.join(20)
    assert fast.close_code is None, "the fast client is not held back by the slow one"
    assert log_text(fast_frames, wf.pod()) == "".join(f"{i:04d}{line}" for i in range(80))
    codes = []
    while slow.frame() is not None:
        pass
    codes.append(slow.close_code)
    assert codes == [4008] and "cursor" in slow.close_reason
