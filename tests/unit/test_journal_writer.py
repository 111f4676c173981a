"""JournalWriter: every feed's unsaved text committed once; a refusing store keeps it in memory."""

import threading

from tasklogs.engine.feed import Feed, StreamInfo
from tasklogs.engine.journal import JournalWriter
from tasklogs.identity import LogId
from tasklogs.logstream import Position
from tasklogs.store import repository
from testkit.names import ref
from testkit.waiting import wait_for

LOG = LogId("node", "pod", "main")
KEY = LOG.key


def feed_for(writer, task_id="wf-j") -> Feed:
    feed = Feed(ref(task_id), on_unsaved=writer.mark)
    feed.add_stream(StreamInfo(LOG, "Running"))
    return feed


def take(feed, text, second=5):
    feed.append(KEY, text, Position(f"2026-01-02T03:04:{second:02d}.000000000Z", 1))


def stored(memstore, task_id="wf-j") -> list[str]:
    with memstore.units() as uow:
        return [e["logs"] for e in repository.get_logs_from_database(uow.session, ref(task_id))]


def test_flush_writes_each_run_once(memstore):
    writer = JournalWriter(memstore.units)
    feed = feed_for(writer)
    take(feed, "one\n")
    take(feed, "two\n")
    assert writer.held == 8
    assert writer.flush()
    assert stored(memstore) == ["one\ntwo\n"]
    assert not feed.has_unsaved() and writer.held == 0
    assert writer.flush() and writer.flush([feed])
    take(feed, "three\n", 6)
    assert writer.flush()
    assert stored(memstore) == ["one\ntwo\nthree\n"]
    with memstore.units() as uow:
        (row,) = repository.get_stored_logs(uow.session, ref("wf-j"))
    assert row.position == Position("2026-01-02T03:04:06.000000000Z", 1)


def test_text_another_writer_stored_is_not_written_twice(memstore):
    writer = JournalWriter(memstore.units)
    feed = feed_for(writer)
    take(feed, "one\n")
    assert writer.flush()
    other = JournalWriter(memstore.units)  # another process's capture of the same log
    their_feed = feed_for(other)
    their_feed.set_log_ids(feed.log_ids())
    take(their_feed, "one\ntwo\n")
    take(feed, "two\nthree\n")  # ours gets further; its "two\n" is stored by then
    assert other.flush() and writer.flush()
    # ours met their row where it meant to write: nothing written, the end is read again next time
    assert stored(memstore) == ["one\ntwo\n"] and feed.has_unsaved()
    assert writer.flush()
    assert stored(memstore) == ["one\ntwo\nthree\n"]
    assert not feed.has_unsaved() and not their_feed.has_unsaved()


def test_a_failing_store_keeps_the_text_and_has_room_until_the_limit(memstore):
    writer = JournalWriter(memstore.units, limit=10)
    feed = feed_for(writer)
    memstore.down = True
    take(feed, "12345\n")
    assert not writer.flush()
    assert not writer.healthy and feed.has_unsaved()
    assert writer.has_room()  # 6 characters held: under the limit
    take(feed, "67890\n", 6)
    assert not writer.flush() and not writer.has_room()  # 12 held
    memstore.down = False
    assert writer.flush()
    assert writer.healthy and writer.has_room() and writer.held == 0
    assert stored(memstore) == ["12345\n67890\n"]


def test_run_commits_every_interval_and_backs_off_while_failing(memstore):
    writer = JournalWriter(memstore.units, interval=0.02, hurried_gap=0.01)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        feed = feed_for(writer)
        take(feed, "soon\n")
        assert wait_for(lambda: stored(memstore) == ["soon\n"], 2)
        memstore.down = True
        take(feed, "later\n", 6)
        assert wait_for(lambda: not writer.healthy, 2)
        assert writer._delay() > 0
        memstore.down = False
        assert wait_for(lambda: stored(memstore) == ["soon\nlater\n"], 3)
        feed.watched_elsewhere_until = float("inf")  # viewers elsewhere: commit at once
        take(feed, "hurried\n", 7)
        assert wait_for(lambda: stored(memstore) == ["soon\nlater\nhurried\n"], 2)
    finally:
        writer.stop()
        thread.join(2)
    assert not thread.is_alive()


def test_a_log_another_writer_went_on_with_is_written_on_from_its_stored_end(memstore, caplog):
    """A collector captures a task, hands it to another, follows that one's journal, and takes the task
    back (collectors rebalancing as one joins): its writer's last known end of the log is stale, and
    must be read again rather than taken for a gap, or nothing it captures is ever stored."""
    writer = JournalWriter(memstore.units)
    feed = feed_for(writer)
    take(feed, "one\n")
    assert writer.flush()  # our writer knows the log ends at 4
    other = JournalWriter(memstore.units)
    their_feed = feed_for(other)
    their_feed.set_log_ids(feed.log_ids())
    take(their_feed, "one\ntwo\n")
    assert other.flush()  # the store ends at 8
    feed.append(KEY, "two\n", keep=False)  # followed from their journal, not ours to write
    take(feed, "three\n", 6)  # captured again by us, from the stored end on
    assert writer.flush()
    assert stored(memstore) == ["one\ntwo\nthree\n"]
    assert not feed.has_unsaved()
    assert "journal gap" not in caplog.text
