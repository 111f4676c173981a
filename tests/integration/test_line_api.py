"""The line API of GET /api/v1/tasks/{task_id}/logs (tail, since/until, grep with context,
from_line/limit, timestamps, ndjson and merge=time, line counts) against real PostgreSQL and the fake
cluster. Every expected body is computed here from the lines the test wrote (Python's `re`, list
slicing), never from the service's own code."""

import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text as sql

from tasklogs.extensions import db
from testkit import scenarios
from testkit.apps import dispose, make_app

NS = 1_000_000_000
BASE = int(datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC).timestamp()) * NS
LEVELS = ("INFO", "WARN", "ERROR", "info", "Error")
LINES_A = 2400
LINES_B = 300
LONG_AT = 1200  # pod a's line of 300 000 characters: wider than a page, so it spans a boundary
PAGE_CHARS = 128 * 1024


# --- the log the tests write, and what each request must give back ---


@dataclass(frozen=True)
class Written:
    node: str
    pod: str
    number: int
    ts: int
    text: str  # with its newline (a last line may have none)

    @property
    def content(self) -> str:
        return self.text.removesuffix("\n")


def ts_a(number: int) -> int:
    return BASE + number * 10_000_000 + 7  # 10 ms apart, odd nanoseconds


def ts_b(number: int) -> int:
    return BASE + number * 25_000_000 + 7  # ties with pod a at a's 5k and b's 2k


def text_a(number: int) -> str:
    if number == LONG_AT:
        return "LONG " + "x" * 300_000 + " end-of-long\n"
    padding = "." * (number * 37 % 180)
    return f"{number:05d} {LEVELS[number % 5]} caf\u00e9 step {number % 13} {padding}\n"


def text_b(number: int) -> str:
    return f"b{number:04d} {LEVELS[number % 5]} tick\n"


def rfc3339(nanos: int, offset_hours: int = 0, digits: int = 9, zulu: str = "Z") -> str:
    """`nanos` as RFC 3339 in a zone `offset_hours` east of UTC, with `digits` fraction digits
    (truncated): written independently of the service's formatter."""
    seconds, fraction = divmod(nanos, NS)
    zone = timezone(timedelta(hours=offset_hours))
    head = datetime.fromtimestamp(seconds, zone).strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        head += "." + f"{fraction:09d}"[:digits].ljust(digits, "0")
    if offset_hours == 0:
        return head + zulu
    sign = "+" if offset_hours > 0 else "-"
    return f"{head}{sign}{abs(offset_hours):02d}:00"


def write_lines(kube, pod: str, numbers, text_of, ts_of) -> None:
    for number in numbers:
        kube.write_log(pod, "main", text_of(number), ts=ts_of(number))


@dataclass
class Stored:
    wf: scenarios.Scenario
    a: list[Written]
    b: list[Written]

    @property
    def logs(self) -> list[list[Written]]:
        return [self.a, self.b]


def build(client, kube, task_id: str, *, finish: bool = True) -> Stored:
    """A two-pod workflow, pod a with a log of several pages (one line wider than a page), pod b
    small, read once so that it is stored."""
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    write_lines(kube, wf.pod("a"), range(1, LINES_A + 1), text_a, ts_a)
    write_lines(kube, wf.pod("b"), range(1, LINES_B + 1), text_b, ts_b)
    if finish:
        scenarios.finish(kube, wf)
    first = client.get(f"/api/v1/tasks/{task_id}/logs")
    assert first.status_code == 200, first.get_data(as_text=True)[:500]
    first.get_data()  # read to the end: the first read stores the logs
    if finish:
        assert get(client, task_id).get_json()["source"] == "database"
    a = [Written(wf.nodes["a"], wf.pod("a"), n, ts_a(n), text_a(n)) for n in range(1, LINES_A + 1)]
    b = [Written(wf.nodes["b"], wf.pod("b"), n, ts_b(n), text_b(n)) for n in range(1, LINES_B + 1)]
    return Stored(wf, a, b)


@pytest.fixture
def stored(client, kube, task_id) -> Stored:
    return build(client, kube, task_id)


def get(client, task_id, **params):
    return client.get(f"/api/v1/tasks/{task_id}/logs", query_string=params)


def text_of(client, task_id, **params) -> str:
    response = get(client, task_id, format="text", **params)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def ndjson_of(client, task_id, **params) -> list[dict]:
    response = get(client, task_id, format="ndjson", **params)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/x-ndjson"
    body = response.get_data(as_text=True)
    assert body == "" or body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def joined(lines, timestamps: bool = False) -> str:
    if timestamps:
        return "".join(f"{rfc3339(line.ts)} {line.text}" for line in lines)
    return "".join(line.text for line in lines)


def text_body(groups: list[tuple[Written, list[str]]]) -> str:
    """The text body of several logs: a header per log and an empty line after each."""
    return "".join(
        f"==> {first.pod} ({first.node}) <==\n" + "".join(texts) + "\n" for first, texts in groups
    )


def record(line: Written, match: bool | None = None) -> dict:
    fields = {
        "node": line.node,
        "pod": line.pod,
        "container": "main",
        "line": line.number,
        "ts": rfc3339(line.ts),
        "text": line.content,
    }
    if match is not None:
        fields["match"] = match
    return fields


def in_time(lines, since: int | None = None, until: int | None = None) -> list[Written]:
    return [
        line
        for line in lines
        if (since is None or line.ts >= since) and (until is None or line.ts < until)
    ]


def grep(lines, pattern, *, flags=0, invert=False, context=0) -> list[tuple[Written, bool, bool]]:
    """grep -C: (line, matched, starts a new group after a gap) for every line given."""
    matched = [(re.search(pattern, line.content, flags) is not None) != invert for line in lines]
    keep = set()
    for index, hit in enumerate(matched):
        if hit:
            keep.update(range(max(0, index - context), min(len(lines), index + context + 1)))
    out, previous = [], None
    for index in sorted(keep):
        out.append((lines[index], matched[index], previous is not None and index != previous + 1))
        previous = index
    return out


def grep_text(hits, separators: bool) -> str:
    """Text output of grep hits: a `--` line between groups (never before the first line given)."""
    pieces = []
    for index, (line, _, gap) in enumerate(hits):
        if separators and gap and index:
            pieces.append("--\n")
        pieces.append(line.text)
    return "".join(pieces)


def regroup(hits):
    """Hits cut out of a longer grep output: a gap is one from the previous hit kept."""
    out = []
    for index, (line, matched, _) in enumerate(hits):
        gap = index > 0 and line.number != hits[index - 1][0].number + 1
        out.append((line, matched, gap))
    return out


# --- the layout under test ---


def test_the_big_log_spans_pages_and_a_line_spans_a_page_boundary(app, client, stored, task_id):
    assert sum(len(line.text) for line in stored.a) > 3 * PAGE_CHARS
    with app.app_context():
        pages = db.session.execute(
            sql(
                "SELECT p.start_offset, p.end_offset, p.first_line, p.last_line, p.ends_line "
                "FROM log_pages p JOIN task_logs l ON l.id = p.log_id "
                "WHERE l.task_id = :task AND l.pod_name = :pod ORDER BY p.start_offset"
            ),
            {"task": task_id, "pod": stored.wf.pod("a")},
        ).all()
    assert len(pages) >= 4
    assert any(not ends_line for *_, ends_line in pages[:-1]), "some line spans a page boundary"
    long_pages = [p for p in pages if p.first_line <= LONG_AT <= p.last_line]
    assert len(long_pages) >= 3, "the long line lies on three pages or more"
    body = get(client, task_id).get_json()
    assert [(e["pod"], e["logs"], e["lines"]) for e in body["logs"]] == [
        (stored.wf.pod("a"), joined(stored.a), LINES_A),
        (stored.wf.pod("b"), joined(stored.b), LINES_B),
    ]


# --- tail ---


@pytest.mark.parametrize(
    "tail", [1, 7, LINES_A - LONG_AT + 1, LINES_A - LONG_AT + 2, LINES_A, 5000]
)
def test_tail_gives_the_last_lines_of_each_log(client, stored, task_id, tail):
    assert text_of(client, task_id, tail=tail) == text_body(
        [(log[0], [line.text for line in log[-tail:]]) for log in stored.logs]
    )
    records = ndjson_of(client, task_id, tail=tail)
    assert records == [record(line) for log in stored.logs for line in log[-tail:]]


def test_tail_of_one_pod_in_json(client, stored, task_id):
    response = get(client, task_id, tail=3, pod=stored.wf.pod("a"))
    entries = response.get_json()["logs"]
    assert [(e["pod"], e["logs"], e["lines"]) for e in entries] == [
        (stored.wf.pod("a"), joined(stored.a[-3:]), LINES_A)
    ]


# --- since / until ---


WINDOWS = [
    # (since, until) in nanoseconds, and how they are written
    (ts_a(100), None, lambda t: rfc3339(t)),
    (ts_a(100), ts_a(1300), lambda t: rfc3339(t, offset_hours=2)),
    (BASE + 1 * NS, BASE + 13 * NS, lambda t: rfc3339(t, digits=0)),
    (BASE + 1 * NS, BASE + 2 * NS + 500_000_000, lambda t: rfc3339(t, offset_hours=-5, digits=1)),
    (ts_a(1150), ts_a(1250), lambda t: rfc3339(t, digits=3, offset_hours=9)),
    (None, ts_a(40), lambda t: rfc3339(t, zulu="z").replace("T", "t")),
]


@pytest.mark.parametrize("since, until, written", WINDOWS)
def test_since_until_select_lines_by_capture_time(client, stored, task_id, since, until, written):
    params = {}
    if since is not None:
        params["since"] = written(since)
    if until is not None:
        params["until"] = written(until)
    # the expected lines come from the written times, truncated as the strings are
    since_ns = None if since is None else _parsed(params["since"])
    until_ns = None if until is None else _parsed(params["until"])
    expected = [in_time(log, since_ns, until_ns) for log in stored.logs]
    records = ndjson_of(client, task_id, **params)
    assert records == [record(line) for log in expected for line in log]
    assert text_of(client, task_id, **params) == text_body(
        [
            (log[0], [line.text for line in lines])
            for log, lines in zip(stored.logs, expected, strict=True)
        ]
    )


def _parsed(value: str) -> int:
    """Nanoseconds of an RFC 3339 string, for the test's own windows (fraction truncated to 9)."""
    head, fraction, zone = re.fullmatch(
        r"(\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)", value
    ).groups()
    zone = "+00:00" if zone in "Zz" else zone
    moment = datetime.fromisoformat(head.replace("t", "T") + zone)
    return int(moment.timestamp()) * NS + int(((fraction or "") + "0" * 9)[:9])


def test_since_is_inclusive_until_exclusive_and_any_fraction_length(client, stored, task_id):
    pod = stored.wf.pod("a")
    exact = ndjson_of(client, task_id, pod=pod, since=rfc3339(ts_a(500)), until=rfc3339(ts_a(503)))
    assert [r["line"] for r in exact] == [500, 501, 502]
    # twelve fraction digits: the nanoseconds are the first nine
    long_fraction = rfc3339(ts_a(500)).replace("Z", "999Z")
    assert [
        r["line"] for r in ndjson_of(client, task_id, pod=pod, since=long_fraction, tail=2)
    ] == [
        LINES_A - 1,
        LINES_A,
    ]
    first = ndjson_of(client, task_id, pod=pod, since=long_fraction, limit=1)
    assert first == [record(stored.a[499])]
    # one nanosecond later leaves line 500 out
    assert ndjson_of(client, task_id, pod=pod, since=rfc3339(ts_a(500) + 1), limit=1) == [
        record(stored.a[500])
    ]
    assert ndjson_of(client, task_id, since=rfc3339(BASE + 3600 * NS)) == []


# --- grep ---


@pytest.mark.parametrize(
    "params, pattern, flags, invert",
    [
        ({"grep": "ERROR"}, "ERROR", 0, False),
        ({"grep": "error", "ignore_case": "true"}, "error", re.I, False),
        ({"grep": "^0+12[0-9] "}, "^0+12[0-9] ", 0, False),
        ({"grep": "end-of-long$"}, "end-of-long$", 0, False),
        ({"grep": "^LONG x+ end"}, "^LONG x+ end", 0, False),
        ({"grep": "INFO|tick", "invert": "true"}, "INFO|tick", 0, True),
        ({"grep": "info", "ignore_case": "true", "invert": "true"}, "info", re.I, True),
        ({"grep": "caf\u00e9 step 1[012] "}, "caf\u00e9 step 1[012] ", 0, False),
        ({"grep": "no such text"}, "no such text", 0, False),
    ],
)
def test_grep(client, stored, task_id, params, pattern, flags, invert):
    hits = [grep(log, pattern, flags=flags, invert=invert) for log in stored.logs]
    assert text_of(client, task_id, **params) == text_body(
        [(log[0], [line.text for line, *_ in h]) for log, h in zip(stored.logs, hits, strict=True)]
    )
    assert ndjson_of(client, task_id, **params) == [
        record(line, True) for h in hits for line, *_ in h
    ]


@pytest.mark.parametrize("context", [1, 2, 6, 7])
def test_grep_context_separates_groups_as_grep_does(client, stored, task_id, context):
    pattern = "step 3 "  # every 13th line of pod a: groups touch from context 6 on
    hits = [grep(log, pattern, context=context) for log in stored.logs]
    assert text_of(client, task_id, grep=pattern, context=context) == text_body(
        [
            (log[0], [grep_text(h, separators=True)])
            for log, h in zip(stored.logs, hits, strict=True)
        ]
    )
    assert ("--\n" in text_of(client, task_id, grep=pattern, context=context)) == (context < 6)
    assert ndjson_of(client, task_id, grep=pattern, context=context) == [
        record(line, matched) for h in hits for line, matched, _ in h
    ]


def test_grep_context_with_invert_and_ignore_case(client, stored, task_id):
    pod = stored.wf.pod("a")
    lines = stored.a[:80]
    until = rfc3339(ts_a(81))
    hits = grep(lines, "STEP [0-9] ", flags=re.I, invert=True, context=1)
    assert [line.number for line, *_ in hits][:6] == [9, 10, 11, 12, 13, 22]
    params = dict(pod=pod, until=until, grep="STEP [0-9] ", ignore_case="true")
    params.update(invert="true", context=1)
    assert text_of(client, task_id, **params) == grep_text(hits, True)
    assert ndjson_of(client, task_id, **params) == [record(line, m) for line, m, _ in hits]


def test_grep_matches_across_a_page_boundary_inside_the_long_line(client, stored, task_id):
    """A match made of text on both sides of a page boundary of the long line."""
    pattern = "^LONG x+ end-of-long$"
    expected = [line for line in stored.a if re.search(pattern, line.content)]
    assert [line.number for line in expected] == [LONG_AT]
    assert ndjson_of(client, task_id, grep=pattern) == [record(expected[0], True)]
    assert ndjson_of(client, task_id, grep=pattern, context=1) == [
        record(stored.a[LONG_AT - 2], False),
        record(expected[0], True),
        record(stored.a[LONG_AT], False),
    ]


# --- from_line / limit ---


@pytest.mark.parametrize(
    "from_line, limit",
    [
        (1, 1),
        (LONG_AT - 1, 3),
        (LONG_AT, 1),
        (LONG_AT + 1, 2),
        (295, 10),
        (2390, 100),
        (None, 10),
        (250, None),
        (LINES_A, None),
        (LINES_A + 1, None),
        (10**9, 5),
    ],
)
def test_from_line_and_limit(client, stored, task_id, from_line, limit):
    params = {k: v for k, v in (("from_line", from_line), ("limit", limit)) if v is not None}
    start = (from_line or 1) - 1
    expected = [log[start : start + limit if limit else None] for log in stored.logs]
    assert ndjson_of(client, task_id, **params) == [
        record(line) for lines in expected for line in lines
    ]
    assert text_of(client, task_id, **params) == text_body(
        [
            (log[0], [line.text for line in lines])
            for log, lines in zip(stored.logs, expected, strict=True)
        ]
    )


# --- the order: time range, then grep (with context), then from_line/limit or tail ---


def test_time_range_then_grep_then_from_line_and_limit(client, stored, task_id):
    since, until = ts_a(300), ts_a(900)
    ranged = [in_time(log, since, until) for log in stored.logs]
    params = dict(since=rfc3339(since), until=rfc3339(until), grep="ERROR|step 0 ", context=1)
    whole = [grep(lines, "ERROR|step 0 ", context=1) for lines in ranged]
    assert ndjson_of(client, task_id, **params) == [
        record(line, m) for hits in whole for line, m, _ in hits
    ]
    # from_line counts the log's own line numbers; limit counts lines given
    paged = [[h for h in hits if h[0].number >= 450][:25] for hits in whole]
    assert ndjson_of(client, task_id, from_line=450, limit=25, **params) == [
        record(line, m) for hits in paged for line, m, _ in hits
    ]
    assert text_of(client, task_id, pod=stored.wf.pod("a"), from_line=450, limit=25, **params) == (
        grep_text(regroup(paged[0]), True)
    )


def test_time_range_then_grep_then_tail(client, stored, task_id):
    since, until = ts_a(300), ts_a(900)
    ranged = [in_time(log, since, until) for log in stored.logs]
    params = dict(since=rfc3339(since), until=rfc3339(until), grep="WARN")
    hits = [grep(lines, "WARN")[-4:] for lines in ranged]
    assert ndjson_of(client, task_id, tail=4, **params) == [
        record(line, True) for h in hits for line, *_ in h
    ]
    assert [
        r["line"] for r in ndjson_of(client, task_id, pod=stored.wf.pod("a"), tail=4, **params)
    ] == [
        881,
        886,
        891,
        896,
    ]


@pytest.mark.parametrize("tail", [3, 5, 6])
def test_tail_after_grep_context_starts_with_a_line_not_a_separator(client, stored, task_id, tail):
    pod = stored.wf.pod("a")
    whole = grep(stored.a, "step 3 ", context=1)  # groups of three lines, twelve apart
    last = regroup(whole[-tail:])
    body = text_of(client, task_id, pod=pod, grep="step 3 ", context=1, tail=tail)
    assert body == grep_text(last, True)
    assert not body.startswith("--"), body[:200]


# --- timestamps ---


def test_timestamps_prefix_lines_in_text_and_json(client, stored, task_id):
    assert text_of(client, task_id, timestamps="true", tail=3) == text_body(
        [(log[0], [f"{rfc3339(line.ts)} {line.text}" for line in log[-3:]]) for log in stored.logs]
    )
    whole = get(client, task_id, timestamps="true").get_json()
    assert [(e["logs"], e["lines"]) for e in whole["logs"]] == [
        (joined(stored.a, timestamps=True), LINES_A),
        (joined(stored.b, timestamps=True), LINES_B),
    ]
    grepped = get(client, task_id, timestamps="true", grep="end-of-long").get_json()
    assert [e["logs"] for e in grepped["logs"]] == [
        joined([stored.a[LONG_AT - 1]], timestamps=True),
        "",
    ]
    assert re.fullmatch(
        r"2026-03-01T10:00:12\.000000007Z LONG x+ end-of-long\n", grepped["logs"][0]["logs"]
    )


def test_timestamps_do_not_change_ndjson_text(client, stored, task_id):
    assert ndjson_of(client, task_id, timestamps="true", tail=2) == [
        record(line) for log in stored.logs for line in log[-2:]
    ]


# --- ndjson and merge=time ---


def test_ndjson_whole_task_in_log_order(client, stored, task_id):
    records = ndjson_of(client, task_id)
    assert records == [record(line) for log in stored.logs for line in log]
    assert list(records[0]) == ["node", "pod", "container", "line", "ts", "text"]


def test_merge_time_interleaves_by_capture_time_ties_in_task_order(client, stored, task_id):
    everything = [line for log in stored.logs for line in log]
    expected = sorted(everything, key=lambda line: (line.ts, line.pod != stored.wf.pod("a")))
    records = ndjson_of(client, task_id, merge="time")
    assert records == [record(line) for line in expected]
    ties = [
        (r["pod"], r["line"])
        for r in records
        if r["ts"] == rfc3339(ts_a(10))  # a's line 10 and b's line 4 share their time
    ]
    assert ties == [(stored.wf.pod("a"), 10), (stored.wf.pod("b"), 4)]


def test_merge_time_with_tail_grep_and_a_window(client, stored, task_id):
    tails = [log[-20:] for log in stored.logs]
    merged = sorted((line for t in tails for line in t), key=lambda line: line.ts)
    assert ndjson_of(client, task_id, merge="time", tail=20) == [record(line) for line in merged]
    since, until = BASE + 2 * NS, BASE + 4 * NS
    hits = [h for log in stored.logs for h in grep(in_time(log, since, until), "ERROR", context=1)]
    hits.sort(key=lambda hit: hit[0].ts)
    params = dict(merge="time", grep="ERROR", context=1, since=rfc3339(since), until=rfc3339(until))
    assert ndjson_of(client, task_id, **params) == [record(line, m) for line, m, _ in hits]


# --- line counts ---


def test_json_entries_carry_their_line_count(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["a", "b", "c"])
    kube.write_log(wf.pod("a"), "main", "one\ntwo\nthree\n")
    kube.write_log(wf.pod("c"), "main", "no newline at the end")
    scenarios.finish(kube, wf)
    for source in ("kubernetes", "database"):
        body = get(client, task_id).get_json()
        assert body["source"] == source
        assert [(e["logs"], e["lines"]) for e in body["logs"]] == [
            ("one\ntwo\nthree\n", 3),
            ("", 0),
            ("no newline at the end", 1),
        ]
    assert text_of(client, task_id, pod=wf.pod("c"), tail=1, timestamps="true").endswith(
        " no newline at the end"
    )
    assert [r["text"] for r in ndjson_of(client, task_id, tail=1)] == [
        "three",
        "no newline at the end",
    ]


# --- bad input ---


BAD = [
    ({"grep": "("}, "grep"),
    ({"grep": "a)"}, "grep"),
    ({"grep": "(a)\\1"}, "grep"),  # a backreference: RE2 has none
    ({"grep": "[z-a]"}, "grep"),
    ({"tail": "0"}, "tail"),
    ({"tail": "-3"}, "tail"),
    ({"tail": "100001"}, "tail"),
    ({"tail": "ten"}, "tail"),
    ({"tail": "1.5"}, "tail"),
    ({"limit": "0"}, "limit"),
    ({"limit": "20000"}, "limit"),
    ({"from_line": "0"}, "from_line"),
    ({"from_line": "x"}, "from_line"),
    ({"context": "101", "grep": "a"}, "context"),
    ({"context": "-1", "grep": "a"}, "context"),
    ({"context": "2"}, "context"),
    ({"ignore_case": "true"}, "ignore_case"),
    ({"invert": "true"}, "invert"),
    ({"grep": "a", "ignore_case": "maybe"}, "ignore_case"),
    ({"timestamps": "yes"}, "timestamps"),
    ({"since": "2026-03-01T10:00:02Z", "until": "2026-03-01T10:00:01Z"}, "since"),
    ({"since": "2026-03-01T12:00:02+02:00", "until": "2026-03-01T10:00:01.5Z"}, "since"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-03-01"}, "since"),
    ({"since": "2026-03-01T10:00:00"}, "since"),  # no zone
    ({"until": "2026-13-01T10:00:00Z"}, "until"),
    ({"until": "2026-03-01T10:00:00.12aZ"}, "until"),
    ({"until": "1772359200"}, "until"),
    ({"merge": "time"}, "merge"),
    ({"merge": "time", "format": "text"}, "merge"),
    ({"merge": "time", "format": "json"}, "merge"),
    ({"merge": "pod", "format": "ndjson"}, "merge"),
    ({"tail": "5", "from_line": "3"}, "tail"),
    ({"tail": "5", "limit": "3"}, "tail"),
    ({"grep": "a", "lines": "3"}, "lines"),
]


@pytest.mark.parametrize("params, named", BAD, ids=[json.dumps(p) for p, _ in BAD])
def test_bad_input_is_400_naming_the_parameter(client, kube, task_id, params, named):
    scenarios.workflow(kube, task_id)
    kube.reset_requests()
    response = get(client, task_id, **params)
    body = response.get_json()
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert body["error"] == "invalid_request"
    assert named in body["message"], body["message"]
    assert kube.count() == 0, "refused before reaching the cluster"


# --- a pathological pattern ---


def test_pathological_pattern_is_linear_and_others_keep_being_answered(serve, kube, task_id):
    _, live = serve()
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    kube.write_log(wf.pod("a"), "main", "a" * 1_000_000 + "b\n")
    kube.write_log(wf.pod("b"), "main", "aaab\nfine\n")
    other = task_id + "-other"
    other_wf = scenarios.workflow(kube, other)
    kube.write_log(other_wf.pod(), "main", "other task\n")
    scenarios.finish(kube, wf)
    scenarios.finish(kube, other_wf)
    for name in (task_id, other):
        _http(live.http_url(f"/api/v1/tasks/{name}/logs?format=text"))  # stored now

    bad = f"/api/v1/tasks/{task_id}/logs?format=ndjson&grep=%28a%2B%29%2B%24"
    outcomes, errors = [], []

    def pathological(suffix):
        try:
            started = time.monotonic()
            status, body = _http(live.http_url(bad + suffix), timeout=30)
            outcomes.append((suffix, status, body, time.monotonic() - started))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [
        threading.Thread(target=pathological, args=(suffix,))
        for suffix in ("", "&context=1", "&invert=true", "&ignore_case=true", "") * 2
    ]
    for thread in threads:
        thread.start()
    others = []
    while any(thread.is_alive() for thread in threads) or len(others) < 5:
        started = time.monotonic()
        status, body = _http(live.http_url(f"/api/v1/tasks/{other}/logs?format=text&tail=1"))
        health = _http(live.http_url("/healthz"))[0]
        others.append((status, body, health, time.monotonic() - started))
    for thread in threads:
        thread.join()
    assert not errors
    assert all(o[:3] == (200, "other task\n", 200) for o in others), others[:3]
    assert max(o[3] for o in others) < 1.0, [round(o[3], 3) for o in others]
    for suffix, status, body, elapsed in outcomes:
        records = [json.loads(line) for line in body.splitlines()]
        assert status == 200
        assert elapsed < 5, f"{suffix or 'plain'}: {elapsed:.1f} s"
        if suffix == "&invert=true":
            assert [(r["line"], r["text"][-3:], r["match"]) for r in records] == [
                (1, "aab", True),
                (1, "aab", True),
                (2, "ine", True),
            ]
            assert len(records[0]["text"]) == 1_000_001
        else:
            assert records == []


def _http(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


# --- a running task ---


def test_running_task_serves_its_stored_part_the_same(client, kube, task_id):
    running = build(client, kube, task_id, finish=False)
    body = get(client, task_id, tail=2).get_json()
    assert (body["phase"], body["complete"]) == ("Running", False)
    assert [(e["logs"], e["lines"]) for e in body["logs"]] == [
        (joined(running.a[-2:]), LINES_A),
        (joined(running.b[-2:]), LINES_B),
    ]
    assert ndjson_of(client, task_id, grep="end-of-long|^02399 ") == [
        record(running.a[LONG_AT - 1], True),
        record(running.a[2398], True),
    ]
    since, until = ts_a(1190), ts_a(1210)
    assert ndjson_of(client, task_id, since=rfc3339(since), until=rfc3339(until)) == [
        record(line) for log in running.logs for line in in_time(log, since, until)
    ]
    assert ndjson_of(client, task_id, from_line=LONG_AT, limit=2, pod=running.wf.pod("a")) == [
        record(line) for line in running.a[LONG_AT - 1 : LONG_AT + 1]
    ]
    # more lines arrive: the next request sees them
    more = range(LINES_A + 1, LINES_A + 4)
    write_lines(kube, running.wf.pod("a"), more, text_a, ts_a)
    added = [
        Written(running.wf.nodes["a"], running.wf.pod("a"), n, ts_a(n), text_a(n)) for n in more
    ]
    assert ndjson_of(client, task_id, tail=4, pod=running.wf.pod("a")) == [
        record(line) for line in [running.a[-1], *added]
    ]
    assert get(client, task_id, pod=running.wf.pod("a")).get_json()["logs"][0]["lines"] == (
        LINES_A + 3
    )
    assert text_of(client, task_id, grep="step 3 ", context=1, pod=running.wf.pod("a")) == (
        grep_text(grep(running.a + added, "step 3 ", context=1), True)
    )


# --- the database down: Kubernetes alone, degraded ---


def _small_running(kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    a = [Written(wf.nodes["a"], wf.pod("a"), n, ts_a(n), text_a(n)) for n in range(1, 61)]
    b = [Written(wf.nodes["b"], wf.pod("b"), n, ts_b(n), text_b(n)) for n in range(1, 31)]
    write_lines(kube, wf.pod("a"), range(1, 61), text_a, ts_a)
    write_lines(kube, wf.pod("b"), range(1, 31), text_b, ts_b)
    return wf, a, b


def _log_reads(kube) -> list[dict]:
    return [r.query for r in kube.requests if r.resource == "pods/log"]


def test_database_down_the_same_parameters_work_on_what_kubernetes_returns(
    proxied_app, db_proxy, kube, task_id
):
    client = proxied_app.test_client()
    wf, a, b = _small_running(kube, task_id)
    db_proxy.stop()

    def degraded(**params):
        response = get(client, task_id, **params)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        assert response.headers["X-Tasklogs-Degraded"] == "database"
        return response

    kube.reset_requests()
    response = degraded(format="ndjson", tail=3)
    assert [json.loads(x)["text"] for x in response.get_data(as_text=True).splitlines()] == [
        line.content for line in a[-3:] + b[-3:]
    ]
    reads = _log_reads(kube)
    assert reads and all(q.get("tailLines") == "3" for q in reads), reads

    since = ts_a(30) + 5_000_000  # between two lines, and not on a whole second
    kube.reset_requests()
    response = degraded(format="text", since=rfc3339(since), timestamps="true")
    assert response.get_data(as_text=True) == text_body(
        [(log[0], [f"{rfc3339(x.ts)} {x.text}" for x in in_time(log, since)]) for log in (a, b)]
    )
    reads = _log_reads(kube)
    assert reads and all(q.get("sinceTime") == rfc3339(since, digits=0) for q in reads), reads
    assert all("tailLines" not in q for q in reads)

    hits = grep(a, "step 3 ", context=1)
    response = degraded(format="text", pod=wf.pod("a"), grep="step 3 ", context=1)
    assert response.get_data(as_text=True) == grep_text(hits, True)
    response = degraded(format="ndjson", pod=wf.pod("a"), grep="ERROR", ignore_case="true")
    expected = [record(x, True) for x, *_ in grep(a, "error", flags=re.I)]
    assert [json.loads(x) for x in response.get_data(as_text=True).splitlines()] == expected

    response = degraded(format="ndjson", from_line=28, limit=5)
    assert [json.loads(x) for x in response.get_data(as_text=True).splitlines()] == [
        record(x) for x in a[27:32] + b[27:30]
    ]
    response = degraded(format="ndjson", merge="time", until=rfc3339(BASE + NS // 5))
    merged = sorted(in_time(a + b, None, BASE + NS // 5), key=lambda x: (x.ts, x.pod != a[0].pod))
    assert [json.loads(x) for x in response.get_data(as_text=True).splitlines()] == [
        record(x) for x in merged
    ]
    body = degraded(tail=2).get_json()
    assert [e["logs"] for e in body["logs"]] == [joined(a[-2:]), joined(b[-2:])]
    bad = get(client, task_id, tail=0)
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_request"


def test_database_down_line_numbers(proxied_app, db_proxy, kube, task_id):
    """With the database down, `tail` alone is read with tailLines and `since` with sinceTime: the
    lines Kubernetes returns are numbered from 1 (the service cannot know how many came before); with
    from_line the whole log is read, so the numbers are the log's own."""
    client = proxied_app.test_client()
    wf = scenarios.workflow(kube, task_id)
    write_lines(kube, wf.pod(), range(1, 61), text_b, lambda n: BASE + n * NS // 2 + 7)
    db_proxy.stop()

    def records(**params):
        response = get(client, task_id, format="ndjson", **params)
        assert response.headers["X-Tasklogs-Degraded"] == "database"
        return [json.loads(x) for x in response.get_data(as_text=True).splitlines()]

    def line(number: int) -> str:
        return text_b(number).rstrip("\n")

    assert [(r["line"], r["text"]) for r in records(tail=2)] == [(1, line(59)), (2, line(60))]
    since = rfc3339(BASE + 25 * NS + 7)  # line 50's time
    assert [r["text"] for r in records(since=since, limit=2)] == [line(50), line(51)]
    assert [(r["line"], r["text"]) for r in records(since=since, from_line=55, limit=1)] == [
        (55, line(55))
    ]


def test_database_down_unknown_task_is_503_not_404(proxied_app, db_proxy, kube, task_id):
    db_proxy.stop()
    response = get(proxied_app.test_client(), task_id, tail=5, format="ndjson")
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"] == "unavailable"
    assert task_id in response.get_json()["message"]


def test_no_free_database_connection_unknown_task_is_503_not_404(
    database_url, kube_adapter, kube, task_id
):
    app = make_app(database_url, kube_adapter, TASKLOGS_DB_POOL_SIZE=1, TASKLOGS_DB_POOL_TIMEOUT=1)
    release, held = threading.Event(), threading.Event()

    def hold():
        with app.app_context():
            with db.engine.connect(), db.engine.connect():  # pool_size 1 + overflow 1: all taken
                held.set()
                release.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        response = get(app.test_client(), task_id, grep="x")
        assert time.monotonic() - started < 5
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.get_json()["error"] == "unavailable"
    finally:
        release.set()
        holder.join()
        dispose(app)
