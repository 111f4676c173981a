"""A task's live log in this process, fanned out to its viewers.

A `Feed` numbers every change of its task (new text, a phase, the end) and encodes each as a JSON
frame once; every `Viewer` that is in step with the feed sends that shared frame as it is. A viewer
that is not in step (it resumed from a cursor, or it missed events) gets its frames rebuilt from
offsets, so that it never sees a character twice or misses one.

Text not yet committed to the journal stays in `unsaved` until the writer commits it, so the
database plus `unsaved` always hold everything the feed has published.
"""
import json
import threading
from collections import deque
from dataclasses import dataclass, field

from ..cursor import encode_cursor


@dataclass
class StreamInfo:
    """One container log of the task as the feed knows it; `end` counts the characters published."""
    key: str
    node: str
    pod: str
    container: str
    phase: str
    end: int = 0


@dataclass
class Event:
    version: int
    kind: str                  # "append", "phase", "complete", "gone"
    frame: str                 # the JSON frame for a viewer in step with the feed
    key: str | None = None
    start: int = 0
    data: str = ""
    ends: dict = field(default_factory=dict)   # every stream's end after this event

    @property
    def end(self) -> int:
        return self.start + len(self.data)


def dumps(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class Feed:
    def __init__(self, task_id: str):
        self.task_id = task_id
        self.lock = threading.RLock()
        self.version = 0
        self.phase = ""
        self.complete = False
        self.streams: dict[str, StreamInfo] = {}
        self.unsaved: dict[str, deque] = {}   # key -> deque of (start, text), committed ones removed
        self.viewers: set["Viewer"] = set()
        self.changed = threading.Condition(self.lock)

    # --- what the capture (or the journal follower) reports ---

    def add_stream(self, info: StreamInfo) -> None:
        """Make a stream known (its `end` is where the store stands); known streams keep their end."""
        with self.lock:
            known = self.streams.get(info.key)
            if known is None:
                self.streams[info.key] = info
            elif info.end > known.end and not self.unsaved.get(info.key):
                known.end = info.end

    def append(self, key: str, data: str, start: int | None = None, keep: bool = True) -> Event | None:
        """Publish text of stream `key` beginning at `start` (default: its end); `keep` holds it for the writer.

        What the feed already published is trimmed off; text beyond a gap is refused (None)."""
        with self.lock:
            stream = self.streams[key]
            start = stream.end if start is None else start
            if start > stream.end or start + len(data) <= stream.end:
                return None
            data, start = data[stream.end - start:], stream.end
            stream.end += len(data)
            if keep:
                self.unsaved.setdefault(key, deque()).append((start, data))
            return self._publish("append", key, start, data, {
                "type": "append", "node": stream.node, "pod": stream.pod, "container": stream.container,
                "offset": start, "data": data})

    def set_phase(self, phase: str, key: str | None = None) -> Event | None:
        """Publish a phase change of the workflow (`key` None) or of one stream's node."""
        with self.lock:
            target = self.streams[key] if key else self
            if target.phase == phase:
                return None
            target.phase = phase
            node = self.streams[key].node if key else None
            return self._publish("phase", key, 0, "", {"type": "phase", "phase": phase, "node": node})

    def finish(self, phase: str) -> Event | None:
        """The task ended and its final save ran: publish `complete` once."""
        with self.lock:
            if self.complete:
                return None
            self.complete, self.phase = True, phase
            return self._publish("complete", None, 0, "", {"type": "complete", "phase": phase})

    def saved(self, key: str, end: int) -> None:
        """The writer committed stream `key` up to `end`: forget that part of `unsaved`."""
        with self.lock:
            pieces = self.unsaved.get(key)
            while pieces and pieces[0][0] + len(pieces[0][1]) <= end:
                pieces.popleft()

    def unsaved_copy(self) -> dict[str, list[tuple[int, str]]]:
        with self.lock:
            return {key: list(pieces) for key, pieces in self.unsaved.items() if pieces}

    def ends(self) -> dict[str, int]:
        with self.lock:
            return {key: stream.end for key, stream in self.streams.items()}

    def _publish(self, kind, key, start, data, frame) -> Event:
        self.version += 1
        ends = {k: s.end for k, s in self.streams.items()}
        if kind == "append":
            frame["cursor"] = encode_cursor(ends)
        event = Event(self.version, kind, dumps(frame), key, start, data, ends)
        for viewer in list(self.viewers):
            viewer.offer(event)
        self.changed.notify_all()
        return event

    # --- viewers ---

    def subscribe(self, viewer: "Viewer") -> None:
        with self.lock:
            self.viewers.add(viewer)

    def unsubscribe(self, viewer: "Viewer") -> None:
        with self.lock:
            self.viewers.discard(viewer)
            self.changed.notify_all()


class SlowViewer(Exception):
    """The viewer's queue overflowed: it is closed and must resume with its cursor."""


class Viewer:
    """One WebSocket client of a feed: a bounded queue filled by the feed, drained by the client's sender."""

    def __init__(self, feed: Feed, offsets: dict[str, int], max_queue: int):
        self.feed = feed
        self.offsets = dict(offsets)
        self.max_queue = max_queue
        self.in_step_at = None   # feed version this viewer's offsets equal, or None
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

    def frames(self, event: Event, read_range) -> list[str]:
        """The frames this viewer must send for `event`: the shared one when in step, else rebuilt.

        `read_range(key, start, end)` returns the text of a stream between two offsets (for gaps)."""
        if self.in_step_at == event.version - 1:
            self.in_step_at = event.version
            if event.kind == "append":
                self.offsets[event.key] = event.end
            return [event.frame]
        frames = self._rebuilt(event, read_range)
        self.in_step_at = event.version if self.offsets == event.ends else None
        return frames

    def _rebuilt(self, event: Event, read_range) -> list[str]:
        if event.kind != "append":
            return [event.frame]
        seen = self.offsets.get(event.key, 0)
        if event.end <= seen:
            return []
        text = event.data[max(0, seen - event.start):]
        if event.start > seen:
            text = read_range(event.key, seen, event.start) + text
        self.offsets[event.key] = event.end
        stream = self.feed.streams[event.key]
        return [dumps({"type": "append", "node": stream.node, "pod": stream.pod, "container": stream.container,
                       "offset": event.end - len(text), "data": text, "cursor": encode_cursor(self.offsets)})]
