"""The line API: which lines of a log a request wants, and in which form.

Filters apply in this order: the time range (`since <= ts < until`), then `grep` (RE2: linear time, no
backreferences) with `context` lines around each match as `grep -C` gives them, then `from_line`/`limit`
or `tail`. Lines come from `pages.lines_of`; a grep without context or inversion scans whole pages at
once (the pattern runs over many lines per call), which is what makes it fast.
"""

import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import re2

from .errors import InvalidRequest
from .pages import Line, Page, lines_of

MAX_TAIL = 100_000
MAX_LIMIT = 10_000
MAX_CONTEXT = 100
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class LineQuery:
    tail: int | None = None
    since: int | None = None  # nanoseconds since the epoch
    until: int | None = None
    grep: str | None = None
    ignore_case: bool = False
    invert: bool = False
    context: int = 0
    from_line: int | None = None
    limit: int | None = None
    timestamps: bool = False

    @property
    def selects(self) -> bool:
        """Whether lines are picked out (else the whole text is served as it is stored)."""
        return any(
            value is not None
            for value in (self.tail, self.since, self.until, self.grep, self.from_line, self.limit)
        )

    @property
    def by_line(self) -> bool:
        """Whether the text must be cut into lines (picked out, or each one stamped)."""
        return self.selects or self.timestamps

    @property
    def first_line(self) -> int:
        """The first line number any output can hold (a match before it can still give context)."""
        return max(1, (self.from_line or 1) - self.context) if self.from_line else 1


@dataclass(frozen=True)
class Hit:
    """A line picked out; `match` says, with grep, whether it matched (False: a context line); `gap`
    that it does not follow the previous hit (text output then puts `--` before it, as grep does)."""

    line: Line
    match: bool | None = None
    gap: bool = False


LINE_PARAMETERS = frozenset(
    {
        "tail",
        "since",
        "until",
        "grep",
        "ignore_case",
        "invert",
        "context",
        "from_line",
        "limit",
        "timestamps",
    }
)


def parse_line_query(args: Mapping[str, str]) -> LineQuery:
    """The line parameters of a request; InvalidRequest naming the parameter for anything wrong."""
    query = LineQuery(
        tail=_integer(args, "tail", 1, MAX_TAIL),
        since=_time(args, "since"),
        until=_time(args, "until"),
        grep=args.get("grep"),
        ignore_case=_boolean(args, "ignore_case"),
        invert=_boolean(args, "invert"),
        context=_integer(args, "context", 0, MAX_CONTEXT) or 0,
        from_line=_integer(args, "from_line", 1, None),
        limit=_integer(args, "limit", 1, MAX_LIMIT),
        timestamps=_boolean(args, "timestamps"),
    )
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise InvalidRequest("since must be earlier than until")
    if query.tail is not None and (query.from_line is not None or query.limit is not None):
        raise InvalidRequest("tail cannot be combined with from_line or limit")
    if query.grep is None and ("ignore_case" in args or "invert" in args or "context" in args):
        raise InvalidRequest("ignore_case, invert and context need grep")
    if query.grep is not None:
        compile_pattern(query.grep, query.ignore_case)
    return query


def _integer(args: Mapping[str, str], name: str, low: int, high: int | None) -> int | None:
    raw = args.get(name)
    if raw is None:
        return None
    # ASCII digits only: int() would also take "1_0", " 5" and other scripts' digits
    value = int(raw) if _WHOLE_NUMBER.fullmatch(raw) else low - 1
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise InvalidRequest(f"{name} must be a whole number {bounds}, got {raw[:40]!r}")
    return value


def _boolean(args: Mapping[str, str], name: str) -> bool:
    raw = args.get(name, "false").lower()
    if raw not in _BOOLEANS:
        raise InvalidRequest(f"{name} must be true or false, got {raw[:40]!r}")
    return _BOOLEANS[raw]


def _time(args: Mapping[str, str], name: str) -> int | None:
    raw = args.get(name)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise InvalidRequest(
            f"{name} must be an RFC 3339 time such as 2026-01-02T03:04:05.123Z or "
            f"2026-01-02T05:04:05+02:00, got {raw[:60]!r}"
        ) from None


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (any number of fraction digits, `Z` or an
    offset); ValueError if it is not one."""
    text = text.strip()
    if len(text) < 20 or text[10] not in "Tt":
        raise ValueError(text)
    zone_at = max(text.rfind("+"), text.rfind("-"), text.upper().rfind("Z"))
    if zone_at < 19:
        raise ValueError(text)
    head, zone = text[:zone_at], text[zone_at:]
    whole, _, fraction = head.partition(".")
    if (fraction and not fraction.isdigit()) or len(whole) != 19:
        raise ValueError(text)
    moment = datetime.fromisoformat(whole + ("+00:00" if zone.upper() == "Z" else zone))
    if moment.tzinfo is None:
        raise ValueError(text)
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


_second_text: dict[int, str] = {}


def format_ts(nanos: int) -> str:
    """RFC 3339 with nine fraction digits, as `kubectl logs --timestamps` prints it."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    prefix = _second_text.get(seconds)
    if prefix is None:
        if len(_second_text) > 4096:
            _second_text.clear()
        prefix = _second_text[seconds] = datetime.fromtimestamp(seconds, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
    return f"{prefix}.{fraction:09d}Z"


def compile_pattern(pattern: str, ignore_case: bool, on_bytes: bool = False):
    """The RE2 pattern for `grep`, in multi-line mode (`^` and `$` are a line's start and end);
    InvalidRequest, with RE2's reason, for one it cannot compile."""
    options = re2.Options()
    options.log_errors = False  # the reason goes to the client, not to the server's log
    options.case_sensitive = not ignore_case
    try:
        source = "(?m)" + pattern
        return re2.compile(source.encode() if on_bytes else source, options)
    except Exception as error:  # noqa: BLE001 - re2 raises its own error class for any bad pattern
        reason = str(error).strip("b'\"").replace("(?m)" + pattern, pattern)
        raise InvalidRequest(
            f"grep is not a valid RE2 pattern ({reason}): {pattern[:100]!r}"
        ) from None


# --- selecting lines ---


def select(lines: Iterable[Line], query: LineQuery) -> Iterator[Hit]:
    """The lines the query picks out, in order."""
    hits: Iterator[Hit] = (Hit(line) for line in _in_time(lines, query))
    if query.grep is not None:
        hits = _grepped(hits, query)
    if query.tail is not None:
        return _tailed(hits, query.tail)
    return _paged(hits, query)


def _tailed(hits: Iterator[Hit], count: int) -> Iterator[Hit]:
    """The last `count` hits; the first of them follows nothing given, so it has no gap."""
    last = list(deque(hits, maxlen=count))
    if last and last[0].gap:
        last[0] = Hit(last[0].line, last[0].match, gap=False)
    return iter(last)


def _in_time(lines: Iterable[Line], query: LineQuery) -> Iterator[Line]:
    if query.since is None and query.until is None:
        yield from lines
        return
    since, until = query.since or 0, query.until
    for line in lines:
        if until is not None and line.ts >= until:
            return  # lines are in capture order: nothing later is in range
        if line.ts >= since:
            yield line


def _grepped(hits: Iterator[Hit], query: LineQuery) -> Iterator[Hit]:
    pattern = compile_pattern(query.grep or "", query.ignore_case)
    before: deque[Hit] = deque(maxlen=query.context)
    after, last = 0, 0  # context lines still owed after a match; number of the last line given
    for hit in hits:
        matched = (pattern.search(hit.line.content) is not None) != query.invert
        if matched:
            for kept in before:
                yield _hit(kept.line, False, last)
                last = kept.line.number
            before.clear()
            yield _hit(hit.line, True, last)
            last, after = hit.line.number, query.context
        elif after:
            yield _hit(hit.line, False, last)
            last, after = hit.line.number, after - 1
        elif query.context:
            before.append(hit)


def _hit(line: Line, match: bool, last: int) -> Hit:
    return Hit(line, match, gap=bool(last) and line.number != last + 1)


def _paged(hits: Iterator[Hit], query: LineQuery) -> Iterator[Hit]:
    given = 0
    for hit in hits:
        if query.from_line is not None and hit.line.number < query.from_line:
            continue
        if query.limit is not None and given >= query.limit:
            return
        given += 1
        yield hit


def select_pages(pages: Iterable[Page], query: LineQuery) -> Iterator[Hit]:
    """The lines of consecutive pages the query picks out: a grep without context or inversion scans
    the pages whole; anything else goes line by line."""
    if query.grep is not None and not query.context and not query.invert:
        hits = (Hit(line, True) for line in _in_time(grep_pages(pages, query), query))
        if query.tail is not None:
            return _tailed(hits, query.tail)
        return _paged(hits, query)
    return select(lines_of(pages, query.first_line), query)


def grep_pages(pages: Iterable[Page], query: LineQuery) -> Iterator[Line]:
    """The lines of consecutive pages that match `query.grep` (no context, no inversion), found by
    running the pattern over many whole lines at once; a line cut by a page boundary is joined first.
    Each candidate is checked on its own line, so a match spanning lines does not count."""
    pattern = compile_pattern(query.grep or "", query.ignore_case, on_bytes=True)
    carry: _Block | None = None
    for page in pages:
        block = _Block.of(page)
        if carry is not None:
            block = carry.joined(block)
        cut = block.text.rfind("\n") + 1
        yield from block.matches(pattern, cut)
        carry = block.rest(cut)
    if carry is not None:
        yield from carry.matches(pattern, len(carry.text))


@dataclass(frozen=True)
class _Block:
    """Text of consecutive lines: `number` and `offset` of its first line, a stamp for each line."""

    offset: int
    number: int
    stamps: list[int]
    text: str

    @classmethod
    def of(cls, page: Page) -> "_Block":
        head = [] if page.starts_line else [page.first_ts]  # the line it continues
        return cls(page.start_offset, page.first_line, head + list(page.stamps), page.text)

    def joined(self, following: "_Block") -> "_Block":
        """This block (the start of a line) and the next page's block, which continues that line."""
        return _Block(
            self.offset, self.number, self.stamps + following.stamps[1:], self.text + following.text
        )

    def rest(self, cut: int) -> "_Block | None":
        """What follows character `cut` (a line start): the start of a line the next page goes on."""
        if cut >= len(self.text):
            return None
        index = self.text.count("\n", 0, cut)
        return _Block(self.offset + cut, self.number + index, self._stamp(index), self.text[cut:])

    def _stamp(self, index: int) -> list[int]:
        return [self.stamps[min(index, len(self.stamps) - 1)]] if self.stamps else [0]

    def matches(self, pattern, end: int) -> Iterator[Line]:
        """The lines in `text[:end]` (whole lines) the pattern matches. The pattern runs over UTF-8
        bytes (RE2's own form: a search on a str would convert it on every call)."""
        data = self.text[:end].encode("utf-8", "surrogatepass")
        position, index, counted, chars = 0, 0, 0, 0  # bytes searched; lines, bytes, chars passed
        while position < len(data):
            found = pattern.search(data, position)
            if found is None:
                return
            start = data.rfind(b"\n", 0, found.start()) + 1
            stop = data.find(b"\n", found.start())
            stop = len(data) if stop < 0 else stop + 1
            index += data.count(b"\n", counted, start)
            chars += len(data[counted:start].decode("utf-8", "surrogatepass"))
            counted = start
            line = data[start:stop].decode("utf-8", "surrogatepass")
            if pattern.search(line.rstrip("\n").encode("utf-8", "surrogatepass")) is not None:
                yield Line(self.number + index, self._stamp(index)[0], self.offset + chars, line)
            position = stop
