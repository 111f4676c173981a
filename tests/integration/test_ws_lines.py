"""WS line access: `?tail=N` snapshots and `?format=lines` frames, resumed exactly in both formats."""

import pytest

from testkit import scenarios
from testkit.wsclient import TailClient, log_text

LINES = "".join(f"line {i}\n" for i in range(1, 11))


def tail(live, task_id, query=""):
    return TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs{query}"))


def rebuilt_lines(frames, pod):
    """(first line number, texts) of one log from a lines-format tail, checking the numbers follow."""
    numbers, texts = [], []
    for frame in frames:
        if frame["type"] == "snapshot":
            entries = [e for e in frame["logs"] if e["pod"] == pod]
        elif frame["type"] == "lines" and frame["pod"] == pod:
            entries = [frame]
        else:
            continue
        for entry in entries:
            for index, line in enumerate(entry["lines"]):
                numbers.append(entry["line"] + index)
                texts.append(line["text"])
                assert line["ts"].endswith("Z") and len(line["ts"]) == 30
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True
    return (numbers[0] if numbers else None), texts


def test_tail_snapshot_holds_the_last_lines_with_their_offset_and_line(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", LINES)
    client = tail(live, task_id, "?tail=3")
    [entry] = client.frame()["logs"]
    assert (entry["logs"], entry["line"], entry["lines"]) == ("line 8\nline 9\nline 10\n", 8, 10)
    assert entry["offset"] == LINES.index("line 8\n")
    kube.write_log(wf.pod(), "main", "line 11\n")
    scenarios.finish(kube, wf)
    rest = client.rest()
    assert log_text(rest, wf.pod(), LINES[: entry["offset"]] + entry["logs"]) == LINES + "line 11\n"


def test_a_cursor_wins_over_tail(live, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", LINES)
    first = tail(live, task_id)
    snapshot = first.frame()
    first.close()
    kube.write_log(wf.pod(), "main", "line 11\n")
    again = tail(live, task_id, f"?tail=1&cursor={snapshot['cursor']}")
    resumed = again.frame()
    [entry] = resumed["logs"]
    assert (entry["offset"], entry["line"]) == (len(LINES), 11), "from the cursor, not the tail"
    scenarios.finish(kube, wf)
    assert log_text([resumed, *again.rest()], wf.pod(), LINES) == LINES + "line 11\n"


def test_lines_format_sends_whole_lines_and_the_last_one_when_its_container_ends(
    live, kube, task_id
):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "one\ntw")
    client = tail(live, task_id, "?format=lines")
    snapshot = client.frame()
    [entry] = snapshot["logs"]
    assert (entry["line"], [line["text"] for line in entry["lines"]]) == (1, ["one"])
    kube.write_log(wf.pod(), "main", "o\nthree")  # "three" has no newline yet
    frames = client.frames_until(lambda f: f["type"] == "lines")
    assert (frames[-1]["line"], [line["text"] for line in frames[-1]["lines"]]) == (2, ["two"])
    scenarios.finish(kube, wf)
    frames += client.rest()
    first, texts = rebuilt_lines([snapshot, *frames], wf.pod())
    assert (first, texts) == (1, ["one", "two", "three"])
    assert frames[-1]["type"] == "complete"


@pytest.mark.parametrize("second_format", ["lines", "append"])
def test_a_lines_cursor_resumes_exactly_in_either_format(live, kube, task_id, second_format):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", LINES + "half")
    client = tail(live, task_id, "?format=lines&tail=4")
    snapshot = client.frame()
    [entry] = snapshot["logs"]
    assert [line["text"] for line in entry["lines"]] == ["line 8", "line 9", "line 10"]
    client.close()
    kube.write_log(wf.pod(), "main", " done\nline 12\n")
    scenarios.finish(kube, wf)
    query = f"?cursor={snapshot['cursor']}" + ("&format=lines" if second_format == "lines" else "")
    again = tail(live, task_id, query)
    frames = again.rest()
    if second_format == "lines":
        first, texts = rebuilt_lines(frames, wf.pod())
        assert (first, texts) == (11, ["half done", "line 12"])
    else:
        assert log_text(frames, wf.pod(), LINES) == LINES + "half done\nline 12\n"
    assert again.close_code == 1000


def test_bad_line_parameters_close_with_an_error(live, kube, task_id):
    scenarios.workflow(kube, task_id)
    for query, word in [("?tail=0", "tail"), ("?format=words", "format")]:
        client = tail(live, task_id, query)
        frame = client.frame()
        assert frame["type"] == "error" and frame["error"] == "invalid_request"
        assert word in frame["message"]
        assert client.frame() is None and client.close_code == 1008
