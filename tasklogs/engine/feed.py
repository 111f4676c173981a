"""A task's live log in this process, fanned out to its viewers.

A `Feed` numbers every change of its task (new text, a phase, the end) and encodes each as a JSON
frame once; every `Viewer` that is in step with the feed sends that shared frame as it is. A viewer
that is not in step (it resumed from a cursor, or it missed events) gets its frames rebuilt from
offsets, so that it never sees a character twice or misses one.

Text not yet committed to the journal stays in `unsaved` until the writer commits it, so the
database plus `unsaved` always hold everything the feed has published.
"""

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

from ..cursor import encode_cursor
from ..identity import LogId, TaskRef
from ..logstream import Position
from ..pages import drop_head
from . import frames
from .frames import SharedFrame


@dataclass
class StreamInfo:
    """One log of the task as the feed knows it; `end` counts the characters captured."""

    log: LogId
    phase: str
    end: int = 0
    log_id: int | None = None
    published: int = 0
    position: Position | None = None  # where the capture stands after `end`, if captured here

    @property
    def key(self) -> str:
        return self.log.key


@dataclass
class Event:
    version: int
    kind: str  # "append", "phase", "gone", "ended", "complete", "error"
    frame: SharedFrame  # the frame for every viewer in step with the feed
    key: str | None = None
    start: int = 0
    data: str = ""
    ends: dict = field(default_factory=dict)  # every stream's published end after this event

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class Unsaved(NamedTuple):
    """Captured text not yet committed: where it starts, the capture's position after it, and the
    timestamps of the lines starting in it."""

    start: int
    text: str
    position: Position | None
    stamps: list[int]


class Run(NamedTuple):
    """A stream's unsaved text in one piece, as the journal writer takes it."""

    key: str
    log_id: int
    start: int
    text: str
    position: Position | None
    stamps: list[int]


# (key, start, end) -> a stream's text between two offsets, in pieces of bounded size
ReadRange = Callable[[str, int, int], Iterable[str]]

FRAME_CHARS = 1 << 20  # characters of log text in one rebuilt frame at most (TASKLOGS_FRAME_CHARS)

MAX_RUN = 4 << 20  # characters of one stream written to the journal in one row at most


class Feed:
    """A task's live state in this process: streams, phases, text not yet saved or not yet published."""

    def __init__(
        self,
        task: TaskRef,
        coalesce: float = 0.0,
        on_unsaved=None,
        stopped: threading.Event | None = None,
    ):
        self.task = task
        self.coalesce = coalesce
        self._stopped = stopped or threading.Event()
        self._publisher: threading.Thread | None = None
        self.on_unsaved = on_unsaved or (lambda feed, size: None)
        self.lock = threading.RLock()
        self.version = 0
        self.phase = ""
        self.complete = False
        self.streams: dict[str, StreamInfo] = {}
        self.unsaved: dict[str, deque[Unsaved]] = {}  # text not yet committed, by stream key
        self.viewers: set[Viewer] = set()
        self._unpublished: dict[str, list[str]] = {}  # key -> text captured since the last publish
        self._pending = threading.Event()  # captured text waits to be published
        self.watched_elsewhere_until = (
            0.0  # monotonic time: other processes' viewers follow this feed's journal
        )

    def watched(self) -> bool:
        """Someone reads this feed live: viewers here, or viewers of other processes following its journal."""
        return bool(self.viewers) or self.watched_elsewhere()

    def watched_elsewhere(self) -> bool:
        return time.monotonic() < self.watched_elsewhere_until

    # --- streams ---

    def add_stream(self, info: StreamInfo) -> StreamInfo:
        """Make a stream known; a known one keeps its offsets (its metadata is refreshed)."""
        with self.lock:
            known = self.streams.setdefault(info.key, info)
            if known is info:
                info.published = info.end
            else:
                known.log_id = known.log_id or info.log_id
            return known

    def streams_without_rows(self) -> list[StreamInfo]:
        with self.lock:
            return [stream for stream in self.streams.values() if stream.log_id is None]

    def set_log_ids(self, ids: dict[str, int]) -> None:
        with self.lock:
            for key, log_id in ids.items():
                self.streams[key].log_id = log_id

    def log_ids(self) -> dict[str, int]:
        with self.lock:
            return {key: s.log_id for key, s in self.streams.items() if s.log_id is not None}

    def ends(self) -> dict[str, int]:
        with self.lock:
            return {key: stream.end for key, stream in self.streams.items()}

    # --- text ---

    def append(
        self,
        key: str,
        data: str,
        position: Position | None = None,
        start: int | None = None,
        keep: bool = True,
        stamps: list[int] | None = None,
    ) -> bool:
        """Take text of stream `key` beginning at `start` (default: its end); `stamps` are the capture
        timestamps of the lines starting in it. What the feed has already is trimmed off; text beyond a
        gap is refused (False). `keep` holds it for the journal writer."""
        with self.lock:
            stream = self.streams[key]
            start = stream.end if start is None else start
            if start > stream.end:
                return False
            if start + len(data) <= stream.end:
                return True
            data, stamps = drop_head(data, stamps or [], stream.end - start)
            self._take(stream, data, position, keep, stamps or [])
        if keep:
            self.on_unsaved(self, len(data))
        if not self.viewers:
            return True  # published when a viewer subscribes, if ever (the collector's: none)
        if self.coalesce:
            self._pending.set()
        else:
            self.publish_pending()
        return True

    def _take(
        self,
        stream: StreamInfo,
        data: str,
        position: Position | None,
        keep: bool,
        stamps: list[int],
    ) -> None:
        start, stream.end = stream.end, stream.end + len(data)
        if self.viewers:
            self._unpublished.setdefault(stream.key, []).append(data)
        else:  # nobody to send it to; a new viewer's snapshot has it
            stream.published = stream.end
        if position is not None:
            stream.position = position
        if keep:
            self.unsaved.setdefault(stream.key, deque()).append(
                Unsaved(start, data, position, stamps)
            )

    def read_pending(self, key: str, start: int, end: int) -> str:
        """Text of the stream between two offsets, from what is not yet saved ("" if not held here)."""
        with self.lock:
            pieces = [
                (u.start, u.text)
                for u in self.unsaved.get(key, ())
                if u.start < end and u.start + len(u.text) > start
            ]
        return "".join(text[max(0, start - s) : end - s] for s, text in pieces)

    def publish_pending(self) -> None:
        """Send viewers every stream's captured-but-unpublished text, one append per stream."""
        with self.lock:
            unpublished, self._unpublished = self._unpublished, {}
            for key, pieces in unpublished.items():
                stream = self.streams[key]
                data = "".join(pieces)
                start, stream.published = stream.published, stream.end
                self._publish(
                    "append",
                    stream.key,
                    start,
                    data,
                    partial(frames.append, stream.log, start, data),
                )

    def _run_publisher(self) -> None:
        """Publish captured text at most every `coalesce` seconds, so a burst of lines makes one frame."""
        while not self._stopped.is_set():
            if self._pending.wait(1.0):
                self._pending.clear()
                self._stopped.wait(self.coalesce)
                self.publish_pending()

    def has_unsaved(self) -> bool:
        with self.lock:
            return any(self.unsaved.values())

    def unsaved_runs(self, log_ids: dict[str, int]) -> list["Run"]:
        """Each stream's oldest unsaved text (up to MAX_RUN characters), for the journal writer."""
        with self.lock:
            runs = []
            for key, pieces in self.unsaved.items():
                if not pieces or key not in log_ids:
                    continue
                taken: list[Unsaved] = []
                size = 0
                for piece in pieces:
                    if taken and size + len(piece.text) > MAX_RUN:
                        break
                    taken.append(piece)
                    size += len(piece.text)
                runs.append(
                    Run(
                        key,
                        log_ids[key],
                        taken[0].start,
                        "".join(p.text for p in taken),
                        taken[-1].position,
                        [stamp for p in taken for stamp in p.stamps],
                    )
                )
            return runs

    def saved(self, key: str, end: int) -> int:
        """The journal holds stream `key` up to `end`: forget that part of `unsaved`; return its size."""
        freed = 0
        with self.lock:
            pieces = self.unsaved.get(key)
            while pieces and pieces[0].start + len(pieces[0].text) <= end:
                freed += len(pieces.popleft().text)
        return freed

    def unsaved_pieces(self, key: str) -> list[Unsaved]:
        """The stream's unsaved text, piece by piece, with the timestamps of its lines."""
        with self.lock:
            return list(self.unsaved.get(key, ()))

    def unsaved_copy(self) -> dict[str, list[tuple[int, str]]]:
        with self.lock:
            return {
                key: [(u.start, u.text) for u in pieces]
                for key, pieces in self.unsaved.items()
                if pieces
            }

    def state(self) -> tuple[int, dict, dict[str, str]]:
        """(version, unsaved text, phases) taken together, for a snapshot that later events continue."""
        with self.lock:
            phases = {key: stream.phase for key, stream in self.streams.items()}
            return self.version, self.unsaved_copy(), phases

    # --- phases and the end ---

    def set_phase(self, phase: str, key: str | None = None) -> None:
        """Publish a phase change of the workflow (`key` None) or of one stream's node."""
        with self.lock:
            target = self.streams[key] if key else self
            if target.phase == phase:
                return
            self.publish_pending()
            target.phase = phase
            node = self.streams[key].log.node if key else None
            self._publish("phase", key, 0, "", lambda cursor: frames.phase(phase, node))

    def gone(self, key: str, message: str) -> None:
        """The stream's pod or log is gone: what was captured is all there will be."""
        with self.lock:
            self.publish_pending()
            log = self.streams[key].log
            self._publish("gone", key, 0, "", lambda cursor: frames.gone(log, message))

    def end_stream(self, key: str) -> None:
        """The stream's container has ended and its whole log is captured: a last line without a
        newline is complete now."""
        with self.lock:
            self.publish_pending()
            self._publish("ended", key, 0, "", lambda cursor: "")

    def fail(self, status: int, code: str, message: str) -> None:
        """The task cannot be read now: its viewers get an error frame and close (they resume later)."""
        with self.lock:
            self.publish_pending()
            self._publish("error", None, 0, "", lambda cursor: frames.error(status, code, message))

    def finish(self, phase: str) -> None:
        """The task ended and its final save ran: publish `complete` once."""
        with self.lock:
            if self.complete:
                return
            self.publish_pending()
            self.phase = phase
            self.complete = True
            self._publish("complete", None, 0, "", lambda cursor: frames.complete(phase))

    def _publish(
        self, kind: str, key: str | None, start: int, data: str, build: Callable[[str], str]
    ) -> None:
        """Number the event; build its frame (given the cursor after it) once, for every viewer in step."""
        self.version += 1
        if not self.viewers:
            return  # nobody to send it to (a collector's capture): skip building the frame
        ends = {k: s.published for k, s in self.streams.items() if s.published}
        frame = build(encode_cursor(ends, self.log_ids()) if kind == "append" else "")
        event = Event(self.version, kind, SharedFrame(frame), key, start, data, ends)
        for viewer in list(self.viewers):
            viewer.offer(event)

    # --- viewers ---

    def subscribe(self, viewer: "Viewer") -> None:
        with self.lock:
            self.viewers.add(viewer)
            if (
                self.coalesce and self._publisher is None
            ):  # started by the first viewer, if one ever comes
                self._publisher = threading.Thread(
                    target=self._run_publisher, name=f"publish-{self.task}", daemon=True
                )
                self._publisher.start()

    def unsubscribe(self, viewer: "Viewer") -> None:
        with self.lock:
            self.viewers.discard(viewer)


class SlowViewer(Exception):
    """The viewer's queue overflowed: it is closed and must resume with its cursor."""


class Viewer:
    """One WebSocket client of a feed: a bounded queue filled by the feed, drained by the client's sender."""

    def __init__(
        self,
        feed: Feed,
        offsets: dict[str, int],
        max_queue: int,
        frame_chars: int = FRAME_CHARS,
    ):
        self.feed = feed
        self.offsets = dict(offsets)
        self.max_queue, self.frame_chars = max_queue, frame_chars
        self.in_step_at: int | None = None  # feed version this viewer's offsets equal, or None
        self.seen_version = 0  # phase events up to this version are already in the snapshot
        self._queue: deque[Event] = deque()
        self._ready = threading.Event()
        self.overflowed = False
        self.stopped = False

    def offer(self, event: Event) -> None:
        """Called by the feed under its lock: never blocks; a full queue marks the viewer as too slow."""
        if self.overflowed:
            return
        if len(self._queue) >= self.max_queue:
            self.overflowed = True
            self._queue.clear()
        else:
            self._queue.append(event)
        self._ready.set()

    def stop(self) -> None:
        """The client went away: wake the sender so it ends."""
        self.stopped = True
        self._ready.set()

    def wait(self, timeout: float) -> list[Event]:
        """Events queued since the last call (waiting up to `timeout` for one); SlowViewer on overflow."""
        if not self._queue and not self.stopped and not self.overflowed:
            self._ready.wait(timeout)
        self._ready.clear()
        if self.overflowed:
            raise SlowViewer(f"client too slow: more than {self.max_queue} frames queued")
        events = []
        while self._queue:
            events.append(self._queue.popleft())
        return events

    def frames(self, event: Event, read_range: ReadRange) -> Iterator[str | SharedFrame]:
        """The frames this viewer must send for `event`: the shared one when in step, else rebuilt.

        `read_range(key, start, end)` gives the text of a stream between two offsets (for gaps), in
        pieces; a rebuilt append is cut into frames of at most `frame_chars` characters."""
        if event.kind == "phase" and event.version <= self.seen_version:
            return
        if self.in_step_at == event.version - 1:
            self.in_step_at = event.version
            if event.key is not None and event.kind == "append":
                self.offsets[event.key] = event.end
            if event.kind != "ended":
                yield event.frame
            return
        if event.kind == "ended":
            return  # only the lines format has something to say (the last line, if unfinished)
        yield from self._rebuilt(event, read_range)
        in_step = {key: end for key, end in self.offsets.items() if end} == event.ends
        self.in_step_at = event.version if in_step else None

    def _rebuilt(self, event: Event, read_range: ReadRange) -> Iterator[str | SharedFrame]:
        if event.kind != "append" or event.key is None:
            yield event.frame
            return
        key, seen = event.key, self.offsets.get(event.key, 0)
        if event.end <= seen:
            return
        pieces: Iterable[str] = [event.data[max(0, seen - event.start) :]]
        if event.start > seen:  # a gap: read it a piece at a time, never whole
            pieces = itertools.chain(read_range(key, seen, event.start), pieces)
        log = self.feed.streams[key].log
        for piece in cut_pieces(pieces, self.frame_chars):
            start = self.offsets.get(key, 0)
            self.offsets[key] = start + len(piece)
            yield frames.append(log, start, piece, encode_cursor(self.offsets, self.feed.log_ids()))


def cut_pieces(pieces: Iterable[str], size: int) -> Iterator[str]:
    """Re-cut a stream of text pieces into pieces of at most `size` characters (dropping empty ones)."""
    buffer, held = [], 0
    for piece in pieces:
        at = 0
        while at < len(piece):
            taken = piece[at : at + size - held]
            at += len(taken)
            buffer.append(taken)
            held += len(taken)
            if held == size:
                yield "".join(buffer)
                buffer, held = [], 0
    if held:
        yield "".join(buffer)
