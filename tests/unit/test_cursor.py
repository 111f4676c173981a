import base64
import json
import zlib

import pytest

from tasklogs.cursor import Cursor, decode_cursor, encode_cursor
from tasklogs.errors import InvalidRequest

ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def v1(offsets: dict) -> str:
    """A version 1 token, as the service issued them before."""
    payload = json.dumps({"v": 1, "o": offsets}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(payload, 6)).decode().rstrip("=")


def test_round_trip_is_url_safe_and_leaves_out_what_was_not_seen():
    offsets = {"wf-abc-main-123/main": 10, "wf-abc-main-456/main": 0, "new/main": 7}
    token = encode_cursor(offsets, {"wf-abc-main-123/main": 41, "wf-abc-main-456/main": 42})
    assert set(token) <= ALPHABET
    assert decode_cursor(token) == Cursor({"new/main": 7}, {41: 10})


def test_offsets_resolve_row_ids_to_keys():
    cursor = decode_cursor(
        encode_cursor({"a/main": 5, "b/main": 300000}, {"a/main": 9, "b/main": 12})
    )
    keys = {9: "a/main", 12: "b/main"}
    assert cursor.known(keys, set(keys.values()))
    assert cursor.offsets(keys, set(keys.values()), "wf") == {"a/main": 5, "b/main": 300000}


def test_a_version_1_cursor_still_reads():
    cursor = decode_cursor(v1({"p/main": 12, "q/main": 0}))
    assert cursor == Cursor({"p/main": 12})
    assert cursor.offsets({}, {"p/main", "q/main"}, "wf") == {"p/main": 12}


def test_keys_that_are_not_logs_of_the_task_are_refused_by_name():
    cursor = decode_cursor(v1({f"invented-{i}/main": 1 for i in range(200)}))
    with pytest.raises(
        InvalidRequest,
        match=r"cursor names 'invented-0/main'.* and more, which are not a log of task 'wf'",
    ):
        cursor.offsets({}, {"real/main"}, "wf")
    with pytest.raises(InvalidRequest, match=r"log #7, which is not a log of task 'wf'"):
        Cursor({}, {7: 3}).offsets({8: "real/main"}, {"real/main"}, "wf")


def test_a_task_of_1000_pods_fits_in_the_request_line():
    keys = [f"big-workflow-x7k2p-echo-{1000000000 + 7919 * i}/main" for i in range(1000)]
    offsets = {key: 1_500_000 + i for i, key in enumerate(keys)}  # about 1.5 MB seen of every log
    compact = encode_cursor(offsets, {key: 5000 + i for i, key in enumerate(keys)})
    assert len(compact) < 8190 - 1000, len(
        compact
    )  # gunicorn's line, with room for the rest of the URL
    assert len(v1(offsets)) > 8190, "what version 1 made of it: a 414"
    assert decode_cursor(compact).by_log_id == {5000 + i: 1_500_000 + i for i in range(1000)}


def test_no_cursor_means_none():
    assert decode_cursor(None) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64!",
        base64.urlsafe_b64encode(b"plain").decode(),
        "A" * 20000,
        base64.urlsafe_b64encode(zlib.compress(b'{"v":1,"o":{"p":-1}}')).decode(),
        base64.urlsafe_b64encode(zlib.compress(b'{"v":1,"o":{"p":true}}')).decode(),
        base64.urlsafe_b64encode(zlib.compress(b"\x02\x05\x01")).decode(),  # 5 ids, one given
        base64.urlsafe_b64encode(zlib.compress(b"\x02\x00\x09ab")).decode(),  # a key cut short
        base64.urlsafe_b64encode(zlib.compress(b"\x02\x01" + b"\xff" * 12)).decode(),
        base64.urlsafe_b64encode(zlib.compress(b"\x02\x00\x02\xff\xfe\x01")).decode(),  # not UTF-8
    ],
)
def test_malformed_cursors_are_refused(token):
    with pytest.raises(InvalidRequest):
        decode_cursor(token)
