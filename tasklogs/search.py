"""Search across tasks: which stored lines hold a literal substring, newest first.

The store finds the candidate pages (a trigram index on PostgreSQL, a LIKE scan on SQLite) in
`last_ts` order, newest first; here a page is cut into lines and the lines holding the text are kept.
A line cut by a page boundary is marked `cut`: the service reads it whole from the store. `Ranking`
keeps the newest `limit` matches and says when no page still to read can hold a newer one.

Everything here is pure: parsing the request, matching one page, ranking the matches.
"""

import heapq
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .errors import InvalidRequest
from .linequery import _boolean, _integer, _time
from .pages import Page

MIN_TEXT = 3  # characters: the trigram index needs three
MAX_TEXT = 1000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
SEARCH_PARAMETERS = frozenset({"q", "ignore_case", "namespace", "since", "until", "limit"})
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class SearchQuery:
    """`text` a literal substring of a line; `since <= ts < until` (nanoseconds) on its timestamp."""

    text: str
    ignore_case: bool = False
    namespace: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int = DEFAULT_LIMIT

    @property
    def needle(self) -> str:
        """What is looked for in a line as `holds` sees it."""
        return self.text.lower() if self.ignore_case else self.text

    def holds(self, line: str) -> bool:
        """Whether the line (without its newline) holds the text."""
        return self.needle in (line.lower() if self.ignore_case else line)

    def in_time(self, ts: int) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)


def parse_search_query(args: Mapping[str, str]) -> SearchQuery:
    """The search parameters of a request; InvalidRequest naming the parameter for anything wrong."""
    text = args.get("q")
    if text is None or not MIN_TEXT <= len(text) <= MAX_TEXT:
        got = "nothing" if text is None else f"{len(text)} characters"
        raise InvalidRequest(
            f"q must be a text of {MIN_TEXT} to {MAX_TEXT} characters to look for, got {got}"
        )
    if "\n" in text or "\r" in text:
        raise InvalidRequest("q must not hold a line break: a search matches within one line")
    if "\x00" in text:
        raise InvalidRequest("q must not hold a NUL character: no stored line holds one")
    namespace = args.get("namespace")
    if namespace is not None and not _NAMESPACE.fullmatch(namespace):
        raise InvalidRequest(
            f"namespace must be a Kubernetes namespace name, got {namespace[:70]!r}"
        )
    query = SearchQuery(
        text=text,
        ignore_case=_boolean(args, "ignore_case"),
        namespace=namespace,
        since=_time(args, "since"),
        until=_time(args, "until"),
        limit=_integer(args, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT,
    )
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise InvalidRequest("since must be earlier than until")
    return query


@dataclass(frozen=True)
class Match:
    """One matching line of a page: its log's row id, number, timestamp and text without its newline.
    `cut`: the page holds only part of the line (the rest is in the page before or after)."""

    log_id: int
    number: int
    ts: int
    text: str
    cut: bool

    @property
    def key(self) -> tuple[int, int, int]:
        """The order of the answer, newest first: timestamp, then log, then line."""
        return (self.ts, self.log_id, self.number)


def page_matches(log_id: int, page: Page, query: SearchQuery) -> Iterator[Match]:
    """The lines of the page (in part, for a line cut by its boundaries) that hold the text and are in
    the query's time range."""
    pieces = page.text.split("\n")
    if pieces[-1] == "":
        pieces.pop()  # the text ends with a newline: nothing follows it
    ends_cut = not page.text.endswith("\n")
    for index, piece in enumerate(pieces):
        if not query.holds(piece):
            continue
        number = page.first_line + index
        ts = _stamp_of(page, number)
        if query.in_time(ts):
            head_cut = index == 0 and not page.starts_line
            cut = head_cut or (ends_cut and index == len(pieces) - 1)
            yield Match(log_id, number, ts, piece, cut)


def _stamp_of(page: Page, number: int) -> int:
    """The timestamp of line `number` of the page (as `pages.lines_of` gives it)."""
    index = number - page.first_line - (0 if page.starts_line else 1)
    if index < 0 or not page.stamps:
        return page.first_ts
    return page.stamps[min(index, len(page.stamps) - 1)]


class Ranking:
    """The newest `limit` matches seen so far, one per line."""

    def __init__(self, limit: int):
        self.limit = limit
        self._heap: list[tuple[tuple[int, int, int], Match]] = []  # the oldest kept on top
        self._kept: set[tuple[int, int]] = set()

    def offer(self, match: Match) -> None:
        line = (match.log_id, match.number)
        if line in self._kept:
            return  # a line cut by a page boundary, found in both pages
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, (match.key, match))
        elif match.key > self._heap[0][0]:
            _, dropped = heapq.heapreplace(self._heap, (match.key, match))
            self._kept.discard((dropped.log_id, dropped.number))
        else:
            return
        self._kept.add(line)

    def settled(self, newest_unread: int) -> bool:
        """Whether no page whose lines are all stamped `newest_unread` or earlier can change the answer."""
        return len(self._heap) >= self.limit and self._heap[0][0][0] > newest_unread

    def matches(self) -> list[Match]:
        """The kept matches, newest first."""
        return [match for _, match in sorted(self._heap, key=lambda kept: kept[0], reverse=True)]
