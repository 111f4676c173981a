import base64

import pytest

from tasklogs.cursor import decode_cursor, encode_cursor
from tasklogs.errors import InvalidRequest


def test_round_trip_is_url_safe():
    offsets = {"wf-abc-main-123": 10, "wf-abc-main-456": 0}
    token = encode_cursor(offsets)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(token) == offsets


def test_no_cursor_means_none():
    assert decode_cursor(None) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64!",
        base64.urlsafe_b64encode(b"plain").decode(),
        "A" * 20000,
        base64.urlsafe_b64encode(__import__("zlib").compress(b'{"v":1,"o":{"p":-1}}')).decode(),
    ],
)
def test_malformed_cursors_are_refused(token):
    with pytest.raises(InvalidRequest):
        decode_cursor(token)
