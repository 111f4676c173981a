"""Driver through a real Engine on MemoryCluster and SQLite: capture, final save, failures, following."""

from tasklogs import service, tasks
from tasklogs.errors import ClusterUnavailable, TaskNotFound
from tasklogs.logstream import Position
from tasklogs.store import repository
from testkit.names import ref
from testkit.waiting import wait_for

from .conftest import TailReader


def stored(services, wf) -> tuple:
    """(task row, {pod: text}) as the store has them."""
    with services.units() as uow:
        task = repository.get_task(uow.session, ref(wf))
        logs = repository.get_logs_from_database(uow.session, ref(wf))
    return task, {entry["pod"]: entry["logs"] for entry in logs}


def test_final_save_runs_once_workflow_and_pods_finish(services, cluster, wf):
    pods = cluster.add_workflow(wf, ("a", "b"))
    cluster.write(pods["a"], "a1\n")
    driver = services.engine.driver(ref(wf), pinned=True)
    assert driver.ready.wait(3) and driver.leading
    cluster.write(pods["b"], "b1\n")
    cluster.finish_pod(pods["a"])
    assert wait_for(lambda: stored(services, wf)[1].get(pods["b"]) == "b1\n", 3)
    assert ref(wf) not in services.engine.completed  # b still runs, the workflow too
    cluster.write(pods["b"], "b2\n")
    cluster.finish(wf)
    assert wait_for(lambda: ref(wf) in services.engine.completed, 5)  # Outcome.COMPLETE
    task, logs = stored(services, wf)
    assert task.complete and task.phase == "Succeeded"
    assert logs == {pods["a"]: "a1\n", pods["b"]: "b1\nb2\n"}
    assert wait_for(lambda: services.engine.drivers() == [], 2)
    assert driver.feed.complete and cluster.open_streams == 0


def test_a_task_the_cluster_does_not_know_fails_with_task_not_found(services, wf):
    driver = services.engine.driver(ref(wf))
    assert driver.ready.wait(3)
    assert isinstance(driver.error, TaskNotFound)
    assert wait_for(lambda: services.engine.drivers() == [], 2)


def test_a_cluster_that_cannot_answer_fails_the_first_read(services, cluster, wf):
    cluster.add_workflow(wf)
    cluster.failure = ClusterUnavailable("API server down")
    driver = services.engine.driver(ref(wf))
    assert driver.ready.wait(3) and isinstance(driver.error, ClusterUnavailable)


def test_a_pod_deleted_mid_capture_is_reported_gone(services, cluster, wf):
    pods = cluster.add_workflow(wf, ("a", "b"))
    cluster.write(pods["a"], "kept\n")
    reader = TailReader(service.open_tail(services, ref(wf), None))
    assert wait_for(lambda: reader.text(pods["a"]) == "kept\n", 3)
    cluster.delete_pod(pods["a"])
    assert wait_for(lambda: reader.of_type("gone"), 3), reader.frames
    (gone,) = reader.of_type("gone")
    assert gone["pod"] == pods["a"] and "everything captured" in gone["message"]
    cluster.write(pods["b"], "b goes on\n")
    assert wait_for(lambda: reader.text(pods["b"]) == "b goes on\n", 3)
    reader.stop()


def test_a_vanished_task_is_saved_as_final(services, cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "before the end\n")
    services.engine.driver(ref(wf), pinned=True)
    assert wait_for(lambda: stored(services, wf)[1].get(pod) == "before the end\n", 3)
    cluster.delete_pod(pod)
    cluster.delete_workflow(wf)
    assert wait_for(lambda: ref(wf) in services.engine.completed, 5)
    task, logs = stored(services, wf)
    assert task.complete and task.phase == "Failed"  # it never reported an end
    assert logs == {pod: "before the end\n"}


def test_an_unpinned_driver_without_viewers_ends_after_the_linger(services, cluster, wf):
    cluster.add_workflow(wf)
    driver = services.engine.driver(ref(wf))
    assert driver.ready.wait(3)
    assert services.engine.leads(ref(wf))
    assert wait_for(lambda: services.engine.drivers() == [], 3)  # linger is 0.2 s
    assert not services.engine.leads(ref(wf)) and ref(wf) not in services.engine.completed
    assert wait_for(lambda: cluster.open_streams == 0, 2)


def test_stats_count_leading_drivers_and_viewers(services, cluster, wf):
    cluster.add_workflow(wf)
    reader = TailReader(service.open_tail(services, ref(wf), None))
    assert wait_for(lambda: reader.of_type("snapshot"), 3)
    stats = services.engine.stats()
    assert stats == {"leading": 1, "following": 0, "viewers": 1, "journal": "ok"}
    reader.stop()


def test_a_follower_serves_the_journal_another_process_writes(services, cluster, wf, monkeypatch):
    """Another process holds the lease (acquire False): the driver reads the journal, not the cluster."""
    engine = services.engine
    monkeypatch.setattr(engine.leases, "acquire", lambda task_id: False)
    pod = cluster.add_workflow(wf)["a"]
    log = tasks.read_task(cluster, ref(wf), ("main",)).streams[0].log
    with services.units() as uow:  # what the capturing process committed
        ids = uow.record_phases(ref(wf), "Running", [(log, "Running")])
        uow.append_text(ids[log], 0, "from elsewhere\n", Position("2026-01-02T03:04:05Z", 1))
        uow.commit()
    cluster.requests.clear()
    reader = TailReader(service.open_tail(services, ref(wf), None))
    assert wait_for(lambda: reader.text(pod) == "from elsewhere\n", 3), reader.frames
    assert engine.stats()["following"] == 1
    with services.units() as uow:
        uow.append_text(ids[log], 15, "more\n", Position("2026-01-02T03:04:06Z", 1))
        uow.commit()
    engine.journal_changed(ref(wf).key)  # the NOTIFY
    assert wait_for(lambda: reader.text(pod) == "from elsewhere\nmore\n", 3), reader.frames
    with services.units() as uow:
        uow.final_save(ref(wf), "Succeeded", {})
        uow.commit()
    assert reader.done.wait(3) and reader.frames[-1] == {"type": "complete", "phase": "Succeeded"}
    assert cluster.requests["get pods/log"] == 0


def test_a_lost_lease_turns_the_leader_into_a_follower(services, cluster, wf, monkeypatch):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "x\n")
    driver = services.engine.driver(ref(wf), pinned=True)
    assert driver.ready.wait(3) and driver.leading
    monkeypatch.setattr(services.engine.leases, "acquire", lambda task_id: False)
    assert wait_for(lambda: not driver.leading, 3)
    assert wait_for(lambda: cluster.open_streams == 0, 3)  # its captures stopped


def test_watching_elsewhere_marks_a_leading_feed(services, cluster, wf):
    cluster.add_workflow(wf)
    driver = services.engine.driver(ref(wf), pinned=True)
    assert driver.ready.wait(3)
    assert not driver.feed.watched()
    services.engine.journal_changed("watching:" + ref(wf).key)
    assert driver.feed.watched_elsewhere()
