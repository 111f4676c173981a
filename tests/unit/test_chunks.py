"""The chunked-body decoder of the log streams, fed in every possible split."""

import pytest

from tasklogs.kube import BrokenChunk, _ChunkDecoder

BODY = b"5\r\nhello\r\n1;ext=1\r\n \r\na\r\nworld\n\xe2\x82\xac!\r\n0\r\n\r\n"


@pytest.mark.parametrize("cut", range(1, len(BODY)))
def test_any_split_gives_the_same_body(cut):
    decoder = _ChunkDecoder()
    body = decoder.feed(BODY[:cut]) + decoder.feed(BODY[cut:])
    assert body == b"hello world\n\xe2\x82\xac!" and decoder.done


def test_byte_by_byte():
    decoder = _ChunkDecoder()
    assert (
        b"".join(decoder.feed(BODY[i : i + 1]) for i in range(len(BODY)))
        == b"hello world\n\xe2\x82\xac!"
    )


def test_not_done_before_the_last_chunk():
    decoder = _ChunkDecoder()
    decoder.feed(b"5\r\nhel")
    assert not decoder.done


def test_bad_size_is_refused():
    with pytest.raises(BrokenChunk):
        _ChunkDecoder().feed(b"zz\r\nhello\r\n")
