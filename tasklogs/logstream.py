"""Turning a kubelet log stream read with `timestamps=true` into log text, exactly once.

Every byte of a container's log has a key: (timestamp of its line, index of the line among the lines
with that same timestamp, offset of the byte in the line). A `Position` is the key of the next byte
to take. Because `sinceTime` is cut to whole seconds, a re-opened stream repeats lines; the parser
skips every byte whose key is below its position, so a resumed capture neither loses nor repeats.

Text is decoded as UTF-8 with U+FFFD for invalid bytes; NUL (which PostgreSQL `text` cannot hold)
also becomes U+FFFD. A multibyte character split across reads is kept whole.
"""

import calendar
import codecs
from dataclasses import dataclass

REPLACEMENT = "\ufffd"
_MAX_PREFIX = 40  # "2026-01-02T03:04:05.123456789Z" is 30 bytes; anything longer is not a timestamp


class UnreadableLog(ValueError):
    """A line of the stream does not start with a kubelet timestamp."""


@dataclass(frozen=True)
class Position:
    """Where a capture stands: the next byte to take is line `seen` (0-based among the lines stamped
    `since`), byte `partial` of it. `restarts` is the container restart count the capture has read up to."""

    since: str = ""
    seen: int = 0
    partial: int = 0
    restarts: int = 0

    def encode(self) -> str:
        """`since|seen|partial|restarts`, for a text column."""
        return f"{self.since}|{self.seen}|{self.partial}|{self.restarts}"

    @classmethod
    def decode(cls, text: str | None) -> "Position":
        if not text:
            return cls()
        since, seen, partial, restarts = text.split("|")
        return cls(since, int(seen), int(partial), int(restarts))

    @property
    def since_time(self) -> str | None:
        """`sinceTime` for re-opening the stream: the line's second (the apiserver truncates anyway)."""
        return self.since[:19] + "Z" if self.since else None


START = Position()  # where a capture that has taken nothing stands

_second_cache: dict[bytes, int] = {}


def timestamp_nanos(stamp: bytes) -> int:
    """Nanoseconds since the epoch of an RFC3339 UTC timestamp such as 2026-01-02T03:04:05.123456789Z."""
    if len(stamp) < 20 or stamp[-1:] != b"Z" or stamp[10:11] != b"T":
        raise UnreadableLog(f"not a timestamp: {stamp[:_MAX_PREFIX]!r}")
    second = stamp[:19]
    seconds = _second_cache.get(second)
    if seconds is None:
        try:
            seconds = calendar.timegm(
                (
                    int(second[0:4]),
                    int(second[5:7]),
                    int(second[8:10]),
                    int(second[11:13]),
                    int(second[14:16]),
                    int(second[17:19]),
                )
            )
        except ValueError:
            raise UnreadableLog(f"not a timestamp: {stamp!r}") from None
        if len(_second_cache) > 4096:
            _second_cache.clear()
        _second_cache[second] = seconds
    fraction = stamp[20:-1] if stamp[19:20] == b"." else b""
    if not fraction.isdigit() and fraction:
        raise UnreadableLog(f"not a timestamp: {stamp!r}")
    return seconds * 1_000_000_000 + int((fraction + b"000000000")[:9] or b"0")


class LogParser:
    """Feed it the raw bytes of one stream; it returns the text not taken before `position`."""

    def __init__(self, position: Position = START):
        self._start = position
        self._target = (
            timestamp_nanos(position.since.encode()) if position.since else -1,
            position.seen,
            position.partial,
        )
        self._restarts = position.restarts
        self._head = b""  # start of a line, until its timestamp prefix is complete
        self._stamp = ""  # timestamp of the current (or last) line of this stream
        self._nanos = -1
        self._index = 0  # index of the current line among the lines stamped `_stamp`
        self._offset = 0  # bytes of the current line passed (taken or skipped)
        self._in_line = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._line_stamp: int | None = (
            None  # a line whose first byte was taken, until its text appears
        )
        self.stamps: list[
            int
        ] = []  # timestamps of the lines that start in the text returned so far

    @property
    def position(self) -> Position:
        """The key of the next byte to take, counting only bytes whose text has been returned."""
        offset = self._offset - len(self._decoder.getstate()[0])
        if (self._nanos, self._index, offset) < self._target:
            return Position(
                self._start.since, self._start.seen, self._start.partial, self._restarts
            )
        return Position(self._stamp, self._index, offset, self._restarts)

    def feed(self, data: bytes) -> str:
        """Text from this piece of the stream that was not taken before."""
        pieces = []
        start = 0
        while start < len(data):
            if not self._in_line:
                start = self._begin_line(data, start)
                continue
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end + 1
            pieces.append(self._take(data[start:stop]))
            start = stop
        return "".join(pieces)

    def take_stamps(self) -> list[int]:
        """The timestamps (nanoseconds) of the lines that started in the text returned since the last
        call, in order."""
        stamps, self.stamps = self.stamps, []
        return stamps

    def finish(self) -> str:
        """The container's log has ended: return what the decoder still held."""
        self._head = b""
        text = self._stamped(self._clean(self._decoder.decode(b"", final=True)))
        self._decoder.reset()
        return text

    def _begin_line(self, data: bytes, start: int) -> int:
        room = _MAX_PREFIX - len(self._head)
        space = data.find(b" ", start, start + room)
        if space < 0:
            if len(data) - start >= room:
                raise UnreadableLog(
                    f"line without a timestamp: {(self._head + data[start:])[:_MAX_PREFIX]!r}"
                )
            self._head += data[start:]
            return len(data)
        stamp, self._head = self._head + data[start:space], b""
        nanos = timestamp_nanos(stamp)
        if nanos != self._nanos:
            self._index = 0
        self._nanos, self._stamp = nanos, stamp.decode("ascii")
        self._offset = 0
        self._in_line = True
        return space + 1

    def _take(self, piece: bytes) -> str:
        ends_line = piece.endswith(b"\n")
        content = len(piece) - ends_line
        skip = self._skip(len(piece))
        if skip == 0 and self._offset == 0:
            self._line_stamp = self._nanos  # the line's first byte is taken here
        text = self._clean(self._decoder.decode(piece[skip:])) if skip < len(piece) else ""
        text = self._stamped(text)
        self._offset += content
        if ends_line:
            self._decoder.reset()
            self._index += 1
            self._offset = 0
            self._in_line = False
        return text

    def _stamped(self, text: str) -> str:
        """`text`, noting the timestamp of the line it starts (if it starts one)."""
        if text and self._line_stamp is not None:
            self.stamps.append(self._line_stamp)
            self._line_stamp = None
        return text

    def _skip(self, length: int) -> int:
        """How many bytes at the start of this piece were taken before (a line's newline is its last byte)."""
        target_nanos, target_index, target_offset = self._target
        if (self._nanos, self._index) < (target_nanos, target_index):
            return length
        if (self._nanos, self._index) == (target_nanos, target_index):
            return min(length, max(0, target_offset - self._offset))
        return 0

    @staticmethod
    def _clean(text: str) -> str:
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
