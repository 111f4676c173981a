"""One WebSocket client's tail: a snapshot from the store, then the feed's live events, exactly once.

The viewer subscribes to the feed *before* the snapshot is read, and the snapshot reads the feed's
unsaved text before the database, so whatever the capture takes meanwhile is either in the snapshot or
queued for the viewer; offsets then drop what the client already has.

Two formats: `append` frames carry text as it comes; `lines` frames carry whole lines with their
capture timestamps (a last line without a newline waits until its container has ended). Offsets, and
so cursors, mean the same in both.
"""

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .. import metrics
from ..cursor import Cursor, encode_cursor
from ..errors import StoreUnavailable
from ..identity import LogId, TaskRef
from ..linequery import LineQuery, format_ts
from ..pages import Line, advance
from ..store import repository
from . import frames
from .driver import Driver
from .engine import Engine, EngineClosed
from .feed import Event, SlowViewer, Viewer, cut_pieces
from .frames import GOING_AWAY, NORMAL, SLOW_CLIENT, TRY_AGAIN
from .lines import LogLines, lines_from, stored_texts

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
LINE_CHARS = 48  # what a line adds to a lines frame besides its text: its timestamp and JSON
YIELD_CHARS = 32 << 10  # characters of lines between two yields while a frame is built
# A yield sleeps this long: under gevent, sleep(0) may resume this greenlet before the hub polls for I/O
# (a new /healthz connection would wait); any positive sleep waits for the loop's next turn.
YIELD_SECONDS = 0.0001


@dataclass
class Entry:
    """One log in a snapshot: where the client's text starts (offset and line number), how many lines
    the log has, and its text from there (`pieces`), or its lines (`lines`, in the lines format)."""

    log: LogId
    phase: str
    start: int
    line: int
    count: int
    pieces: Iterator[str]
    lines: Iterator[Line] | None = None


class Tail:
    """A snapshot, then live events, for one client; `close_code`/`close_reason` say how it ended."""

    def __init__(
        self,
        engine: Engine,
        task: TaskRef,
        offsets: Cursor | dict[str, int] | None,
        *,
        max_queue: int,
        frame_chars: int,
        idle_timeout: float = 0,
        cluster_view=None,
        tail_lines: int | None = None,
        lines_format: bool = False,
    ):
        self.engine, self.task = engine, task
        self.resuming = offsets is not None  # a cursor wins over `tail_lines`
        self.cursor = Cursor(dict(offsets)) if isinstance(offsets, dict) else offsets
        self.offsets: dict[str, int] = {}  # by log key, once the cursor is checked against the task
        self.max_queue, self.frame_chars, self.idle_timeout = max_queue, frame_chars, idle_timeout
        self.cluster_view = (
            cluster_view  # service.kubernetes_view, for a snapshot without the database
        )
        self.tail_lines, self.lines_format = tail_lines, lines_format
        self.close_code, self.close_reason = NORMAL, "task complete"
        self.driver: Driver | None = None
        self.viewer: Viewer | None = None
        self._ended: set[str] = set()  # streams whose last line may go out without its newline
        self._stopped = False

    def __enter__(self):
        metrics.TAILS_OPEN.inc()
        return self

    def __exit__(self, *exc):
        metrics.TAILS_OPEN.dec()
        self.stop()
        if self.viewer is not None:
            self.viewer.feed.unsubscribe(self.viewer)
            if self.driver is not None:
                self.driver.touch()

    def stop(self) -> None:
        """The client went away: end `frames()` at once."""
        self._stopped = True
        if self.viewer is not None:
            self.viewer.stop()

    def _subscribed(self) -> tuple[Driver, Viewer]:
        """The driver and the viewer `frames()` subscribed (the methods below run only after it did)."""
        if self.driver is None or self.viewer is None:
            raise RuntimeError("the tail has not subscribed to its feed yet")
        return self.driver, self.viewer

    def frames(self):
        """JSON frames: a snapshot (and the backlog), then live text, phases, `complete`."""
        try:
            self.driver = self.engine.driver(self.task)
        except EngineClosed:
            self.close_code, self.close_reason = (
                GOING_AWAY,
                "server shutting down; reconnect with your cursor",
            )
            return
        self.viewer = Viewer(self.driver.feed, self.offsets, self.max_queue, self.frame_chars)
        self.driver.feed.subscribe(self.viewer)
        if not self.driver.ready.wait(READY_TIMEOUT) or self._stopped:
            return
        if self.driver.error is not None:
            raise self.driver.error
        if self.cursor is not None:
            self.offsets = self._resolved(self.cursor)
            self.viewer.offsets = dict(self.offsets)
        complete = yield from self._snapshot()
        if complete:
            yield frames.complete(self._phase)
            return
        yield from self._live()

    def _resolved(self, cursor: Cursor) -> dict[str, int]:
        """The cursor's offsets by log key; InvalidRequest when it names a log the task does not have."""
        feed = self._subscribed()[0].feed
        with feed.lock:
            keys = set(feed.streams)
            ids = {s.log_id: key for key, s in feed.streams.items() if s.log_id is not None}
        if not cursor.known(ids, keys):  # the store may know logs this feed has not met yet
            with self.engine.units() as uow:
                for row in repository.get_stored_logs(uow.session, self.task):
                    ids[row.log_id] = row.log.key
                    keys.add(row.log.key)
        return cursor.offsets(ids, keys, self.task.name)

    def _cursor(self) -> str:
        return encode_cursor(self.offsets, self._subscribed()[0].feed.log_ids())

    def _live(self):
        viewer = self._subscribed()[1]
        last_sent = time.monotonic()
        while not self._stopped:
            if self.idle_timeout and time.monotonic() - last_sent > self.idle_timeout:
                self.close_code, self.close_reason = (
                    GOING_AWAY,
                    "idle: nothing new; reconnect with your last cursor",
                )
                return
            try:
                events = viewer.wait(timeout=min(5.0, self.idle_timeout or 5.0))
            except SlowViewer as error:
                self.close_code, self.close_reason = (
                    SLOW_CLIENT,
                    f"{error}; reconnect with your last cursor",
                )
                return
            for event in events:
                if event.kind == "error":
                    yield event.frame
                    self.close_code, self.close_reason = (
                        TRY_AGAIN,
                        "the workflow cannot be read; reconnect with your last cursor later",
                    )
                    return
                try:
                    for frame in self._frames_for(event):
                        last_sent = time.monotonic()
                        yield frame
                except StoreUnavailable as error:
                    self.close_code, self.close_reason = (
                        TRY_AGAIN,
                        f"{error.message}; reconnect with your last cursor",
                    )
                    return
                if event.kind == "complete":
                    return

    def _frames_for(self, event: Event):
        viewer = self._subscribed()[1]
        if not self.lines_format:
            return viewer.frames(event, self._read_range)
        return self._line_frames_for(event, viewer)

    def _line_frames_for(self, event: Event, viewer: Viewer):
        """In the lines format the feed's events say what changed; the lines come from the store and the
        feed's unsaved text."""
        if event.kind in ("ended", "gone") and event.key is not None:
            self._ended.add(event.key)
        if event.kind == "complete":
            self._ended.update(self._subscribed()[0].feed.streams)
        keys = [event.key] if event.key is not None else list(self._subscribed()[0].feed.streams)
        if event.kind in ("append", "ended", "gone", "complete"):
            for key in keys:
                yield from self._line_frames(key)
        if event.kind in ("phase", "gone", "complete"):
            yield from viewer.frames(event, self._read_range)

    def _line_frames(self, key: str):
        feed = self._subscribed()[0].feed
        start = self.offsets.get(key, 0)
        reader = LogLines(self.engine.units, feed, key)
        for number, lines, end in _line_batches(
            reader.lines(start), key in self._ended, self.frame_chars
        ):
            self.offsets[key] = end
            yield frames.lines(feed.streams[key].log, number, lines, self._cursor())
            _let_others_run()

    # --- the snapshot ---

    def _snapshot(self):
        """Yield the snapshot frame and the backlog; return whether the task is complete."""
        driver, viewer = self._subscribed()
        feed = driver.feed
        viewer.seen_version, unsaved, phases = feed.state()
        started = False
        try:
            with self.engine.units() as uow:
                stored = repository.get_task(uow.session, self.task)
                rows = repository.get_stored_logs(uow.session, self.task)
            started = True
            complete = bool(stored and stored.complete)
            if complete:
                self._ended.update(row.log.key for row in rows)
            stored_keys = {row.log.key for row in rows}
            entries = [self._stored_entry(row, unsaved, phases) for row in rows]
            entries += [
                self._feed_entry(stream, unsaved)
                for stream in list(feed.streams.values())
                if stream.key not in stored_keys
            ]
            self._phase = feed.phase or (stored.phase if stored else "") or "Pending"
            yield from self._entry_frames(
                entries, "database" if complete else "kubernetes", complete
            )
            return complete
        except StoreUnavailable:
            if started or self.cluster_view is None:
                raise
        log.warning("database unavailable, tail of %s starts from Kubernetes", self.task)
        yield from self._cluster_snapshot()
        return False

    def _cluster_snapshot(self):
        view = self.cluster_view(self.task, degraded="database")
        self._phase = view.phase
        yield from self._entry_frames(
            [self._cluster_entry(e) for e in view.entries], "kubernetes", False
        )

    def _cluster_entry(self, entry) -> Entry:
        """A log read from the cluster alone (the database is down): from the cursor, or its tail."""
        start = self.offsets.get(entry.log.key, 0)
        query = LineQuery(tail=None if self.resuming else self.tail_lines)
        lines = lines_from((hit.line for hit in entry.select(query)), start)
        first = next(lines, None)
        if first is None:
            return Entry(entry.log, entry.phase, start, 1, 0, iter(()), iter(()))
        lines = itertools.chain([first], lines)
        pieces = iter(()) if self.lines_format else (line.text for line in lines)
        return Entry(
            entry.log,
            entry.phase,
            first.offset,
            first.number,
            0,
            pieces,
            lines if self.lines_format else None,
        )

    def _stored_entry(self, row, unsaved, phases) -> Entry:
        key, feed = row.log.key, self._subscribed()[0].feed
        end = row.end
        for piece in _unsaved_from(unsaved.get(key, ()), row.length):
            end = advance(end, piece)
        reader = LogLines(self.engine.units, feed, key)
        start = self._start(key, reader, end.offset)
        line = 1 if start == 0 else end.next_line if start >= end.offset else reader.line_at(start)
        pieces = _stored_text(self.engine, row, start, unsaved.get(key, ()))
        lines = reader.lines(start) if self.lines_format else None
        return Entry(row.log, phases.get(key) or row.phase, start, line, end.lines, pieces, lines)

    def _feed_entry(self, stream, unsaved) -> Entry:
        reader = LogLines(self.engine.units, self._subscribed()[0].feed, stream.key)
        end = reader.end()
        start = self._start(stream.key, reader, end.offset)
        line = 1 if start == 0 else reader.line_at(start)
        pieces = _unsaved_from(unsaved.get(stream.key, ()), start)
        lines = reader.lines(start) if self.lines_format else None
        return Entry(stream.log, stream.phase, start, line, end.lines, pieces, lines)

    def _start(self, key: str, reader: LogLines, end: int) -> int:
        """Where the client's text of this log starts: its cursor, else the last `tail_lines` lines."""
        if self.resuming:
            return min(self.offsets.get(key, 0), end)
        if self.tail_lines is not None:
            return reader.tail_start(self.tail_lines)
        return 0

    def _entry_frames(self, entries: list[Entry], source: str, complete: bool):
        """The snapshot frame with the first pieces of the logs (about `frame_chars` in all), then the
        rest of each backlog, one log after the other: memory stays bounded however many logs."""
        if self.lines_format:
            yield from self._entry_line_frames(entries, source, complete)
            return
        logs, rests, budget = [], [], self.frame_chars
        for entry in entries:
            pieces = cut_pieces(entry.pieces, self.frame_chars)
            first = next(pieces, "") if budget > 0 else ""
            budget -= len(first)
            self.offsets[entry.log.key] = entry.start + len(first)
            logs.append(
                frames.snapshot_entry(
                    entry.log, entry.phase, entry.start, first, entry.line, entry.count
                )
            )
            rests.append((entry.log, pieces))
        yield frames.snapshot(self.task, self._phase, source, complete, logs, self._cursor())
        for log_, pieces in rests:
            for piece in pieces:
                start = self.offsets[log_.key]
                self.offsets[log_.key] = start + len(piece)
                yield frames.append(log_, start, piece, self._cursor())
                _let_others_run()
        self._subscribed()[1].offsets = dict(self.offsets)

    def _entry_line_frames(self, entries: list[Entry], source: str, complete: bool):
        logs, rests, budget = [], [], self.frame_chars
        for entry in entries:
            batches = _line_batches(
                entry.lines or iter(()), entry.log.key in self._ended, self.frame_chars
            )
            number, lines, end = (
                next(batches, (entry.line, [], entry.start))
                if budget > 0
                else (entry.line, [], entry.start)
            )
            budget -= sum(len(line["text"]) + LINE_CHARS for line in lines)
            self.offsets[entry.log.key] = end
            logs.append(
                frames.snapshot_lines_entry(entry.log, entry.phase, entry.start, number, lines)
            )
            rests.append((entry.log, batches))
        yield frames.snapshot(self.task, self._phase, source, complete, logs, self._cursor())
        for log_, batches in rests:
            for number, lines, end in batches:
                self.offsets[log_.key] = end
                yield frames.lines(log_, number, lines, self._cursor())
                _let_others_run()

    def _read_range(self, key: str, start: int, end: int) -> Iterator[str]:
        """A stream's text between two offsets, in pieces of at most a page or `frame_chars`: from the
        store, then the feed's unsaved text; StoreUnavailable where neither has it."""
        feed = self._subscribed()[0].feed
        log_id = feed.streams[key].log_id
        pending = feed.unsaved_copy().get(key, [])  # before the store, as the snapshot does
        if log_id is not None:
            for piece in stored_texts(self.engine.units, log_id, start, end):
                start += len(piece)
                yield piece
        for piece in cut_pieces(_unsaved_from(pending, start), self.frame_chars):
            piece = piece[: end - start]
            if not piece:
                break
            start += len(piece)
            yield piece
        if start < end:
            raise StoreUnavailable(f"text {start}-{end} of {key} is not available here")


def _stored_text(engine: Engine, row, start: int, unsaved) -> Iterator[str]:
    """A stored log's text from `start`: its pages up to where `row` says it ends (what the store held
    when the snapshot began; the rest comes from `unsaved` or the live events), then the feed's unsaved
    text after them."""
    if start < row.length:
        for piece in stored_texts(engine.units, row.log_id, start, row.length):
            start += len(piece)
            yield piece
        if start < row.length:
            raise StoreUnavailable(f"text {start}-{row.length} of {row.log.key} is gone")
    yield from _unsaved_from(unsaved, max(start, row.length))


def _let_others_run() -> None:
    """Yield to the other greenlets (the gevent hub) or threads between two chunks of a catch-up: a
    client that reads fast must not keep them waiting for the whole backlog."""
    time.sleep(YIELD_SECONDS)


def _line_batches(lines: Iterator[Line], ended: bool, size: int):
    """(first line number, [{ts, text}], offset after them) batches of about `size` characters of whole
    lines, each line counting LINE_CHARS more for its timestamp (a frame of many short lines stays
    bounded too); a last line without its newline only when the log has `ended`."""
    batch: list[dict] = []
    number = end = chars = unyielded = 0
    for line in lines:
        if not line.text.endswith("\n") and not ended:
            break
        if not batch:
            number = line.number
        batch.append({"ts": format_ts(line.ts), "text": line.content})
        end, cost = line.offset + len(line.text), len(line.text) + LINE_CHARS
        chars, unyielded = chars + cost, unyielded + cost
        if chars >= size:
            yield number, batch, end
            batch, chars = [], 0
        if unyielded >= YIELD_CHARS:  # building one frame of short lines takes a while
            unyielded = 0
            _let_others_run()
    if batch:
        yield number, batch, end


def _unsaved_from(pieces, start: int):
    """The unsaved text (`(start, text)` pieces) from character `start` on, up to the first gap: text
    after a gap is never given as if it began at `start`."""
    for piece_start, text in pieces:
        if piece_start > start:
            return
        if piece_start + len(text) > start:
            yield text[start - piece_start :]
            start = piece_start + len(text)
