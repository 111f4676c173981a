"""A tail's catch-up while the capture appends and the journal writer commits, at the exact points
where a commit used to shift, drop or fail text. The journal writer's own thread is kept quiet (an
interval of an hour): every commit here is a `flush()` the test makes at the point it names, through
the real writer, feed, capture and SQLite store."""

import json

import pytest

from tasklogs import service, tasks
from tasklogs.engine import driver as driver_module
from tasklogs.engine.lines import LogLines, stored_texts
from tasklogs.engine.tail import TRY_AGAIN
from tasklogs.logstream import Position
from tasklogs.store import repository
from testkit.memstore import fast_settings
from testkit.names import ref
from testkit.waiting import wait_for

from .conftest import TailReader, text_of

STORED = "".join(f"line {i:02d}\n" for i in range(20))  # 20 pages of 8 characters
EARLY = "".join(f"live {i}\n" for i in range(8))  # unsaved when the snapshot begins
LATE = "".join(f"live {i}\n" for i in range(8, 23))  # captured while the catch-up is read
ELSEWHERE = Position("2026-01-02T03:04:05Z", 1)  # where another process's capture stands


@pytest.fixture
def quiet(memstore, cluster):
    """Services whose journal writer commits only when the test flushes it; one-line frames."""
    services = memstore.services(
        cluster,
        fast_settings(
            TASKLOGS_JOURNAL_INTERVAL="3600",
            TASKLOGS_FRAME_CHARS="10",
            TASKLOGS_WS_IDLE_TIMEOUT="0.5",
        ),
    )
    yield services
    services.close()


def captured(services, cluster, wf, pod: str, text: str, flush_each_line: bool = False):
    """Write `text` to the pod's log and wait until the task's feed holds it (committing each line as
    a page of its own when `flush_each_line`); the feed."""
    feed = services.engine.driver(ref(wf), pinned=True).feed
    assert wait_for(lambda: f"{pod}/main" in feed.streams, 3)
    for line in text.splitlines(keepends=True) if flush_each_line else [text]:
        end = feed.ends()[f"{pod}/main"] + len(line)
        cluster.write(pod, line)
        assert wait_for(lambda end=end: feed.ends()[f"{pod}/main"] == end, 3), feed.ends()
        if flush_each_line:
            assert services.engine.writer.flush([feed])
    return feed


def rebuilt(frames: list[dict], pod: str) -> str:
    """The client's text of the pod's log, checking every frame's offset continues it."""
    text = ""
    for frame in frames:
        entries = frame["logs"] if frame["type"] == "snapshot" else [frame]
        for entry in entries:
            if entry.get("pod") != pod or frame["type"] not in ("snapshot", "append"):
                continue
            assert entry["offset"] == len(text), (entry["offset"], len(text))
            text += entry.get("logs", entry.get("data", ""))
    return text


def commits_before_every_unsaved_read(services, feed) -> None:
    """A hook on the task's feed: the journal writer commits (and the feed forgets what it committed)
    just before anyone looks at the unsaved text, the worst moment for a reader of the store."""
    writer = services.engine.writer
    for name in ("unsaved_pieces", "unsaved_copy", "read_pending"):
        read = getattr(feed, name)

        def commit_then_read(*args, read=read):
            writer.flush([feed])
            return read(*args)

        setattr(feed, name, commit_then_read)


def test_pages_committed_past_the_snapshot_end_are_not_sent_in_place_of_unsaved_text(
    quiet, cluster, wf
):
    """The snapshot announces the stored end (the row) while EARLY is unsaved; the writer then commits
    EARLY and LATE as two pages after that end before the catch-up reads its last batch of pages."""
    pod = cluster.add_workflow(wf)["a"]
    captured(quiet, cluster, wf, pod, STORED, flush_each_line=True)
    feed = captured(quiet, cluster, wf, pod, EARLY)
    the_tail = service.open_tail(quiet, ref(wf), None)
    frames = the_tail.frames()
    snapshot = json.loads(text_of(next(frames)))  # unsaved text and rows read, first 16 pages too
    assert snapshot["logs"][0]["logs"] == STORED[:10]
    assert quiet.engine.writer.flush([feed]) and not feed.has_unsaved()  # EARLY: a page at 160
    captured(quiet, cluster, wf, pod, LATE)
    assert quiet.engine.writer.flush([feed])  # LATE: a page starting past the announced end
    sent = [snapshot] + [json.loads(text_of(frame)) for frame in frames]  # ends idle
    assert rebuilt(sent, pod) == STORED + EARLY + LATE
    the_tail.__exit__(None, None, None)


def test_stored_texts_never_reads_past_stop(quiet, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    feed = captured(quiet, cluster, wf, pod, STORED + EARLY, flush_each_line=True)
    log_id = feed.streams[f"{pod}/main"].log_id
    for stop in (0, 5, 160, 161, len(STORED + EARLY)):
        assert "".join(stored_texts(quiet.units, log_id, 0, stop)) == (STORED + EARLY)[:stop]
    assert "".join(stored_texts(quiet.units, log_id, 150, 170)) == (STORED + EARLY)[150:170]


def test_lines_read_while_the_writer_commits_continue_the_stored_ones(quiet, cluster, wf):
    """The reader is paused after the last stored page; the writer commits EARLY and the feed forgets
    it before the reader goes on: those lines still follow, once."""
    pod = cluster.add_workflow(wf)["a"]
    captured(quiet, cluster, wf, pod, STORED[:24], flush_each_line=True)
    feed = captured(quiet, cluster, wf, pod, EARLY)
    pages = LogLines(quiet.units, feed, f"{pod}/main").pages(0)
    texts = [next(pages).text for _ in range(3)]  # the three stored pages
    assert quiet.engine.writer.flush([feed]) and not feed.has_unsaved()
    texts += [page.text for page in pages]
    assert "".join(texts) == STORED[:24] + EARLY


def test_lines_hold_text_committed_between_an_empty_page_read_and_the_stored_end(
    quiet, cluster, wf
):
    """Nothing stored yet when the pages are read; the writer commits everything (and the feed forgets
    it) just before the stored end is read: the pages are read again, not skipped."""
    pod = cluster.add_workflow(wf)["a"]
    feed = captured(quiet, cluster, wf, pod, STORED[:24])
    reader = LogLines(quiet.units, feed, f"{pod}/main")
    stored_end = reader._stored_end

    def commit_then_read_the_end():
        quiet.engine.writer.flush([feed])
        return stored_end()

    reader._stored_end = commit_then_read_the_end  # type: ignore[method-assign]
    assert "".join(page.text for page in reader.pages(0)) == STORED[:24]
    assert not feed.has_unsaved()
    assert [line.text for line in reader.lines(16)] == ["line 02\n"]


@pytest.mark.parametrize("flushed_first", [False, True])
def test_the_end_and_a_tail_of_lines_hold_whatever_the_writer_committed_meanwhile(
    quiet, cluster, wf, flushed_first
):
    """The flaky `?format=lines&tail=4` snapshot: a commit just before a read of the unsaved text
    left the lines in neither read (an empty snapshot)."""
    pod = cluster.add_workflow(wf)["a"]
    lines = "".join(f"line {i}\n" for i in range(1, 12))
    feed = captured(quiet, cluster, wf, pod, lines)
    if flushed_first:
        assert quiet.engine.writer.flush([feed])
    commits_before_every_unsaved_read(quiet, feed)
    reader = LogLines(quiet.units, feed, f"{pod}/main")
    assert (reader.end().offset, reader.end().lines) == (len(lines), 11)
    assert reader.tail_start(4) == lines.index("line 8")
    assert [line.text for line in reader.lines(lines.index("line 10"))] == [
        "line 10\n",
        "line 11\n",
    ]
    tail = TailReader(service.open_tail(quiet, ref(wf), None, tail_lines=4, lines_format=True))
    assert wait_for(lambda: len(tail.frames) >= 4, 3), (tail.frames, tail.error)
    [entry] = tail.frames[0]["logs"]
    assert (entry["line"], [line["text"] for line in entry["lines"]]) == (8, ["line 8"])
    later = [(f["line"], f["lines"][0]["text"]) for f in tail.of_type("lines")]
    assert later == [(9, "line 9"), (10, "line 10"), (11, "line 11")]
    tail.stop()


def test_a_gap_is_read_whole_when_the_writer_commits_between_store_and_feed(quiet, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    feed = captured(quiet, cluster, wf, pod, "saved\n")
    assert quiet.engine.writer.flush([feed])
    the_tail = service.open_tail(quiet, ref(wf), None)
    frames = the_tail.frames()
    next(frames)  # the snapshot
    captured(quiet, cluster, wf, pod, "mid\n")
    assert json.loads(text_of(next(frames)))["data"] == "mid\n"
    the_tail.viewer.offsets, the_tail.viewer.in_step_at = {}, None  # as if it missed events
    commits_before_every_unsaved_read(quiet, feed)
    captured(quiet, cluster, wf, pod, "new\n")
    append = json.loads(text_of(next(frames)))
    assert (append["offset"], append["data"]) == (0, "saved\nmid\n")  # frames of 10 characters
    append = json.loads(text_of(next(frames)))
    assert (append["offset"], append["data"]) == (10, "new\n")
    the_tail.__exit__(None, None, None)


def test_a_gap_neither_stored_nor_unsaved_closes_the_tail_to_retry(quiet, memstore, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    feed = captured(quiet, cluster, wf, pod, "saved\n")
    assert quiet.engine.writer.flush([feed])
    the_tail = service.open_tail(quiet, ref(wf), None)
    frames = the_tail.frames()
    next(frames)  # the snapshot
    captured(quiet, cluster, wf, pod, "mid\n")
    assert json.loads(text_of(next(frames)))["data"] == "mid\n"
    the_tail.viewer.offsets, the_tail.viewer.in_step_at = {}, None  # as if it missed events
    with quiet.units() as uow:  # the stored text is gone (the task pruned meanwhile)
        repository.delete_tasks(uow.session, [ref(wf)])
        uow.commit()
    captured(quiet, cluster, wf, pod, "new\n")
    sent = [json.loads(text_of(frame)) for frame in frames]
    assert sent == [], sent
    assert the_tail.close_code == TRY_AGAIN and "not available here" in the_tail.close_reason
    the_tail.__exit__(None, None, None)


def test_a_log_first_met_after_startup_is_published_in_bounded_appends(
    services, cluster, wf, monkeypatch
):
    """A follower (another process captures) meets a new stream of 2.5 frames of stored text after its
    first sync: the text reaches the viewer whole, in appends of at most FRAME_CHARS."""
    engine = services.engine
    monkeypatch.setattr(engine.leases, "acquire", lambda task_id: False)
    monkeypatch.setattr(driver_module, "FRAME_CHARS", 1000)
    pods = cluster.add_workflow(wf, ("a", "b"))
    first, second = (s.log for s in tasks.read_task(cluster, ref(wf), ("main",)).streams)
    with services.units() as uow:
        ids = uow.record_phases(ref(wf), "Running", [(first, "Running")])
        uow.append_text(ids[first], 0, "a\n", ELSEWHERE)
        uow.commit()
    reader = TailReader(service.open_tail(services, ref(wf), None))
    assert wait_for(lambda: reader.text(pods["a"]) == "a\n", 3), reader.frames
    big = "".join(f"{i:07d}\n" for i in range(312))  # 2496 characters
    with services.units() as uow:
        ids = uow.record_phases(ref(wf), "Running", [(first, "Running"), (second, "Running")])
        for at in range(0, len(big), 400):  # pages of 400 characters
            uow.append_text(ids[second], at, big[at : at + 400], ELSEWHERE)
        uow.commit()
    engine.journal_changed(ref(wf).key)
    assert wait_for(lambda: reader.text(pods["b"]) == big, 3), reader.frames
    sizes = [len(f["data"]) for f in reader.of_type("append") if f["pod"] == pods["b"]]
    assert max(sizes) <= 1000 and sum(sizes) == len(big), sizes
    reader.stop()
