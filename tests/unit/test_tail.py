"""Tail: a snapshot, then live events, exactly once; how it closes (idle, slow, shutting down)."""

import json

import pytest

from tasklogs import service
from tasklogs.engine.frames import GOING_AWAY, NORMAL, SLOW_CLIENT, TRY_AGAIN
from testkit.memstore import fast_settings
from testkit.names import ref
from testkit.waiting import wait_for

from .conftest import TailReader, text_of


def tail(services, wf, cursor=None) -> TailReader:
    return TailReader(service.open_tail(services, ref(wf), cursor))


def test_snapshot_then_live_appends_exactly_once(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "one\ntwo\n")
    reader = tail(services, wf)
    assert wait_for(lambda: reader.of_type("snapshot"), 3)
    (snapshot,) = reader.of_type("snapshot")
    assert snapshot["source"] == "kubernetes" and not snapshot["complete"]
    assert snapshot["logs"][0]["logs"] == "one\ntwo\n"
    for line in ("three\n", "four\n"):
        cluster.write(pod, line)
    assert wait_for(lambda: reader.text(pod) == "one\ntwo\nthree\nfour\n", 3), reader.frames
    cluster.finish(wf)
    assert reader.done.wait(5) and reader.error is None
    assert reader.text(pod) == "one\ntwo\nthree\nfour\n"  # text() fails on any repeated offset
    assert reader.frames[-1] == {"type": "complete", "phase": "Succeeded"}
    assert reader.tail.close_code == NORMAL and reader.shared > 0


def test_resume_from_a_cursor_sends_only_what_is_new(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "one\n")
    first = tail(services, wf)
    assert wait_for(lambda: first.text(pod) == "one\n", 3)
    cursor = first.frames[-1]["cursor"]
    first.stop()
    cluster.write(pod, "two\n")
    second = tail(services, wf, cursor)
    assert wait_for(lambda: second.of_type("snapshot"), 3)
    entry = second.of_type("snapshot")[0]["logs"][0]
    assert wait_for(
        lambda: entry["logs"] + "".join(a["data"] for a in second.of_type("append")) == "two\n", 3
    ), second.frames
    assert entry["offset"] == len("one\n")
    second.stop()


def test_a_long_backlog_is_cut_into_appends_of_frame_chars(memstore, cluster, wf):
    services = memstore.services(cluster, fast_settings(TASKLOGS_FRAME_CHARS="10"))
    try:
        pod = cluster.add_workflow(wf)["a"]
        cluster.write(pod, "".join(f"line {i}\n" for i in range(5)))  # 35 characters
        cluster.finish(wf)
        reader = tail(services, wf)
        assert reader.done.wait(5), reader.frames
        snapshot = reader.of_type("snapshot")[0]
        assert len(snapshot["logs"][0]["logs"]) == 10
        assert [len(a["data"]) for a in reader.of_type("append")] == [10, 10, 5]
        assert reader.text(pod) == "".join(f"line {i}\n" for i in range(5))
        assert reader.frames[-1]["type"] == "complete"
    finally:
        services.close()


def test_a_complete_task_is_served_from_the_database(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "done\n")
    cluster.finish(wf)
    service.get_task_logs(services, ref(wf))  # the final save runs
    cluster.requests.clear()
    reader = tail(services, wf)
    assert reader.done.wait(5)
    snapshot = reader.of_type("snapshot")[0]
    assert (snapshot["source"], snapshot["complete"], snapshot["phase"]) == (
        "database",
        True,
        "Succeeded",
    )
    assert reader.text(pod) == "done\n"
    assert reader.frames[-1] == {"type": "complete", "phase": "Succeeded"}


def test_an_idle_tail_closes_with_going_away(memstore, cluster, wf):
    services = memstore.services(cluster, fast_settings(TASKLOGS_WS_IDLE_TIMEOUT="0.2"))
    try:
        cluster.add_workflow(wf)
        reader = tail(services, wf)
        assert reader.done.wait(3), reader.frames
        assert reader.tail.close_code == GOING_AWAY and "idle" in reader.tail.close_reason
        assert [f["type"] for f in reader.frames] == ["snapshot"]
    finally:
        services.close()


def test_a_slow_client_is_closed_with_4008(memstore, cluster, wf):
    services = memstore.services(cluster, fast_settings(TASKLOGS_VIEWER_QUEUE="2"))
    try:
        pod = cluster.add_workflow(wf)["a"]
        the_tail = service.open_tail(services, ref(wf), None)
        frames = the_tail.frames()
        assert '"snapshot"' in next(frames)
        feed = the_tail.driver.feed
        for piece in "abc":  # three events, and the client reads none of them
            feed.append(f"{pod}/main", piece, keep=False)
        assert list(frames) == []
        assert the_tail.close_code == SLOW_CLIENT and "too slow" in the_tail.close_reason
        the_tail.__exit__(None, None, None)
        assert the_tail.viewer not in feed.viewers
    finally:
        services.close()


def test_a_closed_engine_sends_the_client_away(services, cluster, wf):
    cluster.add_workflow(wf)
    services.engine.close()
    the_tail = service.open_tail(services, ref(wf), None)
    assert list(the_tail.frames()) == []
    assert the_tail.close_code == GOING_AWAY and "shutting down" in the_tail.close_reason


def test_database_down_starts_from_the_cluster(services, memstore, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "one\n")
    memstore.down = True
    reader = tail(services, wf)
    assert wait_for(lambda: reader.of_type("snapshot"), 3), reader.error
    snapshot = reader.of_type("snapshot")[0]
    assert snapshot["source"] == "kubernetes" and snapshot["logs"][0]["logs"] == "one\n"
    cluster.write(pod, "two\n")
    assert wait_for(lambda: reader.text(pod) == "one\ntwo\n", 3), reader.frames
    reader.stop()


def test_an_unknown_task_raises_task_not_found(services, wf):
    from tasklogs.errors import TaskNotFound

    with pytest.raises(TaskNotFound):
        list(service.open_tail(services, ref(wf), None).frames())


def test_a_viewer_behind_the_feed_reads_the_gap_from_the_journal(services, memstore, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "saved\n")
    the_tail = service.open_tail(services, ref(wf), None)
    frames = the_tail.frames()
    next(frames)  # the snapshot
    cluster.write(pod, "mid\n")
    assert json.loads(text_of(next(frames)))["data"] == "mid\n"
    feed = the_tail.driver.feed
    assert wait_for(lambda: not feed.has_unsaved(), 3)  # the text is in the journal only
    the_tail.viewer.offsets, the_tail.viewer.in_step_at = {}, None  # as if it missed events
    cluster.write(pod, "new\n")
    append = json.loads(text_of(next(frames)))
    assert (append["offset"], append["data"]) == (0, "saved\nmid\nnew\n")
    the_tail.viewer.offsets, the_tail.viewer.in_step_at = {}, None
    assert wait_for(lambda: not feed.has_unsaved(), 3)
    memstore.down = True  # the gap cannot be read now: the client must come back
    cluster.write(pod, "newer\n")
    assert list(frames) == []
    assert the_tail.close_code == TRY_AGAIN and "reconnect" in the_tail.close_reason
    the_tail.__exit__(None, None, None)
