"""One log's lines as a tail sees them: the stored pages, then the feed's unsaved text.

A tail asks where a line starts (`?tail=N`), which line an offset is in (the snapshot's `line`
field), and, in `?format=lines`, the lines themselves with their capture timestamps. Stored pages
are read a few at a time, each batch in a unit of work of its own; the unsaved text (captured in
this process and not yet committed) carries its timestamps in the feed.
"""

from collections.abc import Generator, Iterable, Iterator

from ..pages import Line, LogEnd, Page, drop_head, lines_of, paginate
from ..store import repository
from ..store.unit_of_work import UnitsOfWork
from .feed import Feed, Unsaved

BATCHES = (2, 8)  # pages read per unit of work: few for the first (a tail, a line), then more
TEXT_BATCH = 16  # pages' text read per unit of work by a catch-up (at most about 2 MiB)


def stored_pages(
    units: UnitsOfWork, log_id: int, start: int, stop: int | None = None
) -> Iterator[Page]:
    """A log's stored pages from the one holding character `start` (up to offset `stop`), read a few
    at a time, each batch in a short unit of work: no connection is held between batches."""
    batch = BATCHES[0]
    while stop is None or start < stop:
        with units() as uow:
            pages = repository.read_pages(uow.session, log_id, start, batch)
        yield from pages
        if len(pages) < batch:
            return
        start, batch = pages[-1].end_offset, BATCHES[1]


def stored_texts(units: UnitsOfWork, log_id: int, start: int, stop: int) -> Iterator[str]:
    """A log's stored text from character `start` up to `stop` (never past it, even if the log grew),
    a page at a time, TEXT_BATCH pages per unit of work: memory stays bounded and no connection is held
    while the caller sends. Ends early where the stored text ends."""
    while start < stop:
        with units() as uow:
            texts = repository.read_texts(uow.session, log_id, start, TEXT_BATCH)
        for page_start, text in texts:
            if page_start >= stop:  # committed after `stop` was read; `stop - page_start` < 0 would
                return  # cut the page's tail off and send the rest as the text at `start`
            piece = text[max(0, start - page_start) : stop - page_start]
            if piece:
                yield piece
                start += len(piece)
        if len(texts) < TEXT_BATCH:
            return


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
