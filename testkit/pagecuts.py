"""Pages cut at exact places, as the live capture leaves them: each journal flush is paginated on its
own, so its last page ends wherever the flush did, inside a line as often as not (`pages.paginate`
alone would end a page after a newline where it can)."""

from collections.abc import Sequence

from tasklogs.logstream import START, Position
from tasklogs.pages import LogEnd, Page, line_starts, paginate


def cut_every(
    text: str,
    stamps: Sequence[int],
    page_chars: int,
    end: LogEnd | None = None,
    position: Position = START,
) -> list[Page]:
    """`text` (continuing a log that ends at `end`) as pages of exactly `page_chars` characters (the
    last one fewer), `stamps` the timestamps of the lines that start in it."""
    pages: list[Page] = []
    taken, end = 0, end or LogEnd()
    for start in range(0, len(text), page_chars):
        piece = text[start : start + page_chars]
        count = line_starts(piece, end.ends_line)
        (page,) = paginate(end, piece, stamps[taken : taken + count], position, page_chars)
        pages.append(page)
        taken += count
        end = page.end
    return pages
