"""MemoryCluster keeps the adapter's contract: its pods are what `kube.pod_summary` makes of the wire
fake's pods, and its logs follow the kubelet's rules (timestamps, sinceTime, follow, previous, errors)."""

import threading

import pytest

from tasklogs import tasks
from tasklogs.errors import ClusterUnavailable, ContainerWaiting, LogsGone, ObjectNotFound
from tasklogs.kube import pod_summary
from testkit.fakekube.cluster import Cluster as WireCluster
from testkit.memcluster import MemoryCluster
from testkit.names import ref


def read(stream) -> bytes:
    with stream:
        return b"".join(stream)


def test_pod_summaries_equal_the_adapters_summary_of_the_wire_fakes_pod(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.restart(pod)
    cluster.set_state(pod, "wait", "terminated", exit_code=2, reason="Error")
    wire = WireCluster("argo")
    mine = cluster.get_pod(pod)
    wire.add_pod(
        pod,
        labels=mine["labels"],
        annotations=mine["annotations"],
        containers=("wait", "main"),
        init_containers=("init",),
        phase="Running",
        state="running",
    )
    wire.container(pod, "main").restart()
    wire.container(pod, "wait").set_state("terminated", exit_code=2, reason="Error")
    theirs = pod_summary(wire.served_pod("argo", pod).to_dict())
    assert {**mine, "created": ""} == {**theirs, "created": ""}


def test_build_task_resolves_the_workflows_pods(cluster, wf):
    pods = cluster.add_workflow(wf, ("a", "b"))
    task = tasks.read_task(cluster, ref(wf), ("main", "wait"))
    assert [s.key for s in task.streams] == [
        f"{pods['a']}/main",
        f"{pods['a']}/wait",
        f"{pods['b']}/main",
        f"{pods['b']}/wait",
    ]
    assert task.phase == "Running" and not task.settled
    cluster.finish(wf)
    assert tasks.read_task(cluster, ref(wf), ("main",)).settled


def test_lines_are_stamped_and_since_time_keeps_the_whole_second(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "one\ntwo")
    cluster.write(pod, "late\n", at=1_767_323_046_500_000_000)
    data = read(cluster.open_log(pod, "main", follow=False))
    assert data.splitlines() == [
        b"2026-01-02T03:04:05.001000000Z one",
        b"2026-01-02T03:04:05.002000000Z two",
        b"2026-01-02T03:04:06.500000000Z late",
    ]
    since = read(cluster.open_log(pod, "main", follow=False, since_time="2026-01-02T03:04:06Z"))
    assert since == b"2026-01-02T03:04:06.500000000Z late\n"
    bare = read(cluster.open_log(pod, "main", follow=False, timestamps=False))
    assert bare == b"one\ntwo\nlate\n"


def test_errors_are_the_adapters(cluster, wf):
    pod = cluster.add_workflow(wf, container_state="waiting")["a"]
    with pytest.raises(ObjectNotFound, match='pods "nope" not found'):
        cluster.open_log("nope", "main", follow=False)
    with pytest.raises(ContainerWaiting, match="is waiting to start: ContainerCreating"):
        cluster.open_log(pod, "main", follow=False)
    with pytest.raises(LogsGone, match="previous terminated container"):
        cluster.open_log(pod, "main", follow=False, previous=True)
    cluster.failure = ClusterUnavailable("down")
    with pytest.raises(ClusterUnavailable):
        cluster.get_workflow(wf)


def test_previous_reads_the_run_before_the_restart(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "first\n")
    cluster.restart(pod)
    cluster.write(pod, "second\n")
    assert read(cluster.open_log(pod, "main", follow=False, previous=True, timestamps=False)) == (
        b"first\n"
    )
    assert read(cluster.open_log(pod, "main", follow=False, timestamps=False)) == b"second\n"
    assert cluster.get_pod(pod)["containers"]["main"]["restarts"] == 1


def follow_in_thread(stream):
    got, done = [], threading.Event()

    def run():
        try:
            with stream:
                got.extend(stream)
        except ClusterUnavailable as error:
            got.append(error)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return got, done


def test_follow_blocks_for_new_lines_and_ends_with_the_container(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    got, done = follow_in_thread(cluster.open_log(pod, "main", follow=True, timestamps=False))
    assert not done.wait(0.1) and cluster.open_streams == 1
    cluster.write(pod, "x\n")
    cluster.set_state(pod, "main", "terminated")
    assert done.wait(2) and got == [b"x\n"]
    assert cluster.open_streams == 0 and cluster.requests["get pods/log"] == 1


def test_follow_ends_when_the_pod_is_deleted_and_breaks_when_cut(cluster, wf):
    pods = cluster.add_workflow(wf, ("a", "b"))
    got, done = follow_in_thread(cluster.open_log(pods["a"], "main", follow=True))
    cluster.delete_pod(pods["a"])
    assert done.wait(2) and got == []
    got, done = follow_in_thread(cluster.open_log(pods["b"], "main", follow=True))
    assert not done.wait(0.05)
    assert cluster.break_streams() == 1
    assert done.wait(2) and isinstance(got[-1], ClusterUnavailable)


def test_watch_yields_events_after_a_version_and_ends_on_close():
    cluster = MemoryCluster()
    items, version = cluster.list_workflows()
    assert items == []
    cluster.add_workflow("wf-w", make_pods=False)
    cluster.set_phase("wf-w", "Succeeded")
    events = cluster.watch_workflows(version, timeout_seconds=5)
    assert [(kind, obj["status"]["phase"]) for kind, obj, _ in [next(events), next(events)]] == [
        ("ADDED", "Running"),
        ("MODIFIED", "Succeeded"),
    ]
    threading.Timer(0.05, cluster.close).start()
    assert list(events) == []
    assert list(cluster.watch_workflow_pods("0", timeout_seconds=0)) == []
