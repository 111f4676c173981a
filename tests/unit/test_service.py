"""The service layer: the store first, Kubernetes as the fallback and the source of anything new."""

import pytest

from tasklogs import service
from tasklogs.errors import (
    ClusterUnavailable,
    InvalidTaskId,
    NamespaceNotServed,
    TaskNotFound,
    Unavailable,
)
from testkit.names import ref
from testkit.waiting import wait_for


def texts(view) -> dict[str, str]:
    return {entry.log.key: "".join(entry.read(0)) for entry in view.entries}


def test_a_complete_task_comes_from_the_store_with_no_cluster_request(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "done\n")
    cluster.finish(wf)
    first = service.get_task_logs(services, ref(wf))
    assert (first.source, first.complete) == ("kubernetes", True)
    cluster.requests.clear()
    view = service.get_task_logs(services, ref(wf))
    assert (view.source, view.complete, view.phase, view.degraded) == (
        "database",
        True,
        "Succeeded",
        None,
    )
    assert texts(view) == {f"{pod}/main": "done\n"}
    assert sum(cluster.requests.values()) == 0
    assert "".join(view.entries[0].read(2)) == "ne\n"


def test_a_running_task_nobody_captures_is_refreshed_and_stored(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "one\n")
    view = service.get_task_logs(services, ref(wf))
    assert (view.source, view.complete, view.phase) == ("kubernetes", False, "Running")
    assert texts(view) == {f"{pod}/main": "one\n"}
    cluster.write(pod, "two\n")
    assert texts(service.get_task_logs(services, ref(wf))) == {f"{pod}/main": "one\ntwo\n"}
    cluster.failure = ClusterUnavailable("down")  # the store still has it
    stale = service.get_task_logs(services, ref(wf))
    assert stale.degraded == "kubernetes" and texts(stale) == {f"{pod}/main": "one\ntwo\n"}


def test_a_task_captured_live_is_served_from_the_store_without_refreshing(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "live\n")
    service.get_task_logs(services, ref(wf))  # stored: the task has a row
    driver = services.engine.driver(ref(wf), pinned=True)
    assert driver.ready.wait(3) and services.engine.leads(ref(wf))
    assert wait_for(lambda: cluster.open_streams == 1, 3)  # the capture follows the log now
    cluster.requests.clear()
    view = service.get_task_logs(services, ref(wf))
    assert view.source == "database" and not view.complete
    assert cluster.requests["get pods/log"] == 0


def test_database_down_serves_the_cluster_degraded(services, memstore, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "from k8s\n")
    memstore.down = True
    view = service.get_task_logs(services, ref(wf))
    assert (view.source, view.degraded) == ("kubernetes", "database")
    assert texts(view) == {f"{pod}/main": "from k8s\n"}
    assert "".join(view.entries[0].read(5)) == "k8s\n"
    cluster.failure = ClusterUnavailable("down too")
    with pytest.raises(Unavailable, match="neither the database nor the cluster"):
        service.get_task_logs(services, ref(wf))


def test_an_unknown_task_is_not_found(services, wf):
    with pytest.raises(TaskNotFound):
        service.get_task_logs(services, ref(wf))


def test_a_task_stored_but_gone_from_the_cluster_is_served_from_the_store(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "kept\n")
    service.get_task_logs(services, ref(wf))
    cluster.delete_pod(pod)
    cluster.delete_workflow(wf)
    view = service.get_task_logs(services, ref(wf))
    assert view.source == "database" and texts(view) == {f"{pod}/main": "kept\n"}


def test_narrowed_keeps_the_matching_entries(services, cluster, wf):
    pods = cluster.add_workflow(wf, ("a", "b"))
    view = service.get_task_logs(services, ref(wf))
    assert [e.log.pod for e in service.narrowed(view, pods["b"], None).entries] == [pods["b"]]
    view = service.get_task_logs(services, ref(wf))
    assert len(service.narrowed(view, None, "main").entries) == 2
    with pytest.raises(TaskNotFound, match="has no pod 'nope'"):
        service.narrowed(service.get_task_logs(services, ref(wf)), "nope", None)
    with pytest.raises(TaskNotFound, match="container 'wait'"):
        service.narrowed(service.get_task_logs(services, ref(wf)), pods["a"], "wait")


@pytest.mark.parametrize("task_id", ["", "Upper", "a_b", "-a", "a-", "a" * 254, "a..b", "../x"])
def test_validate_task_id_refuses_what_is_not_an_object_name(task_id):
    with pytest.raises(InvalidTaskId):
        service.validate_task_id(task_id)


@pytest.mark.parametrize("task_id", ["a", "wf-1", "a.b-c", "a" * 253])
def test_validate_task_id_accepts_object_names(task_id):
    assert service.validate_task_id(task_id) == task_id


def test_fetch_logs_from_kubernetes_reads_whole_logs(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "whole\n")
    (entry,) = service.fetch_logs_from_kubernetes(services, wf, "argo")
    assert (entry["pod"], entry["container"], entry["logs"]) == (pod, "main", "whole\n")
    with pytest.raises(NamespaceNotServed, match="'other' is not served"):
        service.fetch_logs_from_kubernetes(services, wf, "other")
    cluster.failure = ClusterUnavailable("down")
    with pytest.raises(ClusterUnavailable):
        service.fetch_logs_from_kubernetes(services, wf)
