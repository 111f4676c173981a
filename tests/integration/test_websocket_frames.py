"""Frames of every type recorded from real tails (the fake cluster, the app on a live server, a real
WebSocket client), each validated against its JSON Schema in tasklogs/websocket-frames.json."""

import pytest
from jsonschema import Draft202012Validator

from tasklogs import apidoc
from testkit import scenarios
from testkit.wsclient import TailClient

FRAME_TYPES = {"snapshot", "append", "lines", "phase", "gone", "complete", "error"}


@pytest.fixture(scope="module")
def frame_schema():
    document = apidoc.document(apidoc.WEBSOCKET_FRAMES)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER)


def tail(live, task_id, query=""):
    return TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs{query}"))


def record_append_tail(live, kube, task_id) -> list[dict]:
    """A tail that sees text, a pod deleted, phases and the end."""
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    kube.write_log(wf.pod("a"), "main", "first ✓\n")
    client = tail(live, task_id)
    frames = [client.frame()]
    kube.write_log(wf.pod("a"), "main", "second\n")
    frames += client.frames_until(lambda f: f["type"] == "append")
    kube.delete_pod(wf.pod("a"))
    frames += client.frames_until(lambda f: f["type"] == "gone")
    kube.write_log(wf.pod("b"), "main", "b's line\n")
    scenarios.finish(kube, wf, phase="Failed")
    frames += client.rest()
    assert client.close_code == 1000
    return frames


def record_lines_tail(live, kube, task_id) -> list[dict]:
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "one\ntwo\n")
    client = tail(live, task_id, "?format=lines&tail=1")
    frames = [client.frame()]
    kube.write_log(wf.pod(), "main", "three\n")
    frames += client.frames_until(lambda f: f["type"] == "lines")
    scenarios.finish(kube, wf)
    frames += client.rest()
    return frames


def record_errors(live, task_id) -> list[dict]:
    frames = []
    for name, query in (("Not_Valid", ""), (task_id, ""), (task_id, "?cursor=garbage")):
        client = tail(live, name, query)
        frames.append(client.frame())
        assert client.frame() is None and client.close_code == 1008
    return frames


def test_frames_of_every_type_are_as_their_schemas_say(live, kube, task_id, frame_schema):
    frames = record_append_tail(live, kube, task_id)
    frames += record_lines_tail(live, kube, task_id + "-lines")
    frames += record_errors(live, task_id + "-unknown")
    assert {frame["type"] for frame in frames} == FRAME_TYPES
    for frame in frames:
        errors = [error.message for error in frame_schema.iter_errors(frame)]
        assert errors == [], f"{frame['type']} frame {frame}: {errors}"
    snapshots = [frame for frame in frames if frame["type"] == "snapshot"]
    assert "logs" in snapshots[0]["logs"][0] and isinstance(snapshots[1]["logs"][0]["lines"], list)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "append", "node": "n", "pod": "p", "container": "main", "offset": 0, "data": "x"},
        {"type": "phase", "phase": "Running"},
        {"type": "complete", "phase": "Succeeded", "extra": 1},
        {"type": "lines", "node": "n", "pod": "p", "container": "c", "line": 0, "lines": [{}]},
        {"type": "error", "status": 200, "error": "x", "message": "y"},
        {"type": "heartbeat"},
    ],
)
def test_the_schemas_refuse_what_the_protocol_never_sends(frame_schema, frame):
    assert not frame_schema.is_valid(frame)
