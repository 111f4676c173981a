"""The page index (`tasklogs.pages`) checked against a plain reading of the whole text: lines split on
"\\n", one stamp per line, offsets in characters and bytes in UTF-8."""

from bisect import bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from tasklogs.pages import PAGE_CHARS, Line, LogEnd, drop_head, line_starts, lines_of, paginate


def split_lines(text: str) -> list[str]:
    """The log's lines, each with its newline (a last one may have none)."""
    pieces = text.split("\n")
    return [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def line_offsets(text: str) -> list[int]:
    """The offset of every line's first character."""
    offsets, offset = [], 0
    for line in split_lines(text):
        offsets.append(offset)
        offset += len(line)
    return offsets


def line_at(text: str, offset: int) -> int:
    """The number (from 1) of the line holding the character at `offset`."""
    return bisect_right(line_offsets(text), offset)


def stamps_for(text: str) -> list[int]:
    """Distinct, increasing stamps, one per line."""
    return [1_000 + 7 * number for number in range(len(split_lines(text)))]


def reference_lines(text: str, stamps: list[int], first: int = 1) -> list[Line]:
    return [
        Line(number, stamps[number - 1], offset, line)
        for number, (offset, line) in enumerate(
            zip(line_offsets(text), split_lines(text), strict=True), 1
        )
        if number >= first
    ]


def check_pages(text: str, stamps: list[int], pages, page_chars: int) -> None:
    """Every page agrees with the whole text: offsets, bytes, lines, stamps, first and last ts."""
    starts = line_offsets(text)
    assert "".join(page.text for page in pages) == text
    offset = 0
    for page in pages:
        start, end = page.start_offset, page.end_offset
        assert start == offset and 0 < len(page.text) <= page_chars
        assert page.start_byte == len(text[:start].encode("utf-8"))
        assert page.byte_count == len(page.text.encode("utf-8"))
        assert page.first_line == line_at(text, start)
        assert page.last_line == line_at(text, end - 1)
        assert page.ends_line == (text[end - 1] == "\n")
        assert page.starts_line == (start in starts)
        started = [n for n, s in enumerate(starts, 1) if start <= s < end]
        assert page.stamps == tuple(stamps[n - 1] for n in started)
        assert page.first_ts == stamps[page.first_line - 1]
        assert page.last_ts == stamps[page.last_line - 1]
        assert line_starts(page.text, page.starts_line) == len(started)
        offset = end
    if pages:
        end = pages[-1].end
        assert end.offset == len(text) and end.byte == len(text.encode("utf-8"))
        assert (end.lines, end.ends_line) == (len(starts), text.endswith("\n"))


# --- page boundaries ---


def test_boundary_inside_a_line():
    """A page is cut inside a line when no newline is in its second half."""
    pages = paginate(LogEnd(), "abcde\nghij\n", [10, 20], page_chars=4)
    assert [p.text for p in pages] == ["abcd", "e\ngh", "ij\n"]
    assert [(p.first_line, p.last_line, p.ends_line, p.stamps) for p in pages] == [
        (1, 1, False, (10,)),
        (1, 2, False, (20,)),
        (2, 2, True, ()),
    ]
    assert [(p.first_ts, p.last_ts, p.starts_line) for p in pages] == [
        (10, 10, True),
        (10, 20, False),
        (20, 20, False),
    ]
    check_pages("abcde\nghij\n", [10, 20], pages, 4)


def test_a_page_ends_with_a_line_when_a_newline_is_in_its_second_half():
    """So that a line lies in one page unless it is longer than half a page: a search looks in one
    page at a time."""
    text = "first line\nsecond\n" + "x" * 25 + "\n"
    pages = paginate(LogEnd(), text, [1, 2, 3], page_chars=16)
    assert [p.text for p in pages] == ["first line\n", "second\n" + "x" * 9, "x" * 16, "\n"]
    assert [p.ends_line for p in pages] == [True, False, False, True]
    check_pages(text, [1, 2, 3], pages, 16)


def test_boundary_right_after_a_newline():
    pages = paginate(LogEnd(), "abc\ndef\n", [10, 20], page_chars=4)
    assert [p.text for p in pages] == ["abc\n", "def\n"]
    assert [(p.first_line, p.last_line, p.ends_line, p.starts_line) for p in pages] == [
        (1, 1, True, True),
        (2, 2, True, True),
    ]
    assert [p.stamps for p in pages] == [(10,), (20,)]
    check_pages("abc\ndef\n", [10, 20], pages, 4)


def test_boundaries_inside_multibyte_runs_count_bytes_and_never_split_a_character():
    text = "é日🙂é日🙂\n🙂🙂🙂\né"
    stamps = stamps_for(text)
    for page_chars in range(1, len(text) + 1):
        pages = paginate(LogEnd(), text, stamps, page_chars=page_chars)
        check_pages(text, stamps, pages, page_chars)
        for page in pages:
            page.text.encode("utf-8")  # no lone surrogate: a character is never cut
    pages = paginate(LogEnd(), text, stamps, page_chars=2)
    assert [(p.start_byte, p.byte_count) for p in pages[:3]] == [(0, 5), (5, 6), (11, 7)]


def test_empty_lines():
    text = "\n\n\n"
    pages = paginate(LogEnd(), text, [1, 2, 3], page_chars=2)
    assert [p.text for p in pages] == ["\n\n", "\n"]
    assert [(p.first_line, p.last_line, p.stamps) for p in pages] == [(1, 2, (1, 2)), (3, 3, (3,))]
    check_pages(text, [1, 2, 3], pages, 2)
    assert list(lines_of(pages)) == [Line(1, 1, 0, "\n"), Line(2, 2, 1, "\n"), Line(3, 3, 2, "\n")]


def test_one_giant_line_without_a_newline():
    text = "x" * (3 * PAGE_CHARS + 5)
    pages = paginate(LogEnd(), text, [42])
    assert [len(p.text) for p in pages] == [PAGE_CHARS] * 3 + [5]
    assert [(p.first_line, p.last_line, p.ends_line) for p in pages] == [(1, 1, False)] * 4
    assert [p.stamps for p in pages] == [(42,), (), (), ()]
    assert [p.starts_line for p in pages] == [True, False, False, False]
    assert {(p.first_ts, p.last_ts) for p in pages} == {(42, 42)}
    assert pages[-1].end == LogEnd(len(text), len(text), 1, False, 42)
    assert list(lines_of(pages)) == [Line(1, 42, 0, text)]
    assert list(lines_of(pages[2:])) == [Line(1, 42, 2 * PAGE_CHARS, text[2 * PAGE_CHARS :])]


def test_one_giant_line_with_a_final_newline_alone_on_the_last_page():
    text = "x" * (3 * PAGE_CHARS) + "\n"
    pages = paginate(LogEnd(), text, [42])
    assert [p.text for p in pages[3:]] == ["\n"]
    last = pages[-1]
    assert (last.first_line, last.last_line, last.ends_line, last.starts_line) == (
        1,
        1,
        True,
        False,
    )
    assert last.end == LogEnd(len(text), len(text), 1, True, 42)
    assert last.end.next_line == 2
    assert list(lines_of(pages)) == [Line(1, 42, 0, text)]


# --- stamps ---


def test_each_stamp_belongs_to_a_line_starting_in_the_page():
    text = "on\ntwoooo\nthreeeee\nf\n"
    stamps = [100, 200, 300, 400]
    pages = paginate(LogEnd(), text, stamps, page_chars=6)
    assert [p.text for p in pages] == ["on\ntwo", "ooo\n", "threee", "ee\nf\n"]
    assert [p.stamps for p in pages] == [(100, 200), (), (300,), (400,)]
    assert [(p.first_ts, p.last_ts) for p in pages] == [
        (100, 200),
        (200, 200),
        (300, 300),
        (300, 400),
    ]
    check_pages(text, stamps, pages, 6)


def test_missing_stamps_take_default_ts_else_the_last_known_one():
    pages = paginate(LogEnd(), "a\nb\nc\n", [5], page_chars=2)
    assert [p.stamps for p in pages] == [(5,), (5,), (5,)]
    pages = paginate(LogEnd(), "a\nb\nc\n", [], page_chars=4, default_ts=9)
    assert [p.stamps for p in pages] == [(9, 9), (9,)]


def test_continuing_from_a_log_end_inside_a_line():
    first = paginate(LogEnd(), "ab\ncd", [10, 20], page_chars=4)
    end = first[-1].end
    assert end == LogEnd(5, 5, 2, False, 20)
    more = paginate(end, "e\nfff\n", [30], page_chars=4)
    assert [p.text for p in more] == ["e\nff", "f\n"]
    head = more[0]
    assert (head.start_offset, head.start_byte, head.first_line, head.starts_line) == (
        5,
        5,
        2,
        False,
    )
    assert (head.first_ts, head.stamps, head.last_line) == (20, (30,), 3)
    check_pages("ab\ncde\nfff\n", [10, 20, 30], first + more, 4)


def test_continuing_from_a_log_end_after_a_newline():
    first = paginate(LogEnd(), "ab\n", [10])
    more = paginate(first[-1].end, "é\n", [20])
    assert (more[0].first_line, more[0].starts_line, more[0].first_ts) == (2, True, 20)
    assert (more[0].start_offset, more[0].start_byte) == (3, 3)
    assert more[0].end == LogEnd(5, 6, 2, True, 20)


def test_drop_head_trims_the_stamps_of_the_lines_dropped():
    text, stamps = "ab\ncd\nef", [1, 2, 3]
    assert drop_head(text, stamps, 0) == (text, stamps)
    assert drop_head(text, stamps, 1) == ("b\ncd\nef", [2, 3])
    assert drop_head(text, stamps, 3) == ("cd\nef", [2, 3])
    assert drop_head(text, stamps, 4) == ("d\nef", [3])
    # a text that starts inside a line has one stamp fewer than lines
    assert drop_head("b\ncd\n", [2], 1) == ("\ncd\n", [2])
    assert drop_head("b\ncd\n", [2], 2) == ("cd\n", [2])
    assert drop_head("b\ncd\n", [2], 3) == ("d\n", [])


# --- lines_of against the plain reading, on random texts ---

TEXTS = st.text(alphabet=st.sampled_from(["a", "b", " ", "\n", "é", "日", "🙂"]), max_size=60)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS, page_chars=st.integers(1, 12), data=st.data())
def test_pages_and_lines_agree_with_the_plain_reading(text, page_chars, data):
    """The text appended in several pieces (each continuing the last one's end), cut into pages of
    random size: every page, and the lines read back from any line on, match the whole text's."""
    stamps = stamps_for(text)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=4)))
    pages, end, taken = [], LogEnd(), 0
    for start, stop in zip([0, *cuts], [*cuts, len(text)], strict=True):
        piece = text[start:stop]
        count = line_starts(piece, end.ends_line)
        pages += paginate(end, piece, stamps[taken : taken + count], page_chars=page_chars)
        taken += count
        end = pages[-1].end if pages else end
    check_pages(text, stamps, pages, page_chars)
    first = data.draw(st.integers(1, len(stamps) + 2))
    assert list(lines_of(pages, first=first)) == reference_lines(text, stamps, first)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, page_chars=st.integers(1, 12), data=st.data())
def test_lines_of_pages_from_the_middle(text, page_chars, data):
    """From any page on, lines_of gives the line the page starts in from the page's first character,
    then every later line whole."""
    stamps = stamps_for(text)
    pages = paginate(LogEnd(), text, stamps, page_chars=page_chars)
    if not pages:
        return
    page = pages[data.draw(st.integers(0, len(pages) - 1))]
    start = page.start_offset
    expected = [
        line
        if line.offset >= start
        else Line(line.number, line.ts, start, line.text[start - line.offset :])
        for line in reference_lines(text, stamps)
        if line.offset + len(line.text) > start
    ]
    assert list(lines_of(pages[pages.index(page) :])) == expected


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, data=st.data())
def test_drop_head_agrees_with_the_plain_reading(text, data):
    """`text` continues a log at `skip` characters into it; dropping `count` more characters keeps the
    stamps of the lines starting at or after the cut."""
    stamps = stamps_for(text)
    skip = data.draw(st.integers(0, len(text)))
    count = data.draw(st.integers(0, len(text) - skip))
    tail = text[skip:]
    kept = [s for offset, s in zip(line_offsets(text), stamps, strict=True) if offset >= skip]
    rest = [
        s for offset, s in zip(line_offsets(text), stamps, strict=True) if offset >= skip + count
    ]
    assert drop_head(tail, kept, count) == (text[skip + count :], rest)
