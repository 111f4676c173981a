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
