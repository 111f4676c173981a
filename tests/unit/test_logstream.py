"""The parser that turns a timestamped kubelet stream into text exactly once."""

import pytest

from tasklogs.logstream import LogParser, Position, UnreadableLog, timestamp_nanos

STREAM = (
    b"2026-01-02T03:04:05.000000001Z first\n"
    b"2026-01-02T03:04:05.000000001Z same stamp\n"
    b"2026-01-02T03:04:06.500000000Z caf\xc3\xa9 \x00 \xff bad\n"
    b"2026-01-02T03:04:07.000000000Z no newline yet"
)
TEXT = "first\nsame stamp\ncafé \ufffd \ufffd bad\nno newline yet"


START = Position()


def read_all(data: bytes, position: Position = START) -> tuple[str, Position]:
    parser = LogParser(position)
    text = parser.feed(data)
    return text, parser.position


def test_strips_timestamps_and_replaces_nul_and_invalid_utf8():
    assert read_all(STREAM)[0] == TEXT


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_resuming_from_any_cut_neither_loses_nor_repeats(cut):
    """A stream broken anywhere (mid-line, mid-timestamp, mid-character) and re-read from the start of
    the second (sinceTime is cut to whole seconds) yields the log exactly once."""
    first, position = read_all(STREAM[:cut])
    rest, _ = read_all(STREAM, position)
    assert first + rest == TEXT


def test_resume_skips_lines_sharing_the_second():
    first, position = read_all(STREAM[: STREAM.index(b"2026-01-02T03:04:06")])
    assert first == "first\nsame stamp\n"
    assert position == Position("2026-01-02T03:04:05.000000001Z", 2, 0)
    assert position.since_time == "2026-01-02T03:04:05Z"
    assert read_all(STREAM, position)[0] == TEXT[len(first) :]


def test_byte_by_byte_feeding_keeps_multibyte_characters_whole():
    parser = LogParser()
    text = "".join(parser.feed(STREAM[i : i + 1]) for i in range(len(STREAM)))
    assert text == TEXT


def test_pending_partial_character_is_not_counted_as_taken():
    parser = LogParser()
    parser.feed(b"2026-01-02T03:04:05.1Z ab\xe2\x82")  # first two bytes of the euro sign
    assert parser.position.partial == 2
    assert parser.feed(b"\xac\n") == "\u20ac\n"


def test_finish_flushes_a_dangling_partial_character():
    parser = LogParser()
    assert parser.feed(b"2026-01-02T03:04:05.1Z ab\xe2\x82") == "ab"
    assert parser.finish() == "\ufffd"


def test_a_line_without_timestamp_is_refused():
    with pytest.raises(UnreadableLog):
        LogParser().feed(
            b"unable to retrieve container logs for containerd://abc and more words here\n"
        )


def test_timestamp_precision_variants():
    assert timestamp_nanos(b"2026-01-02T03:04:05Z") + 123_000_000 == timestamp_nanos(
        b"2026-01-02T03:04:05.123Z"
    )
    assert timestamp_nanos(b"1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    with pytest.raises(UnreadableLog):
        timestamp_nanos(b"2026-01-02 03:04:05Z")


def test_restart_count_travels_with_the_position():
    parser = LogParser(Position(restarts=1))
    parser.feed(b"2026-01-02T03:04:05.1Z x\n")
    assert parser.position.restarts == 1
    assert parser.position == Position("2026-01-02T03:04:05.1Z", 1, 0, 1)


# --- take_stamps: one capture timestamp per line whose first character was returned ---

STAMPED = (
    b"2026-01-02T03:04:05.000000001Z first\n"
    b"2026-01-02T03:04:05.000000001Z \n"
    b"2026-01-02T03:04:05.000000002Z \xe2\x82\xac starts with a euro sign\n"
    b"2026-01-02T03:04:06.5Z \xf0\x9f\x99\x82\n"
    b"2026-01-02T03:04:07Z last, no newline"
)
STAMPED_TEXT = "first\n\n\u20ac starts with a euro sign\n\U0001f642\nlast, no newline"
LINE_STAMPS = [timestamp_nanos(line.split(b" ", 1)[0]) for line in STAMPED.split(b"\n")]


def starting(text: str, starts_line: bool) -> int:
    """How many lines start in `text`, counted by hand."""
    if not text:
        return 0
    return int(starts_line) + sum(1 for i, c in enumerate(text[:-1]) if c == "\n")


def test_take_stamps_gives_one_stamp_per_line_in_order():
    parser = LogParser()
    assert parser.feed(STAMPED) == STAMPED_TEXT
    assert parser.take_stamps() == LINE_STAMPS
    assert parser.take_stamps() == []
    assert parser.finish() == "" and parser.take_stamps() == []


@pytest.mark.parametrize("cut", range(len(STAMPED) + 1))
def test_take_stamps_after_each_feed_covers_the_lines_started_in_that_text(cut):
    parser = LogParser()
    texts, stamps = [], []
    for piece in (STAMPED[:cut], STAMPED[cut:]):
        texts.append(parser.feed(piece))
        stamps.append(parser.take_stamps())
    starts_line = texts[0] == "" or texts[0].endswith("\n")
    assert [len(s) for s in stamps] == [starting(texts[0], True), starting(texts[1], starts_line)]
    assert stamps[0] + stamps[1] == LINE_STAMPS and "".join(texts) == STAMPED_TEXT


@pytest.mark.parametrize("cut", range(len(STAMPED) + 1))
def test_a_resumed_parser_does_not_stamp_the_continued_line_again(cut):
    first = LogParser()
    head = first.feed(STAMPED[:cut])
    head_stamps = first.take_stamps()
    resumed = LogParser(first.position)
    rest = resumed.feed(STAMPED)
    rest_stamps = resumed.take_stamps()
    assert head + rest == STAMPED_TEXT
    assert len(rest_stamps) == starting(rest, head == "" or head.endswith("\n"))
    assert head_stamps + rest_stamps == LINE_STAMPS


def test_resumed_inside_a_line_the_continued_line_has_no_stamp():
    position = Position("2026-01-02T03:04:05.000000002Z", 0, 5)  # after "\u20ac s" (5 bytes)
    parser = LogParser(position)
    assert parser.feed(STAMPED) == "tarts with a euro sign\n\U0001f642\nlast, no newline"
    assert parser.take_stamps() == LINE_STAMPS[3:]


def test_a_first_character_split_across_feeds_is_stamped_once_with_its_text():
    parser = LogParser()
    assert parser.feed(b"2026-01-02T03:04:05.1Z \xe2\x82") == ""
    assert parser.take_stamps() == []
    assert parser.feed(b"\xac and more\n") == "\u20ac and more\n"
    assert parser.take_stamps() == [timestamp_nanos(b"2026-01-02T03:04:05.1Z")]
    assert parser.feed(b"2026-01-02T03:04:05.2Z \xf0") == ""
    assert parser.feed(b"\x9f") == "" and parser.feed(b"\x99") == ""
    assert parser.take_stamps() == []
    assert parser.feed(b"\x82\n") == "\U0001f642\n"
    assert parser.take_stamps() == [timestamp_nanos(b"2026-01-02T03:04:05.2Z")]


def test_finish_after_a_final_line_without_newline():
    parser = LogParser()
    assert parser.feed(b"2026-01-02T03:04:05.1Z done") == "done"
    assert parser.take_stamps() == [timestamp_nanos(b"2026-01-02T03:04:05.1Z")]
    assert parser.finish() == ""
    assert parser.take_stamps() == []


def test_finish_stamps_a_final_line_that_is_only_a_dangling_partial_character():
    parser = LogParser()
    assert parser.feed(b"2026-01-02T03:04:05.1Z a\n2026-01-02T03:04:05.2Z \xe2\x82") == "a\n"
    assert parser.take_stamps() == [timestamp_nanos(b"2026-01-02T03:04:05.1Z")]
    assert parser.finish() == "\ufffd"
    assert parser.take_stamps() == [timestamp_nanos(b"2026-01-02T03:04:05.2Z")]
