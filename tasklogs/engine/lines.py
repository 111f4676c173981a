"""One log's lines as a tail sees them: the stored pages, then the feed's unsaved text.

A tail asks where a line starts (`?tail=N`), which line an offset is in (the snapshot's `line`
field), and, in `?format=lines`, the lines themselves with their capture timestamps. Stored pages
are read a few at a time, each batch in a unit of work of its own; the unsaved text (captured in
this process and not yet committed) carries its timestamps in the feed.
"""

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime
from typing import cast

from ..pages import PAGE_CHARS, Line, LogEnd, Page, drop_head, lines_of, paginate
from ..store import repository
from ..store.unit_of_work import UnitsOfWork
from .feed import Feed, Unsaved

BATCHES = (2, 8)  # pages read per unit of work: few for the first (a tail, a line), then more
CATCH_UP_STRETCH = 16 * PAGE_CHARS  # characters of a catch-up's text read per unit of work (2 MiB)


def stored_pages(
    units: UnitsOfWork,
    log_id: int,
    start: int,
    stop: int | None = None,
    created: datetime | None = None,
) -> Iterator[Page]:
    """A log's stored pages from the one holding character `start` (up to offset `stop`), read a few
    at a time, each batch in a short unit of work: no connection is held between batches. `created`:
    the log row's `created_at`, to read in its partition alone."""
    batch = BATCHES[0]
    while stop is None or start < stop:
        with units() as uow:
            pages = repository.read_pages(uow.session, log_id, start, batch, created)
        yield from pages
        if len(pages) < batch:
            return
        start, batch = pages[-1].end_offset, BATCHES[1]


def stored_texts(units: UnitsOfWork, log_id: int, start: int, stop: int) -> Iterator[str]:
    """A log's stored text from character `start` up to `stop` (never past it, even if the log grew),
    a catch-up's way: one stretch of CATCH_UP_STRETCH characters at a time. Ends early where the stored
    text ends."""
    return StoredText(units, log_id).texts(start, stop)


class StoredText:
    """A log's stored text, in pieces of at most a page, read in stretches of `stretch` characters,
    each in a short unit of work of its own: memory stays bounded and no connection is held while the
    caller sends. With `ahead`, that many further stretches are read meanwhile (each on a thread, a
    greenlet under gevent, on a connection of its own: PostgreSQL reads the next ones while the caller
    sends this one). `created` (the log row's `created_at`) lets each read look in the log's partition
    alone.

    A read ends where the stored text ends: in the first stretch whose pages stop short of its end. If
    the pages changed between two stretches (a final save merged them) and the next one starts past
    the text sent, the read starts again from there."""

    def __init__(
        self,
        units: UnitsOfWork,
        log_id: int,
        created: datetime | None = None,
        stretch: int = CATCH_UP_STRETCH,
        ahead: int = 0,
    ):
        if stretch < PAGE_CHARS:  # then every stretch but past the end has a page starting in it
            raise ValueError(
                "a stretch must be at least a page long: one without pages ends a read"
            )
        self.units, self.log_id, self.created = units, log_id, created
        self.stretch, self.ahead = stretch, ahead

    def texts(self, start: int, stop: int | None = None) -> Iterator[str]:
        """The text from character `start` to the end (or to `stop`)."""
        return cast(Iterator[str], self._pieces(start, stop, utf8=False))

    def utf8(self, start: int) -> Iterator[bytes]:
        """The text from character `start` to the end as UTF-8: from PostgreSQL, the bytes it sent (a
        download's text is never decoded and encoded again)."""
        return cast(Iterator[bytes], self._pieces(start, None, utf8=True))

    def _read(self, low: int, holding: bool, utf8: bool) -> tuple[int, Callable[[], list]]:
        """(where the stretch from `low` ends, a call that gives its pages): already under way on a
        thread of its own when reading ahead."""

        def pages() -> list:
            with self.units() as uow:
                return repository.read_stretch(
                    uow.session, self.log_id, low, low + self.stretch, holding, self.created, utf8
                )

        return low + self.stretch, _Prefetch(pages).result if self.ahead else pages

    def _pieces(self, start: int, stop: int | None, utf8: bool) -> Iterator[str | bytes]:
        position, restarted = start, False
        pending = deque([self._read(start, True, utf8)])
        while pending:
            high, result = pending.popleft()
            while len(pending) < self.ahead:
                low = pending[-1][0] if pending else high
                if stop is not None and low >= stop:
                    break
                pending.append(self._read(low, False, utf8))
            for page_start, page_end, text in result():
                if stop is not None and page_start >= stop:
                    return  # committed after `stop` was read: never past it
                if page_start > position:  # the pages changed under the read: again from here
                    if restarted:
                        return
                    pending, restarted = deque([self._read(position, True, utf8)]), True
                    break
                if page_end <= position:
                    continue
                end = page_end if stop is None else min(page_end, stop)
                if page_start < position or end < page_end:
                    text = _cut(text, position - page_start, end - page_start)
                yield text
                position = end
            else:
                restarted = False
                if position < high or (stop is not None and position >= stop):
                    return  # the stored text ends in this stretch, or `stop` is reached
                if not pending:
                    pending.append(self._read(high, False, utf8))


def _cut(text: str | bytes, start: int, end: int) -> str | bytes:
    """Characters [start, end) of a page's text (as UTF-8 again if it came so)."""
    if isinstance(text, bytes):
        return text.decode("utf-8", "surrogatepass")[start:end].encode("utf-8", "surrogatepass")
    return text[start:end]


class _Prefetch:
    """One read run on a thread of its own (a greenlet under gevent); `result()` waits for it and
    raises what it raised."""

    def __init__(self, read: Callable[[], list]):
        self._value: list = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(read,), daemon=True)
        self._thread.start()

    def _run(self, read: Callable[[], list]) -> None:
        try:
            self._value = read()
        except BaseException as error:  # noqa: BLE001 - handed to the reader, raised there
            self._error = error

    def result(self) -> list:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def lines_from(lines: Iterable[Line], start: int) -> Iterator[Line]:
    """The lines from character `start` on: a line that `start` falls inside is cut there."""
    for line in lines:
        if line.offset >= start:
            yield line
        elif line.offset + len(line.text) > start:
            yield Line(line.number, line.ts, start, line.text[start - line.offset :])


class LogLines:
    """The lines of one stream of a feed."""

    def __init__(self, units: UnitsOfWork, feed: Feed, key: str):
        self.units, self.feed, self.key = units, feed, key

    def pages(self, start: int) -> Iterator[Page]:
        """The pages holding character `start` and after: stored ones, then the unsaved text.

        The unsaved text is taken *before* the store is read: the journal writer forgets unsaved text
        only after committing it, so whatever the feed held then is in the store read after it, or in
        the pieces taken; the store read later may reach further (its pages win), never less far."""
        log_id = self.feed.streams[self.key].log_id
        pieces, end = self.feed.unsaved_pieces(self.key), LogEnd()
        if log_id is not None:
            end = yield from self._stored(log_id, start)
        for page in self._unsaved(end, pieces):
            if page.end_offset > start:
                yield page

    def _stored(self, log_id: int, start: int) -> Generator[Page, None, LogEnd]:
        """The stored pages from the one holding `start`; returns where the stored text ends."""
        end = None
        for page in stored_pages(self.units, log_id, start):
            end = page.end
            yield page
        if end is not None:
            return end
        stored = self._stored_end()
        if stored.offset > start:  # committed between the two reads: pages hold `start` now (once
            return (yield from self._stored(log_id, start))  # committed, text stays: one more read)
        return stored  # `start` is at or past the stored end: the unsaved text continues it

    def _unsaved(self, end: LogEnd, pieces: list[Unsaved]) -> Iterator[Page]:
        """The unsaved text (`pieces`, the feed's) after `end` (where the stored text ends), as pages."""
        for piece in pieces:
            if piece.start + len(piece.text) <= end.offset or piece.start > end.offset:
                continue
            text, stamps = drop_head(piece.text, piece.stamps, end.offset - piece.start)
            for page in paginate(end, text, stamps):
                end = page.end
                yield page

    def lines(self, start: int) -> Iterator[Line]:
        """The lines from character `start` on (a line it falls inside is given from there on)."""
        return lines_from(lines_of(self.pages(start)), start)

    def line_at(self, offset: int) -> int:
        """The number of the line that character `offset` belongs to (the next line at the end)."""
        for page in self.pages(offset):
            return page.first_line + page.text.count("\n", 0, max(0, offset - page.start_offset))
        return self.end().next_line

    def tail_start(self, count: int) -> int:
        """The offset where the last `count` lines begin."""
        first = max(1, self.end().lines - count + 1)
        log_id = self.feed.streams[self.key].log_id
        start = 0
        if log_id is not None and first > 1:
            with self.units() as uow:
                start = repository.page_offset_of_line(uow.session, log_id, first) or 0
        for line in lines_of(self.pages(start)):
            if line.number >= first:
                return line.offset
        return self.end().offset

    def end(self) -> LogEnd:
        """Where the log ends: the stored text and then the unsaved one."""
        pieces = self.feed.unsaved_pieces(self.key)  # before the store: see `pages`
        end = self._stored_end()
        for page in self._unsaved(end, pieces):
            end = page.end
        return end

    def _stored_end(self) -> LogEnd:
        log_id = self.feed.streams[self.key].log_id
        if log_id is None:
            return LogEnd()
        with self.units() as uow:
            return repository.stored_end(uow.session, log_id)
