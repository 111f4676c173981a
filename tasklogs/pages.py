"""The page index: a log's text as bounded pages, each knowing its lines and their capture timestamps.

A *line* is the text up to and including a newline; a log's last line may lack one. Lines are numbered
from 1. A page may begin or end inside a line: `first_line` is the line of its first character,
`last_line` the line of its last, `ends_line` says whether its text ends with a newline, and `stamps`
holds the capture timestamp (nanoseconds since the epoch, from the kubelet's `timestamps=true` prefix)
of every line that starts in it. `first_ts`/`last_ts` are the timestamps of the lines of its first and
last character, so a page that starts inside a line still knows that line's time.

Everything here is pure: the store writes and reads `Page`s, the line API (`linequery`) reads lines.
"""

import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from .logstream import START, Position

PAGE_CHARS = 128 * 1024  # characters of text in one page at most


def encode_stamps(stamps: Iterable[int]) -> bytes:
    """Timestamps as the store keeps them: little-endian signed 64-bit integers, one after another."""
    packed = array("q", stamps)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def decode_stamps(data: bytes | None) -> tuple[int, ...]:
    packed = array("q")
    packed.frombytes(data or b"")
    if sys.byteorder == "big":
        packed.byteswap()
    return tuple(packed)


@dataclass(frozen=True)
class LogEnd:
    """Where a stored log ends: what the next page continues from."""

    offset: int = 0  # characters
    byte: int = 0  # UTF-8 bytes
    last_line: int = 0  # the line of the last character (0: empty log)
    ends_line: bool = (
        True  # the text ends with a newline (or is empty): the next character starts a line
    )
    last_ts: int = 0

    @property
    def lines(self) -> int:
        """How many lines the log has (a last line without a newline counts)."""
        return self.last_line

    @property
    def next_line(self) -> int:
        """The number of the line the next character belongs to."""
        return self.last_line + 1 if self.ends_line else self.last_line


@dataclass(frozen=True)
class Page:
    """One page of a log (see the module docstring)."""

    start_offset: int
    start_byte: int
    first_line: int
    last_line: int
    ends_line: bool
    first_ts: int
    last_ts: int
    stamps: tuple[int, ...]
    text: str
    position: Position = START

    @property
    def end_offset(self) -> int:
        return self.start_offset + len(self.text)

    @property
    def byte_count(self) -> int:
        return len(self.text.encode("utf-8", "surrogatepass"))

    @property
    def starts_line(self) -> bool:
        """Whether the page's first character begins a line (else it continues `first_line`)."""
        return len(self.stamps) > self.text.count("\n") - self.ends_line

    @property
    def end(self) -> LogEnd:
        return LogEnd(
            self.end_offset,
            self.start_byte + self.byte_count,
            self.last_line,
            self.ends_line,
            self.last_ts,
        )


def advance(end: LogEnd, text: str) -> LogEnd:
    """Where a log that ends at `end` ends once `text` follows (timestamps aside)."""
    if not text:
        return end
    ends_line = text.endswith("\n")
    last_line = end.next_line + text.count("\n") - int(ends_line)
    return LogEnd(
        end.offset + len(text),
        end.byte + len(text.encode("utf-8", "surrogatepass")),
        last_line,
        ends_line,
        end.last_ts,
    )


def line_starts(text: str, starts_line: bool) -> int:
    """How many lines start in `text` (given whether its first character begins a line)."""
    if not text:
        return 0
    return int(starts_line) + text.count("\n") - int(text.endswith("\n"))


def paginate(
    end: LogEnd,
    text: str,
    stamps: Iterable[int],
    position: Position = START,
    page_chars: int = PAGE_CHARS,
    default_ts: int | None = None,
) -> list[Page]:
    """Cut `text`, which continues a log that ends at `end`, into pages of at most `page_chars`
    characters, each ending after a newline where one is in its second half (`page_cuts`). `stamps`
    are the timestamps of the lines that start in `text`; missing ones (text stored without
    timestamps) are `default_ts`, else the last known timestamp. Every page carries `position` (where
    the capture stood after the whole text)."""
    stamps = list(stamps)
    pages = []
    for start, stop in page_cuts(text, page_chars):
        piece = text[start:stop]
        count = line_starts(piece, end.ends_line)
        taken, stamps = stamps[:count], stamps[count:]
        fill = default_ts if default_ts is not None else (taken[-1] if taken else end.last_ts)
        taken += [fill] * (count - len(taken))
        page = _page(end, piece, tuple(taken), position)
        pages.append(page)
        end = page.end
    return pages


def page_cuts(text: str, page_chars: int = PAGE_CHARS) -> Iterator[tuple[int, int]]:
    """The (start, stop) of each page of `text`: `page_chars` characters, or fewer so that the page
    ends with a line, when a newline is in its second half. A line then lies in one page unless it is
    longer than half a page, so a search finds any text of it (it looks in one page at a time)."""
    start = 0
    while start < len(text):
        stop = min(start + page_chars, len(text))
        if stop < len(text) and text[stop - 1] != "\n":
            newline = text.rfind("\n", start + page_chars // 2, stop)
            stop = newline + 1 if newline >= 0 else stop
        yield start, stop
        start = stop


def drop_head(text: str, stamps: list[int], count: int) -> tuple[str, list[int]]:
    """`text` without its first `count` characters, and `stamps` (the timestamps of the lines starting
    in `text`) without those of the lines that start in the part dropped."""
    if count <= 0:
        return text, stamps
    starts_line = len(stamps) > text.count("\n") - text.endswith("\n")
    dropped = int(starts_line) + text.count("\n", 0, count - 1)
    return text[count:], stamps[dropped:]


def _page(end: LogEnd, text: str, stamps: tuple[int, ...], position: Position) -> Page:
    first_line = end.next_line
    ends_line = text.endswith("\n")
    last_line = first_line + text.count("\n") - int(ends_line)
    first_ts = stamps[0] if end.ends_line and stamps else end.last_ts
    last_ts = stamps[-1] if stamps else first_ts
    return Page(
        end.offset,
        end.byte,
        first_line,
        last_line,
        ends_line,
        first_ts,
        last_ts,
        stamps,
        text,
        position,
    )


@dataclass(frozen=True)
class Line:
    """One line of a log: its number, capture timestamp, offset (characters) and text with its newline
    (a last line may have none)."""

    number: int
    ts: int
    offset: int
    text: str

    @property
    def content(self) -> str:
        """The text without its newline."""
        return self.text[:-1] if self.text.endswith("\n") else self.text


def lines_of(pages: Iterable[Page], first: int = 1) -> Iterator[Line]:
    """The lines numbered `first` and after that the pages hold, whole: a line cut by a page boundary is
    joined with its rest from the next page. Pages must be consecutive; when the first one starts inside
    a line, that line is given from the page on."""
    pending: list | None = None  # [number, ts, offset, pieces] of a line not ended yet
    for page in pages:
        text, stamps, position = page.text, iter(page.stamps), 0
        ts = page.first_ts
        if page.starts_line and pending is not None:  # the previous page's last line had no newline
            yield from _ended(pending, first)
            pending = None
        elif not page.starts_line and pending is None:
            pending = [page.first_line, page.first_ts, page.start_offset, []]
        number = (
            page.first_line if page.starts_line else page.first_line + 1
        )  # the next line to start
        while position < len(text):
            if pending is None:
                ts = next(stamps, ts)
                pending = [number, ts, page.start_offset + position, []]
                number += 1
            newline = text.find("\n", position)
            end = len(text) if newline < 0 else newline + 1
            pending[3].append(text[position:end])
            position = end
            if newline >= 0:
                yield from _ended(pending, first)
                pending = None
    if pending is not None:
        yield from _ended(pending, first)


def _ended(pending: list, first: int) -> Iterator[Line]:
    number, ts, offset, pieces = pending
    if number >= first:
        yield Line(number, ts, offset, "".join(pieces))


def from_line_start(pages: Iterable[Page]) -> Iterator[Page]:
    """The pages without the part of a line that began before the first of them: reading that starts
    at a page found through the index gives whole lines only."""
    pages = iter(pages)
    for page in pages:
        if page.starts_line:
            yield page
            break
        newline = page.text.find("\n")
        if newline < 0 or newline == len(page.text) - 1:
            continue  # the whole page belongs to that earlier line
        head = page.text[: newline + 1]
        yield Page(
            page.start_offset + len(head),
            page.start_byte + len(head.encode("utf-8", "surrogatepass")),
            page.first_line + 1,
            page.last_line,
            page.ends_line,
            page.stamps[0] if page.stamps else page.first_ts,
            page.last_ts,
            page.stamps,
            page.text[newline + 1 :],
            page.position,
        )
        break
    yield from pages


def with_position(pages: list[Page], position: Position) -> list[Page]:
    """The same pages, the last one carrying `position`."""
    return pages[:-1] + [replace(pages[-1], position=position)] if pages else pages
