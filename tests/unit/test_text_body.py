"""The `text` body and its Content-Length: known for the whole stored logs of a complete task (one or
several, with their `==> pod <==` heads), unknown otherwise; a body that comes out shorter than the
length sent ends in an error (the server then closes the connection), and UTF-8 goes out as stored."""

import pytest

from tasklogs import render, service
from tasklogs.linequery import LineQuery
from testkit.names import ref

WHOLE = LineQuery()


def finished(services, cluster, wf, logs: dict[str, str]) -> service.TaskView:
    """The task of `logs` (step -> text), finished and read twice: the second view is the store's."""
    pods = cluster.add_workflow(wf, list(logs))
    for step, text in logs.items():
        cluster.write(pods[step], text)
    cluster.finish(wf)
    service.get_task_logs(services, ref(wf))
    view = service.get_task_logs(services, ref(wf))
    assert (view.source, view.complete) == ("database", True)
    return view


def body(view, query=WHOLE, length=None) -> bytes:
    return b"".join(render.text_body(view, query, length))


def test_one_stored_log_has_its_bytes_as_length(services, cluster, wf):
    view = finished(services, cluster, wf, {"a": "\u00e9t\u00e9 \u65e5\u672c\n" * 1000})
    length = render.text_length(view, WHOLE)
    assert (
        length
        == len(body(view, length=length))
        == len(("\u00e9t\u00e9 \u65e5\u672c\n" * 1000).encode())
    )
    assert body(view) == ("\u00e9t\u00e9 \u65e5\u672c\n" * 1000).encode()


def test_several_logs_count_their_heads(services, cluster, wf):
    view = finished(services, cluster, wf, {"a": "alpha\n", "b": "beta\n", "c": ""})
    text = body(view, length=render.text_length(view, WHOLE))
    assert render.text_length(view, WHOLE) == len(text)
    assert text.count(b"==> ") == 3 and b"alpha\n" in text and b"beta\n" in text


def test_no_length_for_line_queries_running_tasks_or_logs_read_from_the_cluster(
    services, memstore, cluster, wf
):
    view = finished(services, cluster, wf, {"a": "one\ntwo\n"})
    assert render.text_length(view, LineQuery(tail=1)) is None
    assert body(view, LineQuery(tail=1)) == b"two\n"
    running = f"{wf}-running"
    pod = cluster.add_workflow(running)["a"]
    cluster.write(pod, "so far\n")
    assert render.text_length(service.get_task_logs(services, ref(running)), WHOLE) is None
    memstore.down = True
    degraded = service.get_task_logs(services, ref(wf))
    assert degraded.degraded == "database" and render.text_length(degraded, WHOLE) is None


def test_a_body_shorter_than_its_length_ends_in_an_error(services, cluster, wf):
    view = finished(services, cluster, wf, {"a": "short\n"})
    pieces = render.text_body(view, WHOLE, length=100)
    assert next(pieces) == b"short\n"
    with pytest.raises(RuntimeError, match="6 bytes, not the 100"):
        next(pieces)
