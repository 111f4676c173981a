"""One WebSocket client's tail: a snapshot from the store, then the feed's live events, exactly once.

The viewer subscribes to the feed *before* the snapshot is read, and the snapshot reads the feed's
unsaved text before the database, so whatever the capture takes meanwhile is either in the snapshot or
queued for the viewer; offsets then drop what the client already has.
"""

import itertools
import logging
import time
from collections.abc import Iterator

from ..cursor import encode_cursor
from ..errors import StoreUnavailable
from ..identity import LogId
from ..store import repository
from . import frames
from .driver import Driver
from .engine import Engine, EngineClosed
from .feed import SlowViewer, Viewer
from .frames import GOING_AWAY, NORMAL, SLOW_CLIENT, TRY_AGAIN

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0


class Tail:
    """A snapshot, then live events, for one client; `close_code`/`close_reason` say how it ended."""

    def __init__(
        self,
        engine: Engine,
        task_id: str,
        offsets: dict[str, int],
        *,
        max_queue: int,
        frame_chars: int,
        idle_timeout: float = 0,
        cluster_view=None,
    ):
        self.engine, self.task_id = engine, task_id
        self.offsets = dict(offsets)
        self.max_queue, self.frame_chars, self.idle_timeout = max_queue, frame_chars, idle_timeout
        self.cluster_view = (
            cluster_view  # service.kubernetes_view, for a snapshot without the database
        )
        self.close_code, self.close_reason = NORMAL, "task complete"
        self.driver: Driver | None = None
        self.viewer: Viewer | None = None
        self._stopped = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
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
        """JSON frames: a snapshot (and the backlog as appends), then live appends, phases, `complete`."""
        try:
            self.driver = self.engine.driver(self.task_id)
        except EngineClosed:
            self.close_code, self.close_reason = (
                GOING_AWAY,
                "server shutting down; reconnect with your cursor",
            )
            return
        self.viewer = Viewer(self.driver.feed, self.offsets, self.max_queue)
        self.driver.feed.subscribe(self.viewer)
        if not self.driver.ready.wait(READY_TIMEOUT) or self._stopped:
            return
        if self.driver.error is not None:
            raise self.driver.error
        complete = yield from self._snapshot()
        if complete:
            yield frames.complete(self._phase)
            return
        yield from self._live()

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
                try:
                    for frame in viewer.frames(event, self._read_range):
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

    # --- the snapshot ---

    def _snapshot(self):
        """Yield the snapshot frame and the backlog; return whether the task is complete."""
        driver, viewer = self._subscribed()
        feed = driver.feed
        viewer.seen_version, unsaved, phases = feed.state()
        started = False
        try:
            with self.engine.units() as uow:
                stored = repository.get_task(uow.session, self.task_id)
                rows = repository.get_stored_logs(uow.session, self.task_id)
                started = True
                stored_keys = {row.log.key for row in rows}
                entries = [self._stored_entry(uow.session, row, unsaved, phases) for row in rows]
                entries += [
                    self._feed_entry(stream, unsaved)
                    for stream in list(feed.streams.values())
                    if stream.key not in stored_keys
                ]
                self._phase = feed.phase or (stored.phase if stored else "") or "Pending"
                complete = bool(stored and stored.complete)
                yield from self._entry_frames(
                    entries, "database" if complete else "kubernetes", complete
                )
                return complete
        except StoreUnavailable:
            if started or self.cluster_view is None:
                raise
        log.warning("database unavailable, tail of %s starts from Kubernetes", self.task_id)
        yield from self._cluster_snapshot()
        return False

    def _cluster_snapshot(self):
        view = self.cluster_view(self.task_id, degraded="database")
        self._phase = view.phase
        entries = [
            (e.log, e.phase, self.offsets.get(e.log.key, 0), e.read(self.offsets.get(e.log.key, 0)))
            for e in view.entries
        ]
        yield from self._entry_frames(entries, "kubernetes", False)

    def _stored_entry(self, session, row, unsaved, phases) -> "Entry":
        key = row.log.key
        start = self.offsets.get(key, 0)
        pieces = itertools.chain(
            repository.read_log(session, row.log_id, start) if start < row.length else (),
            _unsaved_from(unsaved.get(key, ()), max(start, row.length)),
        )
        return row.log, phases.get(key) or row.phase, start, pieces

    def _feed_entry(self, stream, unsaved) -> "Entry":
        start = self.offsets.get(stream.key, 0)
        return stream.log, stream.phase, start, _unsaved_from(unsaved.get(stream.key, ()), start)

    def _entry_frames(self, entries, source: str, complete: bool):
        """The snapshot frame with the first pieces of the logs (about `frame_chars` in all), then appends
        for the rest of each backlog, one log after the other: memory stays bounded however many logs."""
        logs, rests, budget = [], [], self.frame_chars
        for log_, phase, start, pieces in entries:
            pieces = _pieces_of(pieces, self.frame_chars)
            first = next(pieces, "") if budget > 0 else ""
            budget -= len(first)
            self.offsets[log_.key] = start + len(first)
            logs.append(frames.snapshot_entry(log_, phase, start, first))
            rests.append((log_, pieces))
        yield frames.snapshot(
            self.task_id, self._phase, source, complete, logs, encode_cursor(self.offsets)
        )
        for log_, pieces in rests:
            for piece in pieces:
                start = self.offsets[log_.key]
                self.offsets[log_.key] = start + len(piece)
                yield frames.append(log_, start, piece, encode_cursor(self.offsets))
        self._subscribed()[1].offsets = dict(self.offsets)

    def _read_range(self, key: str, start: int, end: int) -> str:
        """A stream's text between two offsets, from the journal and the feed's unsaved text."""
        feed = self._subscribed()[0].feed
        text = ""
        log_id = feed.streams[key].log_id
        if log_id is not None:
            with self.engine.units() as uow:
                for piece in repository.read_log(uow.session, log_id, start):
                    text += piece
                    if len(text) >= end - start:
                        break
        if len(text) < end - start:
            text += feed.read_pending(key, start + len(text), end)
        if len(text) < end - start:
            raise StoreUnavailable(f"text {start}-{end} of {key} is not available here")
        return text[: end - start]


Entry = tuple[
    LogId, str, int, Iterator[str]
]  # a log, its phase, where the client's text starts, the text


def _unsaved_from(pieces, start: int):
    for piece_start, text in pieces:
        if piece_start + len(text) > start:
            yield text[max(0, start - piece_start) :]


def _pieces_of(pieces, size: int):
    """Re-cut a stream of text pieces into pieces of at most `size` characters (dropping empty ones)."""
    buffer = ""
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield buffer[:size]
            buffer = buffer[size:]
    if buffer:
        yield buffer
