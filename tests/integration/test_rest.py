"""GET /api/v1/tasks/{task_id}/logs against real PostgreSQL and the fake Kubernetes API server."""

import pytest

from testkit import scenarios


def get(client, task_id, **params):
    response = client.get(f"/api/v1/tasks/{task_id}/logs", query_string=params)
    return response, response.get_json()


def test_running_task_is_read_from_kubernetes_and_saved(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    kube.write_log(wf.pod("a"), "main", "line 1\nline 2\n")
    kube.write_log(wf.pod("b"), "main", "other\n")
    response, body = get(client, task_id)
    assert response.status_code == 200
    assert body["task_id"] == task_id and body["phase"] == "Running"
    assert body["source"] == "kubernetes" and body["complete"] is False
    assert [(e["node"], e["pod"], e["phase"], e["logs"]) for e in body["logs"]] == [
        (wf.nodes["a"], wf.pod("a"), "Running", "line 1\nline 2\n"),
        (wf.nodes["b"], wf.pod("b"), "Running", "other\n"),
    ]
    kube.write_log(wf.pod("a"), "main", "line 3\n")
    _, body = get(client, task_id)
    assert body["logs"][0]["logs"] == "line 1\nline 2\nline 3\n", (
        "a running task is refreshed, not served stale"
    )


def test_finished_task_is_saved_once_then_served_from_the_database_alone(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "all done\n")
    scenarios.finish(kube, wf)
    _, body = get(client, task_id)
    assert (body["source"], body["complete"], body["phase"]) == ("kubernetes", True, "Succeeded")
    kube.reset_requests()
    _, body = get(client, task_id)
    assert (body["source"], body["complete"], body["logs"][0]["logs"]) == (
        "database",
        True,
        "all done\n",
    )
    assert kube.count() == 0, "a finished, saved task must not touch the cluster"


def test_pods_deleted_after_the_logs_were_saved(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "kept\n")
    scenarios.finish(kube, wf)
    get(client, task_id)
    kube.delete_pod(wf.pod())
    kube.delete_workflow(task_id)
    _, body = get(client, task_id)
    assert body["logs"][0]["logs"] == "kept\n"


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("annotated", [True, False])
def test_pod_naming_versions_with_and_without_node_id_annotation(
    client, kube, task_id, version, annotated
):
    wf = scenarios.workflow(
        kube, task_id, version=version, annotate_version=annotated, node_id_annotation=annotated
    )
    kube.write_log(wf.pod(), "main", f"{version}\n")
    _, body = get(client, task_id)
    assert [(e["pod"], e["logs"]) for e in body["logs"]] == [(wf.pod(), f"{version}\n")]
    assert wf.pod() == (
        wf.nodes["a"] if version == "v1" else f"{task_id}-echo-{wf.nodes['a'].rsplit('-', 1)[1]}"
    )


def test_compressed_nodes(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["a", "b"], compressed=True)
    kube.write_log(wf.pod("b"), "main", "from b\n")
    _, body = get(client, task_id)
    assert [e["logs"] for e in body["logs"]] == ["", "from b\n"]


def test_pending_pod_gives_an_empty_entry_with_its_phase(client, kube, task_id):
    wf = scenarios.workflow(
        kube, task_id, phase="Pending", pod_phase="Pending", container_state="waiting"
    )
    response, body = get(client, task_id)
    assert response.status_code == 200
    assert [(e["pod"], e["phase"], e["logs"]) for e in body["logs"]] == [(wf.pod(), "Pending", "")]


def test_workflow_deleted_with_pods_left(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    kube.write_log(wf.pod("a"), "main", "before\n")
    get(client, task_id)  # stored once: the task is known
    kube.write_log(wf.pod("a"), "main", "orphan\n")
    kube.delete_workflow(task_id)
    _, body = get(client, task_id)
    assert sorted((e["pod"], e["logs"]) for e in body["logs"]) == sorted(
        [(wf.pod("a"), "before\norphan\n"), (wf.pod("b"), "")]
    )


def test_a_never_stored_task_without_its_workflow_is_unknown_after_one_request(
    client, kube, task_id
):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "orphan\n")
    kube.delete_workflow(task_id)
    kube.reset_requests()
    response, body = get(client, task_id)
    assert response.status_code == 404 and body["error"] == "task_not_found"
    assert kube.count() == 1, "the Workflow's 404 ends it: its pods are not listed"


def test_retries_give_one_entry_per_attempt(client, kube, task_id):
    from testkit.fakekube import argo_pod_name, argo_workflow, node_id

    retry = f"{task_id}[0].flaky"
    nodes = [
        {"name": task_id, "type": "Steps", "templateName": "main", "children": [retry]},
        {
            "name": retry,
            "type": "Retry",
            "templateName": "flaky",
            "children": [f"{retry}(0)", f"{retry}(1)"],
        },
        {
            "name": f"{retry}(0)",
            "type": "Pod",
            "templateName": "flaky",
            "phase": "Failed",
            "startedAt": "2026-01-02T03:04:05Z",
        },
        {
            "name": f"{retry}(1)",
            "type": "Pod",
            "templateName": "flaky",
            "phase": "Running",
            "startedAt": "2026-01-02T03:04:09Z",
        },
    ]
    kube.add_workflow(argo_workflow(task_id, nodes=nodes, pod_name_format="v2"))
    for attempt in (0, 1):
        name = f"{retry}({attempt})"
        pod = argo_pod_name(task_id, name, "flaky", "v2")
        kube.add_argo_pod(task_id, node_id(task_id, name), pod, node_name=name)
        kube.write_log(pod, "main", f"attempt {attempt}\n")
    _, body = get(client, task_id)
    assert [(e["phase"], e["logs"]) for e in body["logs"]] == [
        ("Failed", "attempt 0\n"),
        ("Running", "attempt 1\n"),
    ]


def test_nul_and_invalid_utf8_are_stored_as_replacement_characters(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", b"nul:\x00 bad:\xff\xfe ok:\xc3\xa9\n")
    scenarios.finish(kube, wf)
    get(client, task_id)
    _, body = get(client, task_id)
    assert body["source"] == "database"
    assert body["logs"][0]["logs"] == "nul:\ufffd bad:\ufffd\ufffd ok:\u00e9\n"


@pytest.mark.parametrize(
    "bad",
    [
        "UPPER",
        "a" * 254,
        "with space",
        "dots..twice",
        "-leading",
        "caf\u00e9",
        "nul\x00",
        "under_score",
        "..",
    ],
)
def test_invalid_task_ids_get_400_and_never_reach_the_cluster(client, kube, bad):
    kube.reset_requests()
    response, body = get(client, bad)
    assert response.status_code == 400
    assert body["error"] == "invalid_task_id" and "task id" in body["message"]
    assert kube.count() == 0


def test_unknown_task_is_404(client, kube, task_id):
    response, body = get(client, task_id)
    assert response.status_code == 404 and body["error"] == "task_not_found"


def test_forbidden_cluster_is_502_naming_the_permission(client, kube, task_id):
    scenarios.workflow(kube, task_id)
    kube.rbac_rules = [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get"]}]
    response, body = get(client, task_id)
    assert response.status_code == 502 and body["error"] == "cluster_refused"
    assert "'list' on 'pods'" in body["message"]


def test_cluster_down_without_stored_logs_is_503(client, kube, task_id):
    kube.stop()
    response, body = get(client, task_id)
    assert response.status_code == 503 and body["error"] == "cluster_unavailable"


def test_cluster_down_serves_stored_logs_marked_degraded(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "saved while running\n")
    get(client, task_id)
    kube.stop()
    response, body = get(client, task_id)
    assert response.status_code == 200
    assert response.headers["X-Tasklogs-Degraded"] == "kubernetes"
    assert (body["source"], body["logs"][0]["logs"]) == ("database", "saved while running\n")


def test_unknown_query_parameters_and_formats_are_400(client, kube, task_id):
    assert get(client, task_id, foo="1")[0].status_code == 400
    response, body = get(client, task_id, format="xml")
    assert response.status_code == 400 and body["error"] == "invalid_request"


def test_plain_text_download(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    kube.write_log(wf.pod("a"), "main", "alpha\n")
    kube.write_log(wf.pod("b"), "main", "beta\n")
    response = client.get(f"/api/v1/tasks/{task_id}/logs?format=text&pod={wf.pod('b')}")
    assert response.mimetype == "text/plain" and response.get_data(as_text=True) == "beta\n"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "Content-Length" not in response.headers  # running: the log may still grow
    both = client.get(f"/api/v1/tasks/{task_id}/logs?format=text").get_data(as_text=True)
    assert f"==> {wf.pod('a')}" in both and "alpha\n" in both and "beta\n" in both
    assert client.get(f"/api/v1/tasks/{task_id}/logs?pod=nope").status_code == 404
    kube.write_log(wf.pod("b"), "main", "\u00e9t\u00e9\n")
    scenarios.finish(kube, wf)
    client.get(f"/api/v1/tasks/{task_id}/logs")  # stores the end
    for query in ("", f"&pod={wf.pod('b')}"):
        response = client.get(f"/api/v1/tasks/{task_id}/logs?format=text{query}")
        assert int(response.headers["Content-Length"]) == len(response.get_data())
    assert response.get_data() == "beta\n\u00e9t\u00e9\n".encode()
    tail = client.get(f"/api/v1/tasks/{task_id}/logs?format=text&tail=1")
    assert "Content-Length" not in tail.headers  # a line query: its size is known once it is read
    assert "alpha\n" in tail.get_data(as_text=True) and "\u00e9t\u00e9\n" in tail.get_data(
        as_text=True
    )


def test_the_designs_kubernetes_helper_reads_whole_logs(app, kube, task_id):
    from tasklogs.errors import InvalidTaskId, NamespaceNotServed, TaskNotFound
    from tasklogs.service import fetch_logs_from_kubernetes

    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    kube.write_log(wf.pod("a"), "main", "whole\nlog\n")
    kube.finish_pod(wf.pod("b"), phase="Failed", exit_code=1)
    services = app.extensions["tasklogs"]
    assert fetch_logs_from_kubernetes(services, task_id, "argo") == [
        {
            "node": wf.nodes["a"],
            "pod": wf.pod("a"),
            "container": "main",
            "phase": "Running",
            "logs": "whole\nlog\n",
        },
        {
            "node": wf.nodes["b"],
            "pod": wf.pod("b"),
            "container": "main",
            "phase": "Running",
            "logs": "",
        },
    ]
    with pytest.raises(NamespaceNotServed, match="'default' is not served"):
        fetch_logs_from_kubernetes(services, task_id, "default")
    with pytest.raises(InvalidTaskId):
        fetch_logs_from_kubernetes(services, "Not A Name")
    with pytest.raises(TaskNotFound):
        fetch_logs_from_kubernetes(services, task_id + "-unknown")
