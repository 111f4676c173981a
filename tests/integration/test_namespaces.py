"""Many namespaces: tasks keyed by (namespace, name), the namespaced routes, TASKLOGS_NAMESPACES, the
collector over several namespaces or cluster-wide, and task listing."""

import json
import os

import pytest

from tasklogs.pages import PAGE_CHARS
from testkit import ROOT, scenarios
from testkit.apps import LiveServer, dispose, make_app
from testkit.waiting import wait_for
from testkit.wsclient import TailClient, log_text
from tests.integration.test_collector import RunningCollector

OTHER = "argo-ci"  # the second namespace of deploy/overlays/namespaces/rbac.yaml
SERVED = {"TASKLOGS_NAMESPACES": f"argo,{OTHER}"}
CLUSTER_RBAC = os.path.join(ROOT, "deploy", "overlays", "all-namespaces", "rbac-cluster.yaml")


@pytest.fixture
def served_app(database_url, kube_adapter):
    app = make_app(database_url, kube_adapter, **SERVED)
    yield app
    dispose(app)


def finished_workflow(kube, name, text, phase="Succeeded"):
    wf = scenarios.workflow(kube, name)
    kube.write_log(wf.pod(), "main", text)
    scenarios.finish(kube, wf, phase=phase)
    return wf


def test_the_same_name_in_two_namespaces_is_two_tasks(served_app, kube, task_id):
    finished_workflow(kube, task_id, "from argo\n")
    finished_workflow(kube.in_namespace(OTHER), task_id, "from argo-ci\n")
    client = served_app.test_client()
    default = client.get(f"/api/v1/tasks/{task_id}/logs").get_json()
    named = client.get(f"/api/v1/namespaces/argo/tasks/{task_id}/logs").get_json()
    other = client.get(f"/api/v1/namespaces/{OTHER}/tasks/{task_id}/logs").get_json()
    assert [e["logs"] for e in default["logs"]] == ["from argo\n"]
    assert named["logs"] == default["logs"]
    assert [e["logs"] for e in other["logs"]] == ["from argo-ci\n"]
    assert other["complete"] and default["complete"]
    # both stored: served from the database alone once the cluster is gone
    kube.stop()
    again = client.get(f"/api/v1/namespaces/{OTHER}/tasks/{task_id}/logs").get_json()
    assert (again["source"], [e["logs"] for e in again["logs"]]) == ("database", ["from argo-ci\n"])


def test_line_parameters_work_on_the_namespaced_route(served_app, kube, task_id):
    finished_workflow(kube.in_namespace(OTHER), task_id, "one\ntwo\nthree\n")
    response = served_app.test_client().get(
        f"/api/v1/namespaces/{OTHER}/tasks/{task_id}/logs?format=text&tail=2"
    )
    assert response.status_code == 200 and response.get_data(as_text=True) == "two\nthree\n"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/namespaces/elsewhere/tasks/{id}/logs", "/api/v1/namespaces/elsewhere/tasks"],
)
def test_a_namespace_not_served_is_a_404(served_app, kube, task_id, path):
    kube.reset_requests()
    response = served_app.test_client().get(path.format(id=task_id))
    body = response.get_json()
    assert response.status_code == 404 and body["error"] == "namespace_not_served"
    assert "'elsewhere'" in body["message"] and f"argo,{OTHER}" in body["message"]
    assert kube.count() == 0, "refused before asking the cluster"


def test_without_tasklogs_namespaces_only_the_default_is_served(client, kube, task_id):
    finished_workflow(kube.in_namespace(OTHER), task_id, "x\n")
    response = client.get(f"/api/v1/namespaces/{OTHER}/tasks/{task_id}/logs")
    assert response.status_code == 404 and response.get_json()["error"] == "namespace_not_served"
    assert client.get(f"/api/v1/namespaces/argo/tasks/{task_id}/logs").status_code == 404


def test_a_malformed_namespace_is_not_served(served_app):
    response = served_app.test_client().get("/api/v1/namespaces/Not_A_Namespace/tasks/wf/logs")
    assert response.status_code == 404 and response.get_json()["error"] == "namespace_not_served"


def test_the_namespaced_websocket_tails_the_right_task(served_app, kube, task_id):
    finished_workflow(kube, task_id, "argo's\n")
    other = kube.in_namespace(OTHER)
    wf = scenarios.workflow(other, task_id)
    other.write_log(wf.pod(), "main", "first\n")
    server = LiveServer(served_app)
    try:
        tail = TailClient(server.ws_url(f"/ws/namespaces/{OTHER}/tasks/{task_id}/logs"))
        snapshot = tail.frame()
        assert (snapshot["type"], snapshot["namespace"], snapshot["task_id"]) == (
            "snapshot",
            OTHER,
            task_id,
        )
        other.write_log(wf.pod(), "main", "second\n")
        frames = [snapshot, *tail.frames_until(lambda f: f["type"] == "append")]
        scenarios.finish(other, wf)
        frames += tail.rest()
        assert frames[-1]["type"] == "complete" and tail.close_code == 1000
        assert log_text(frames, wf.pod()) == "first\nsecond\n"
        tail.close()
        refused = TailClient(server.ws_url(f"/ws/namespaces/elsewhere/tasks/{task_id}/logs"))
        error = refused.frame()
        assert (error["type"], error["error"]) == ("error", "namespace_not_served")
        refused.close()
    finally:
        server.close()


# --- the collector over several namespaces ---


def watch_paths(kube) -> set[str]:
    return {r.path for r in kube.requests if r.verb == "watch"}


def test_the_collector_watches_every_served_namespace(
    database_url, collector_kube_adapter, served_app, kube, task_id
):
    collector = RunningCollector(database_url, collector_kube_adapter, **SERVED)
    try:
        views = {namespace: kube.in_namespace(namespace) for namespace in ("argo", OTHER)}
        flows = {namespace: scenarios.workflow(view, task_id) for namespace, view in views.items()}
        assert wait_for(lambda: kube.open_streams() == 2, 10), "one stream per container"
        for namespace, view in views.items():
            view.write_log(flows[namespace].pod(), "main", f"collected in {namespace}\n")
            scenarios.finish(view, flows[namespace])
        for namespace, view in views.items():
            url = f"/api/v1/namespaces/{namespace}/tasks/{task_id}/logs"
            assert wait_for(
                lambda url=url: served_app.test_client().get(url).get_json().get("complete"), 10
            )
            view.delete_pod(flows[namespace].pod())  # podGC
        client = served_app.test_client()
        for namespace in ("argo", OTHER):
            url = f"/api/v1/namespaces/{namespace}/tasks/{task_id}/logs"
            assert wait_for(lambda url=url: client.get(url).get_json().get("complete") is True, 10)
            body = client.get(url).get_json()
            assert [e["logs"] for e in body["logs"]] == [f"collected in {namespace}\n"]
        assert {p for p in watch_paths(kube) if "/namespaces/" in p} == {
            f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows" for ns in ("argo", OTHER)
        } | {f"/api/v1/namespaces/{ns}/pods" for ns in ("argo", OTHER)}
    finally:
        collector.stop()


def test_with_every_namespace_the_collector_runs_one_cluster_wide_watch(
    database_url, kube, tmp_path, task_id
):
    from tests.conftest import adapter_for

    token = kube.add_service_account(CLUSTER_RBAC, "tasklogs-collector")
    adapter = adapter_for(kube, kube.write_kubeconfig(str(tmp_path / "cluster"), token))
    collector = RunningCollector(database_url, adapter, TASKLOGS_NAMESPACES="*")
    web = make_app(database_url, adapter, TASKLOGS_NAMESPACES="*")
    try:
        for namespace in ("team-a", "team-b"):
            view = kube.in_namespace(namespace)
            wf = scenarios.workflow(view, task_id)
            view.write_log(wf.pod(), "main", f"in {namespace}\n")
            scenarios.finish(view, wf)
        client = web.test_client()
        for namespace in ("team-a", "team-b"):
            url = f"/api/v1/namespaces/{namespace}/tasks/{task_id}/logs"
            assert wait_for(lambda url=url: client.get(url).get_json().get("complete") is True, 10)
        assert watch_paths(kube) == {"/apis/argoproj.io/v1alpha1/workflows", "/api/v1/pods"}
        listed = client.get("/api/v1/tasks?prefix=" + task_id).get_json()["tasks"]
        assert sorted(t["namespace"] for t in listed) == ["team-a", "team-b"]
    finally:
        collector.stop()
        dispose(web)
        adapter.close()


def test_a_namespaced_rbac_cannot_watch_the_whole_cluster(kube, collector_kube_adapter):
    from tasklogs.errors import ClusterRefused

    with pytest.raises(ClusterRefused, match="at the cluster scope"):
        collector_kube_adapter.in_namespace("*").list_workflows()


# --- task listing ---


def listing(client, query=""):
    response = client.get(f"/api/v1/tasks{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_listing_is_newest_first_with_sizes(served_app, kube, task_id):
    names = [f"{task_id}-{index}" for index in range(3)]
    for index, name in enumerate(names):
        view = kube if index != 1 else kube.in_namespace(OTHER)
        finished_workflow(
            view, name, "line\n" * (index + 1), phase="Failed" if index else "Succeeded"
        )
        view.update_workflow(  # as the controller sets it, in whole seconds
            name, lambda w, i=index: w["status"].update(startedAt=f"2026-06-01T00:00:0{i}Z")
        )
    client = served_app.test_client()
    for index, name in enumerate(names):
        namespace = OTHER if index == 1 else "argo"
        assert client.get(f"/api/v1/namespaces/{namespace}/tasks/{name}/logs").status_code == 200
    body = listing(client, f"?prefix={task_id}-")
    assert [t["task_id"] for t in body["tasks"]] == names[::-1] and body["next"] is None
    newest = body["tasks"][0]
    assert newest == {
        "namespace": "argo",
        "task_id": names[2],
        "phase": "Failed",
        "complete": True,
        "started_at": newest["started_at"],
        "finished_at": newest["finished_at"],
        "pods": 1,
        "lines": 3,
        "bytes": 15,
    }
    assert newest["started_at"].endswith("Z") and newest["finished_at"].endswith("Z")
    assert body["tasks"][1]["namespace"] == OTHER
    assert [t["task_id"] for t in listing(client, f"?prefix={task_id}-&phase=Failed")["tasks"]] == [
        names[2],
        names[1],
    ]
    only_other = client.get(f"/api/v1/namespaces/{OTHER}/tasks?prefix={task_id}").get_json()
    assert [t["task_id"] for t in only_other["tasks"]] == [names[1]]


def test_listing_pages_by_keyset_stable_while_tasks_arrive(served_app, kube, task_id):
    client = served_app.test_client()
    for index in range(5):
        finished_workflow(kube, f"{task_id}-{index}", "x\n")
        assert client.get(f"/api/v1/tasks/{task_id}-{index}/logs").status_code == 200
    first = listing(client, f"?prefix={task_id}&limit=2")
    assert len(first["tasks"]) == 2 and first["next"]
    finished_workflow(kube, f"{task_id}-new", "x\n")  # a newer task arrives between pages
    assert client.get(f"/api/v1/tasks/{task_id}-new/logs").status_code == 200
    seen = [t["task_id"] for t in first["tasks"]]
    cursor = first["next"]
    while cursor:
        page = listing(client, f"?prefix={task_id}&limit=2&cursor={cursor}")
        seen += [t["task_id"] for t in page["tasks"]]
        cursor = page["next"]
    assert sorted(seen) == sorted(f"{task_id}-{i}" for i in range(5)), "no gap, no duplicate"
    assert listing(client, f"?prefix={task_id}&limit=1")["tasks"][0]["task_id"] == f"{task_id}-new"


def test_a_running_task_is_listed_with_what_is_stored_so_far(served_app, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "so far\n")
    client = served_app.test_client()
    assert client.get(f"/api/v1/tasks/{task_id}/logs").status_code == 200
    (task,) = listing(client, f"?prefix={task_id}")["tasks"]
    assert (task["phase"], task["complete"], task["finished_at"]) == ("Running", False, None)
    assert (task["lines"], task["bytes"], task["pods"]) == (1, 7, 1)


@pytest.mark.parametrize(
    "query, message",
    [
        ("?limit=0", "limit must be a whole number from 1 to 500"),
        ("?limit=501", "limit must be a whole number from 1 to 500"),
        ("?limit=ten", "limit must be a whole number from 1 to 500"),
        ("?phase=Done", "phase must be one of Pending, Running, Succeeded, Failed, Error"),
        ("?cursor=not-a-cursor", "cursor is not one this listing issued"),
        ("?prefix=" + "x" * 254, "prefix is longer than a task id can be"),
        ("?sort=name", "unknown query parameter(s) sort"),
    ],
)
def test_bad_listing_parameters_are_400(served_app, query, message):
    response = served_app.test_client().get(f"/api/v1/tasks{query}")
    assert response.status_code == 400 and message in response.get_json()["message"]


def test_listing_shows_only_the_namespaces_the_caller_may_read(database_url, kube_adapter, kube):
    kube.add_token("alice-token", "alice")
    kube.grant_log_reading("User", "alice", OTHER)
    app = make_app(database_url, kube_adapter, TASKLOGS_AUTH="kubernetes", **SERVED)
    try:
        for namespace in ("argo", OTHER):
            finished_workflow(kube.in_namespace(namespace), f"listed-{namespace}", "x\n")
        open_app = make_app(database_url, kube_adapter, **SERVED)
        try:  # stored through an app without auth
            for namespace in ("argo", OTHER):
                url = f"/api/v1/namespaces/{namespace}/tasks/listed-{namespace}/logs"
                assert open_app.test_client().get(url).status_code == 200
        finally:
            dispose(open_app)
        client = app.test_client()
        headers = {"Authorization": "Bearer alice-token"}
        body = client.get("/api/v1/tasks?prefix=listed-", headers=headers).get_json()
        assert {t["namespace"] for t in body["tasks"]} == {OTHER}
        assert client.get("/api/v1/tasks").status_code == 401
        denied = client.get("/api/v1/namespaces/argo/tasks", headers=headers)
        assert denied.status_code == 403 and denied.get_json()["error"] == "forbidden"
        assert "'argo'" in denied.get_json()["message"]
    finally:
        dispose(app)


# --- search across the served namespaces ---


def search(client, query, headers=None):
    response = client.get(f"/api/v1/search?{query}", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


def test_search_covers_every_served_namespace_and_only_those(served_app, kube, task_id):
    client = served_app.test_client()
    needle = f"needle-{task_id}"
    for namespace in ("argo", OTHER):
        finished_workflow(kube.in_namespace(namespace), task_id, f"a\n{needle} in {namespace}\nb\n")
        assert client.get(f"/api/v1/namespaces/{namespace}/tasks/{task_id}/logs").status_code == 200
    found = search(client, f"q={needle}")
    assert sorted((f["namespace"], f["task_id"], f["line"], f["text"]) for f in found) == [
        ("argo", task_id, 2, f"{needle} in argo"),
        (OTHER, task_id, 2, f"{needle} in {OTHER}"),
    ]
    assert [f["namespace"] for f in search(client, f"q={needle}&namespace={OTHER}")] == [OTHER]
    assert search(client, f"q={needle}&namespace=elsewhere") == []


def test_search_finds_a_line_that_straddles_the_page_size_in_a_log_read_whole(
    served_app, kube, task_id
):
    """A finished pod's log stored by one read: cut every PAGE_CHARS characters, the needle here
    would span two pages; the store ends the first page after the newline before it instead."""
    needle = f"needle-{task_id}"
    head = "x" * (PAGE_CHARS - 100) + "\n"
    line = "y" * 95 + f" {needle} z"  # the needle begins at PAGE_CHARS - 4
    finished_workflow(kube, task_id, head + line + "\nlast\n")
    client = served_app.test_client()
    assert client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["source"] == "kubernetes"
    assert client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["source"] == "database"
    assert [(f["line"], f["text"]) for f in search(client, f"q={needle}")] == [(2, line)]


def test_search_shows_only_what_the_caller_may_read(database_url, kube_adapter, kube, task_id):
    needle = f"secret-{task_id}"
    open_app = make_app(database_url, kube_adapter, **SERVED)
    try:
        for namespace in ("argo", OTHER):
            finished_workflow(kube.in_namespace(namespace), task_id, f"{needle} {namespace}\n")
            url = f"/api/v1/namespaces/{namespace}/tasks/{task_id}/logs"
            assert open_app.test_client().get(url).status_code == 200
    finally:
        dispose(open_app)
    kube.add_token("bob-token", "bob", groups=["team-ci"])
    kube.grant_log_reading("Group", "team-ci", OTHER)
    app = make_app(database_url, kube_adapter, TASKLOGS_AUTH="kubernetes", **SERVED)
    try:
        client = app.test_client()
        headers = {"Authorization": "Bearer bob-token"}
        assert [f["namespace"] for f in search(client, f"q={needle}", headers)] == [OTHER]
        assert search(client, f"q={needle}&namespace=argo", headers) == []
        assert client.get(f"/api/v1/search?q={needle}").status_code == 401
    finally:
        dispose(app)
