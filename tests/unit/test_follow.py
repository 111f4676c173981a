"""ContainerCapture: one container followed into a feed; reconnects and restarts lose and repeat nothing."""

import threading

from tasklogs.engine.feed import Feed, StreamInfo
from tasklogs.engine.follow import ContainerCapture
from tasklogs.logstream import Position
from tasklogs.tasks import read_task
from testkit.names import ref
from testkit.waiting import wait_for


def capture_of(cluster, wf, position=None, room=lambda: True):
    task = read_task(cluster, ref(wf), ("main",))
    (stream,) = task.streams
    feed = Feed(wf)
    feed.add_stream(StreamInfo(stream.log, stream.phase))
    capture = ContainerCapture(
        cluster,
        feed,
        stream,
        position or Position(),
        task.container_status(stream),
        0.02,
        0.0,
        room,
    )
    threading.Thread(target=capture.run, daemon=True).start()
    return capture, feed, stream.key


def text(feed, key) -> str:
    return "".join(piece for _, piece in feed.unsaved_copy().get(key, []))


def test_a_broken_stream_resumes_without_loss_or_duplicate(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.chunk_bytes = 7  # lines cut anywhere, also between a break and its resume
    cluster.write(pod, "".join(f"line {i}\n" for i in range(5)))
    capture, feed, key = capture_of(cluster, wf)
    assert capture.caught_up.wait(3)
    assert wait_for(lambda: cluster.open_streams == 1, 2)  # following now
    for round_ in range(2):
        assert wait_for(lambda: cluster.break_streams() == 1, 2)
        cluster.write(pod, f"after break {round_}\n")  # the same second: the resume repeats lines
    cluster.finish_pod(pod)
    assert capture.finished.wait(5)
    expected = "".join(f"line {i}\n" for i in range(5)) + "".join(
        f"after break {i}\n" for i in range(2)
    )
    assert text(feed, key) == expected
    assert cluster.requests["get pods/log"] >= 5  # catch-up, follow, 2 resumes, the final read


def test_a_restarted_container_is_read_from_its_previous_run_first(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "first run\n")
    cluster.restart(pod)
    cluster.write(pod, "second run\n")
    capture, feed, key = capture_of(cluster, wf)
    assert wait_for(lambda: text(feed, key) == "first run\nsecond run\n", 3)
    cluster.restart(pod)  # while followed: the next run is read after the one followed
    cluster.write(pod, "third run\n")
    cluster.finish_pod(pod)
    assert capture.finished.wait(5)
    assert text(feed, key) == "first run\nsecond run\nthird run\n"
    assert capture.position.restarts == 2


def test_a_capture_resumes_from_a_stored_position(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "one\ntwo\n")
    cluster.finish_pod(pod)
    after_one = Position("2026-01-02T03:04:05.001000000Z", 1)
    capture, feed, key = capture_of(cluster, wf, after_one)
    assert capture.finished.wait(3)
    assert text(feed, key) == "two\n"


def test_a_waiting_container_is_read_once_it_runs(cluster, wf):
    pod = cluster.add_workflow(wf, container_state="waiting")["a"]
    capture, feed, key = capture_of(cluster, wf)
    assert capture.caught_up.wait(2)  # nothing to wait for: viewers get an empty log
    assert cluster.requests["get pods/log"] == 0
    cluster.set_state(pod, "main", "running")
    cluster.write(pod, "started\n")
    capture.status = cluster.get_pod(pod)["containers"]["main"]  # what the driver does each poll
    assert wait_for(lambda: text(feed, key) == "started\n", 3)
    capture.stop()
    assert capture.finished.wait(3) and cluster.open_streams == 0


def test_a_status_behind_the_cluster_waits_for_the_container(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.set_state(pod, "main", "waiting")  # the capture still believes it runs
    capture, feed, key = capture_of(cluster, wf)
    capture.status = {"state": "running", "reason": "", "restarts": 0, "exit_code": None}
    assert wait_for(lambda: cluster.requests["get pods/log"] >= 2, 2)  # ContainerWaiting: retried
    cluster.set_state(pod, "main", "running")
    cluster.write(pod, "up\n")
    assert wait_for(lambda: text(feed, key) == "up\n", 3)
    capture.stop()
    assert capture.finished.wait(3)


def test_a_deleted_pod_ends_the_capture_with_gone(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "last words\n")
    capture, feed, key = capture_of(cluster, wf)
    assert wait_for(lambda: text(feed, key) == "last words\n", 3)
    events = []
    feed._publish = lambda kind, *args: events.append(kind)
    cluster.delete_pod(pod)
    assert capture.finished.wait(3)
    assert events == ["gone"]


def test_no_room_pauses_reading_until_the_journal_takes_text_again(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "kept in kubernetes\n")
    room = threading.Event()
    capture, feed, key = capture_of(cluster, wf, room=room.is_set)
    assert capture.caught_up.wait(2)
    assert cluster.requests["get pods/log"] == 0 and text(feed, key) == ""
    room.set()
    assert wait_for(lambda: text(feed, key) == "kept in kubernetes\n", 3)
    capture.stop()
    assert capture.finished.wait(3)
