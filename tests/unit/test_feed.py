"""Feed and Viewer: text taken exactly once, events numbered and shared, viewers rebuilt from offsets."""

import json
import threading

import pytest

from tasklogs.cursor import decode_cursor
from tasklogs.engine import feed as feed_module
from tasklogs.engine.feed import Feed, SlowViewer, StreamInfo, Viewer, cut_pieces
from tasklogs.engine.frames import SharedFrame
from tasklogs.errors import StoreUnavailable
from tasklogs.identity import LogId
from tasklogs.logstream import Position
from testkit.names import ref

LOG = LogId("node-a", "pod-a", "main")
KEY = LOG.key


def a_feed(**kwargs) -> Feed:
    feed = Feed(ref("wf"), **kwargs)
    feed.add_stream(StreamInfo(LOG, "Running"))
    return feed


def decoded(frames) -> list[dict]:
    return [json.loads(f.text if isinstance(f, SharedFrame) else f) for f in frames]


def test_append_trims_what_the_feed_has_and_refuses_a_gap():
    sizes = []
    feed = a_feed(on_unsaved=lambda feed, size: sizes.append(size))
    assert feed.append(KEY, "abc", Position("t", 1))
    assert feed.append(KEY, "bcdef", start=1)
    assert feed.append(KEY, "de", start=3)  # all known already
    assert not feed.append(KEY, "zz", start=9)
    assert feed.ends() == {KEY: 6}
    assert feed.unsaved_copy() == {KEY: [(0, "abc"), (3, "def")]}
    assert sizes == [3, 3]
    assert feed.read_pending(KEY, 2, 5) == "cde"
    assert feed.streams[KEY].position == Position("t", 1)


def test_append_without_keep_is_not_held_for_the_journal():
    feed = a_feed()
    feed.append(KEY, "abc", keep=False)
    assert not feed.has_unsaved() and feed.ends() == {KEY: 3}


def test_add_stream_keeps_the_known_offsets():
    feed = a_feed()
    feed.append(KEY, "abc")
    known = feed.add_stream(StreamInfo(LOG, "Succeeded", log_id=7))
    assert known.end == 3 and known.log_id == 7
    assert feed.streams_without_rows() == [] and feed.log_ids() == {KEY: 7}


def test_saved_forgets_only_whole_saved_pieces_and_runs_are_cut_at_max_run(monkeypatch):
    monkeypatch.setattr(feed_module, "MAX_RUN", 5)
    feed = a_feed()
    for stamp, piece in enumerate(("abc", "de", "fgh")):
        feed.append(KEY, piece, Position("s", len(piece)), stamps=[stamp])
    assert feed.unsaved_runs({}) == []  # no row yet
    assert feed.unsaved_runs({KEY: 1}) == [(KEY, 1, 0, "abcde", Position("s", 2), [0, 1])]
    assert feed.saved(KEY, 4) == 3  # "abc" ends at 3: freed; "de" ends at 5: kept
    assert feed.unsaved_copy() == {KEY: [(3, "de"), (5, "fgh")]}
    assert feed.saved(KEY, 8) == 5 and not feed.has_unsaved()


def test_events_are_published_to_viewers_and_in_step_viewers_get_the_shared_frame():
    feed = a_feed()
    viewer = Viewer(feed, {}, max_queue=10)
    feed.subscribe(viewer)
    feed.append(KEY, "ab")
    feed.append(KEY, "cd")
    first, second = viewer.wait(0)
    assert (first.version, first.start, first.data, second.start, second.data) == (
        1,
        0,
        "ab",
        2,
        "cd",
    )
    rebuilt = list(viewer.frames(first, None))
    assert not isinstance(rebuilt[0], SharedFrame)  # not in step yet: rebuilt from its offsets
    assert viewer.in_step_at == 1
    shared = list(viewer.frames(second, None))
    assert shared == [second.frame] and isinstance(shared[0], SharedFrame)
    frame = decoded(shared)[0]
    assert (frame["offset"], frame["data"]) == (2, "cd")
    assert decode_cursor(frame["cursor"]).by_key == {KEY: 4}
    assert viewer.offsets == {KEY: 4}


def test_a_resumed_viewer_gets_only_what_it_lacks():
    feed = a_feed()
    viewer = Viewer(feed, {KEY: 3}, max_queue=10)
    feed.subscribe(viewer)
    feed.append(KEY, "abcdef")
    (event,) = viewer.wait(0)
    (frame,) = decoded(viewer.frames(event, None))
    assert (frame["offset"], frame["data"]) == (3, "def")
    feed.append(KEY, "g")
    (shared,) = list(viewer.frames(viewer.wait(0)[0], None))  # in step since the rebuilt frame
    assert isinstance(shared, SharedFrame)
    behind = Viewer(feed, {KEY: 9}, max_queue=10)  # has more than this event carries
    assert list(behind.frames(event, None)) == []


def test_a_gap_before_an_event_is_read_with_read_range():
    feed = a_feed()
    feed.append(KEY, "abc")  # nobody watches: published as it comes
    viewer = Viewer(feed, {}, max_queue=10)
    feed.subscribe(viewer)
    feed.append(KEY, "de")
    (event,) = viewer.wait(0)
    assert event.start == 3
    asked = []

    def read_range(key, start, end):
        asked.append((key, start, end))
        return [feed.read_pending(key, start, end)]

    (frame,) = decoded(viewer.frames(event, read_range))
    assert asked == [(KEY, 0, 3)]
    assert (frame["offset"], frame["data"]) == (0, "abcde")


def test_a_long_gap_is_read_in_pieces_and_sent_in_frames_of_frame_chars():
    feed = a_feed()
    feed.append(KEY, "0123456789" * 3)  # nobody watches: published as it comes
    viewer = Viewer(feed, {KEY: 2}, max_queue=10, frame_chars=8)
    feed.subscribe(viewer)
    feed.append(KEY, "abcde")
    (event,) = viewer.wait(0)
    taken = []

    def read_range(key, start, end):  # a page of 4 characters at a time, like the store's pages
        for at in range(start, end, 4):
            taken.append(at)
            yield feed.read_pending(key, at, min(end, at + 4))

    frames = viewer.frames(event, read_range)
    first = decoded([next(frames)])[0]
    assert (first["offset"], first["data"]) == (2, "23456789")
    assert taken == [2, 6]  # read no further than the first frame needs
    rest = decoded(frames)
    assert [(f["offset"], f["data"]) for f in rest] == [
        (10, "01234567"),
        (18, "89012345"),
        (26, "6789abcd"),
        (34, "e"),
    ]
    assert [decode_cursor(f["cursor"]).by_key for f in rest][-1] == {KEY: 35}
    assert viewer.offsets == {KEY: 35} and viewer.in_step_at == event.version


def test_a_gap_that_is_nowhere_raises_after_what_could_be_sent():
    feed = a_feed()
    feed.append(KEY, "abc", keep=False)  # published, never kept for the journal: not held here
    viewer = Viewer(feed, {}, max_queue=10)
    feed.subscribe(viewer)
    feed.append(KEY, "de")
    (event,) = viewer.wait(0)

    def read_range(key, start, end):
        raise StoreUnavailable(f"{start}-{end}")

    with pytest.raises(StoreUnavailable):
        list(viewer.frames(event, read_range))
    assert viewer.offsets == {}  # nothing sent, nothing counted


def test_cut_pieces_recuts_text_into_bounded_pieces():
    assert list(cut_pieces(["ab", "", "cdefg", "h"], 3)) == ["abc", "def", "gh"]
    assert list(cut_pieces(["abcdefg"], 3)) == ["abc", "def", "g"]
    assert list(cut_pieces([], 3)) == [] and list(cut_pieces(["", ""], 3)) == []


def test_phase_gone_and_complete_are_published_once():
    feed = a_feed()
    viewer = Viewer(feed, {}, max_queue=10)
    feed.subscribe(viewer)
    feed.set_phase("Running")
    feed.set_phase("Running")
    feed.set_phase("Running", KEY)  # the stream's phase already
    feed.set_phase("Succeeded", KEY)
    feed.gone(KEY, "pod deleted")
    feed.finish("Succeeded")
    feed.finish("Failed")
    events = viewer.wait(0)
    assert [e.kind for e in events] == ["phase", "phase", "gone", "complete"]
    frames = decoded([f for e in events for f in viewer.frames(e, None)])
    assert frames[0] == {"type": "phase", "phase": "Running", "node": None}
    assert frames[1] == {"type": "phase", "phase": "Succeeded", "node": "node-a"}
    assert frames[2]["type"] == "gone" and frames[2]["message"] == "pod deleted"
    assert frames[3] == {"type": "complete", "phase": "Succeeded"}
    assert feed.complete and feed.phase == "Succeeded"


def test_phase_events_already_in_the_snapshot_are_skipped():
    feed = a_feed()
    viewer = Viewer(feed, {}, max_queue=10)
    feed.subscribe(viewer)
    feed.set_phase("Running")
    viewer.seen_version = feed.version
    assert list(viewer.frames(viewer.wait(0)[0], None)) == []


def test_text_is_published_before_a_phase_change():
    feed = a_feed(coalesce=60)  # the publisher would wait a minute
    viewer = Viewer(feed, {}, max_queue=10)
    feed.subscribe(viewer)
    feed.append(KEY, "ab")
    feed.set_phase("Succeeded")
    assert [e.kind for e in viewer.wait(0)] == ["append", "phase"]
    feed._stopped.set()


def test_coalesce_joins_a_burst_into_one_append():
    stopped = threading.Event()
    feed = a_feed(coalesce=0.05, stopped=stopped)
    viewer = Viewer(feed, {}, max_queue=10)
    feed.subscribe(viewer)
    for piece in ("a", "b", "c"):
        feed.append(KEY, piece)
    try:
        events = viewer.wait(2)
        assert [(e.kind, e.start, e.data) for e in events] == [("append", 0, "abc")]
    finally:
        stopped.set()


def test_a_slow_viewer_overflows_and_must_resume():
    feed = a_feed()
    viewer = Viewer(feed, {}, max_queue=2)
    feed.subscribe(viewer)
    for piece in "abc":
        feed.append(KEY, piece)
    assert viewer.overflowed
    with pytest.raises(SlowViewer, match="more than 2 frames"):
        viewer.wait(0)
    feed.append(KEY, "d")  # an overflowed viewer takes nothing more
    with pytest.raises(SlowViewer):
        viewer.wait(0)


def test_stop_wakes_a_waiting_viewer():
    feed = a_feed()
    viewer = Viewer(feed, {}, max_queue=2)
    threading.Timer(0.05, viewer.stop).start()
    assert viewer.wait(5) == [] and viewer.stopped


def test_watched_counts_viewers_and_viewers_elsewhere():
    feed = a_feed()
    assert not feed.watched()
    feed.watched_elsewhere_until = float("inf")
    assert feed.watched() and feed.watched_elsewhere()
    feed.watched_elsewhere_until = 0
    viewer = Viewer(feed, {}, max_queue=2)
    feed.subscribe(viewer)
    assert feed.watched()
    feed.unsubscribe(viewer)
    assert not feed.watched()
