"""ClusterCache: the collector's view of the namespace, kept by lists and watch events."""

import threading

import pytest

from tasklogs.bootstrap import build_collector
from tasklogs.collector import ClusterCache
from tasklogs.errors import TaskNotFound
from tasklogs.store import repository
from testkit.names import ref
from testkit.waiting import wait_for

CONTAINERS = ("main",)


def filled(cluster) -> ClusterCache:
    cache = ClusterCache(CONTAINERS)
    cache.reset("workflows", cluster.list_workflows()[0])
    cache.reset("pods", cluster.list_workflow_pods()[0])
    return cache


def test_reset_indexes_pods_by_their_workflow_label(cluster):
    a = cluster.add_workflow("wf-a", ("x", "y"))
    b = cluster.add_workflow("wf-b")
    cache = filled(cluster)
    assert cache.tasks() == {ref("wf-a"), ref("wf-b")}
    task = cache.read_task(ref("wf-a"))
    assert [s.log.pod for s in task.streams] == [a["x"], a["y"]]
    assert set(task.pods) == {a["x"], a["y"]}  # not wf-b's pod
    assert [s.log.pod for s in cache.read_task(ref("wf-b")).streams] == [b["a"]]
    cluster.requests.clear()
    cache.read_task(ref("wf-a"))
    assert sum(cluster.requests.values()) == 0


def test_watch_events_update_the_cache(cluster):
    pods = cluster.add_workflow("wf-a", ("x", "y"))
    cache = filled(cluster)
    _, version = cluster.list_workflows()
    cluster.finish("wf-a")
    cluster.delete_pod(pods["x"])
    for event, obj, _ in cluster.watch_workflows(version, timeout_seconds=0):
        assert cache.apply("workflows", event, obj) == ref("wf-a")
    for event, obj, _ in cluster.watch_workflow_pods(version, timeout_seconds=0):
        assert cache.apply("pods", event, obj) == ref("wf-a")
    task = cache.read_task(ref("wf-a"))
    assert cache.finished(ref("wf-a")) and task.phase == "Succeeded"
    assert set(task.pods) == {pods["y"]} and task.pods[pods["y"]]["phase"] == "Succeeded"
    assert task.settled  # x's pod went after the workflow ended: its stream is settled too


def test_deleted_workflow_keeps_the_task_while_pods_remain(cluster):
    pods = cluster.add_workflow("wf-a")
    cache = filled(cluster)
    workflow = cluster.get_workflow("wf-a")
    assert cache.apply("workflows", "DELETED", workflow) == ref("wf-a")
    assert cache.tasks() == {ref("wf-a")} and not cache.finished(ref("wf-a"))
    assert [s.log.pod for s in cache.read_task(ref("wf-a")).streams] == [pods["a"]]
    cache.apply("pods", "DELETED", cluster.get_pod(pods["a"]))
    assert cache.tasks() == set()
    with pytest.raises(TaskNotFound):
        cache.read_task(ref("wf-a"))


def test_a_modified_pod_replaces_the_old_one(cluster):
    pod = cluster.add_workflow("wf-a")["a"]
    cache = filled(cluster)
    cluster.set_state(pod, "main", "terminated")
    cache.apply("pods", "MODIFIED", cluster.get_pod(pod))
    task = cache.read_task(ref("wf-a"))
    assert task.container_status(task.streams[0])["state"] == "terminated"
    assert len(task.pods) == 1


def test_the_collector_captures_a_workflow_nobody_watches(services, cluster, memstore):
    pod = cluster.add_workflow("wf-c")["a"]
    cluster.write(pod, "collected\n")
    collector = build_collector(services)
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: collector.engine.leads(ref("wf-c")), 3)
        cluster.write(pod, "more\n")
        cluster.finish("wf-c")
        assert wait_for(lambda: ref("wf-c") in collector.engine.completed, 5)
        with memstore.units() as uow:
            logs = repository.get_logs_from_database(uow.session, ref("wf-c"))
        assert [entry["logs"] for entry in logs] == ["collected\nmore\n"]
    finally:
        collector.stop()
        cluster.close()
        thread.join(3)
    assert not thread.is_alive()
