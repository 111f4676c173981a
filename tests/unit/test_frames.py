"""Frame builders and SharedFrame's wire bytes (RFC 6455 section 5.2 lengths)."""

import json

import pytest

from tasklogs.engine import frames
from tasklogs.engine.frames import SharedFrame
from tasklogs.identity import LogId
from testkit.names import ref

LOG = LogId("n", "p", "main")


def test_builders_carry_the_log_identity_and_fields():
    assert json.loads(frames.append(LOG, 5, "é\n", "c")) == {
        "type": "append",
        "node": "n",
        "pod": "p",
        "container": "main",
        "offset": 5,
        "data": "é\n",
        "cursor": "c",
    }
    assert "é" in frames.append(LOG, 0, "é", "c")  # not \u-escaped: fewer bytes on the wire
    snapshot = json.loads(
        frames.snapshot(
            ref("wf"),
            "Running",
            "kubernetes",
            False,
            [frames.snapshot_entry(LOG, "Running", 0, "x", 1, 1)],
            "c",
        )
    )
    assert snapshot["logs"] == [
        {
            "node": "n",
            "pod": "p",
            "container": "main",
            "phase": "Running",
            "offset": 0,
            "line": 1,
            "lines": 1,
            "logs": "x",
        }
    ]
    assert json.loads(frames.lines(LOG, 7, [{"ts": "t", "text": "a"}], "c")) == {
        "type": "lines",
        "node": "n",
        "pod": "p",
        "container": "main",
        "line": 7,
        "lines": [{"ts": "t", "text": "a"}],
        "cursor": "c",
    }
    assert json.loads(frames.gone(LOG, "m"))["message"] == "m"
    assert json.loads(frames.error(503, "unavailable", "m")) == {
        "type": "error",
        "status": 503,
        "error": "unavailable",
        "message": "m",
    }
    assert (frames.NORMAL, frames.GOING_AWAY, frames.TRY_AGAIN, frames.SLOW_CLIENT) == (
        1000,
        1001,
        1013,
        4008,
    )


@pytest.mark.parametrize(
    "size, header",
    [
        (5, b"\x81\x05"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (70000, b"\x81\x7f" + (70000).to_bytes(8, "big")),
    ],
)
def test_shared_frame_wire_is_one_unmasked_final_text_frame(size, header):
    frame = SharedFrame("x" * size)
    assert frame.wire == header + b"x" * size
    assert frame.wire is frame.wire  # built once
