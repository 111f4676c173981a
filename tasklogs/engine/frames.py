"""The tail protocol's frames and close codes: one builder per frame type.

Frames are JSON text; `SharedFrame` is one that many viewers receive unchanged, encoded once.
"""

import json

from ..identity import LogId, TaskRef

# Close codes (RFC 6455 and the private 4000-4999 range).
NORMAL = 1000
GOING_AWAY = 1001
POLICY = 1008
INTERNAL = 1011
TRY_AGAIN = 1013
SLOW_CLIENT = 4008


def dumps(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def snapshot(
    task: TaskRef, phase: str, source: str, complete: bool, logs: list[dict], cursor: str
) -> str:
    """The first frame of a tail: each log's `{node, pod, container, phase, offset, logs}` so far."""
    return dumps(
        {
            "type": "snapshot",
            "namespace": task.namespace,
            "task_id": task.name,
            "phase": phase,
            "source": source,
            "complete": complete,
            "logs": logs,
            "cursor": cursor,
        }
    )


def snapshot_entry(log: LogId, phase: str, offset: int, text: str, line: int, lines: int) -> dict:
    """A log in the snapshot: its text from `offset`, where `line` begins; `lines` it has so far."""
    return {
        **log.fields(),
        "phase": phase,
        "offset": offset,
        "line": line,
        "lines": lines,
        "logs": text,
    }


def snapshot_lines_entry(log: LogId, phase: str, offset: int, line: int, lines: list[dict]) -> dict:
    """A log in the snapshot of the lines format: its whole lines from `offset` (line `line`)."""
    return {**log.fields(), "phase": phase, "offset": offset, "line": line, "lines": lines}


def append(log: LogId, offset: int, data: str, cursor: str) -> str:
    """New text of one log, beginning at character `offset`."""
    return dumps(
        {"type": "append", **log.fields(), "offset": offset, "data": data, "cursor": cursor}
    )


def lines(log: LogId, line: int, lines_: list[dict], cursor: str) -> str:
    """Whole lines of one log, `{ts, text}` each, the first being line number `line`."""
    return dumps({"type": "lines", **log.fields(), "line": line, "lines": lines_, "cursor": cursor})


def phase(phase_: str, node: str | None) -> str:
    """The workflow's phase (`node` None) or one node's."""
    return dumps({"type": "phase", "phase": phase_, "node": node})


def gone(log: LogId, message: str) -> str:
    """The log's pod or text is gone: what was sent is everything there is."""
    return dumps({"type": "gone", **log.fields(), "message": message})


def complete(phase_: str) -> str:
    """The task ended and its final save ran: the last frame."""
    return dumps({"type": "complete", "phase": phase_})


def error(status: int, code: str, message: str) -> str:
    return dumps({"type": "error", "status": status, "error": code, "message": message})


class SharedFrame:
    """A text frame many clients receive unchanged: JSON-encoded once, and its wire bytes (an unmasked,
    final, uncompressed text frame, valid with or without permessage-deflate) built once on first send."""

    __slots__ = ("text", "_wire")

    def __init__(self, text: str):
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            payload = self.text.encode("utf-8")
            size = len(payload)
            if size < 126:
                header = bytes((0x81, size))
            elif size < 1 << 16:
                header = bytes((0x81, 126)) + size.to_bytes(2, "big")
            else:
                header = bytes((0x81, 127)) + size.to_bytes(8, "big")
            self._wire = header + payload
        return self._wire
