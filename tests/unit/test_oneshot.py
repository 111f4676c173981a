"""The REST capture: append only what is new, run the final save only once the task has settled."""

from tasklogs import tasks
from tasklogs.engine import oneshot
from tasklogs.identity import LogId
from tasklogs.logstream import Position
from tasklogs.store import repository
from testkit.names import ref

CONTAINERS = ("main",)


def stored_text(memstore, wf) -> dict[str, str]:
    with memstore.units() as uow:
        return {
            e["pod"]: e["logs"] for e in repository.get_logs_from_database(uow.session, ref(wf))
        }


def refresh(cluster, memstore, wf, leads=lambda task_id: False):
    return oneshot.refresh_task(cluster, memstore.units, ref(wf), CONTAINERS, leads)


def test_refresh_appends_only_what_is_new(cluster, memstore, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "one\n")
    task, complete = refresh(cluster, memstore, wf)
    assert not complete and task.phase == "Running"
    assert stored_text(memstore, wf) == {pod: "one\n"}
    cluster.write(pod, "two\n")
    refresh(cluster, memstore, wf)
    refresh(cluster, memstore, wf)  # nothing new: nothing written
    assert stored_text(memstore, wf) == {pod: "one\ntwo\n"}
    with memstore.units() as uow:
        assert not repository.get_task(uow.session, ref(wf)).complete


def test_the_final_save_runs_once_the_task_settled(cluster, memstore, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "one\n")
    cluster.set_phase(wf, "Succeeded")  # the workflow says done, the pod still runs
    assert refresh(cluster, memstore, wf)[1] is False
    cluster.write(pod, "two\n")
    cluster.finish_pod(pod)
    assert refresh(cluster, memstore, wf)[1] is True
    with memstore.units() as uow:
        task = repository.get_task(uow.session, ref(wf))
        (row,) = repository.get_stored_logs(uow.session, ref(wf))
    assert task.complete and task.phase == "Succeeded"
    assert row.position != Position()  # the resume position is kept by the fold
    assert stored_text(memstore, wf) == {pod: "one\ntwo\n"}
    refresh(cluster, memstore, wf)
    assert stored_text(memstore, wf) == {pod: "one\ntwo\n"}


def test_a_live_capture_keeps_the_final_save_to_itself(cluster, memstore, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "x\n")
    cluster.finish(wf)
    assert refresh(cluster, memstore, wf, leads=lambda task: task == ref(wf))[1] is False
    with memstore.units() as uow:
        assert not repository.get_task(uow.session, ref(wf)).complete
    assert stored_text(memstore, wf) == {pod: "x\n"}


def test_text_stored_without_a_position_is_not_read_again(cluster, memstore, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "x\n")
    log = tasks.read_task(cluster, ref(wf), CONTAINERS).streams[0].log
    with memstore.units() as uow:
        repository.save_logs_to_database(
            uow.session, ref(wf), [{**log.fields(), "logs": "whole\n"}]
        )
        uow.commit()
        (row,) = repository.get_stored_logs(uow.session, ref(wf))
    cluster.requests.clear()
    status = cluster.get_pod(pod)["containers"]["main"]
    assert oneshot.store_container(cluster, memstore.units, row, status) == len("whole\n")
    assert cluster.requests["get pods/log"] == 0


def test_a_pod_gone_leaves_the_store_as_it_is(cluster, memstore, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "x\n")
    refresh(cluster, memstore, wf)
    with memstore.units() as uow:
        (row,) = repository.get_stored_logs(uow.session, ref(wf))
    cluster.delete_pod(pod)
    running = {"state": "running", "reason": "", "restarts": 0, "exit_code": None}
    assert oneshot.store_container(cluster, memstore.units, row, running) == 2
    assert stored_text(memstore, wf) == {pod: "x\n"}


def test_read_container_reads_the_previous_run_first_and_survives_its_loss(cluster, wf):
    pod = cluster.add_workflow(wf)["a"]
    cluster.write(pod, "first\n")
    cluster.restart(pod)
    cluster.write(pod, "second\n")
    log = LogId("n", pod, "main")
    status = cluster.get_pod(pod)["containers"]["main"]
    pieces = list(oneshot.read_container(cluster, log, status))
    assert "".join(read.text for read in pieces) == "first\nsecond\n"
    assert pieces[-1][1].restarts == 1
    cluster.pods[pod].containers["main"].previous = None  # the node dropped it
    assert "".join(r.text for r in oneshot.read_container(cluster, log, status)) == "second\n"
    waiting = {**status, "state": "waiting"}
    assert list(oneshot.read_container(cluster, log, waiting)) == []
    assert list(oneshot.read_container(cluster, log, None)) == []


def test_a_long_catch_up_is_appended_in_pieces(cluster, memstore, wf, monkeypatch):
    monkeypatch.setattr(oneshot, "APPEND_PIECE", 10)
    pod = cluster.add_workflow(wf)["a"]
    cluster.chunk_bytes = 40
    cluster.write(pod, "".join(f"line {i:02d}\n" for i in range(20)))
    refresh(cluster, memstore, wf)
    assert stored_text(memstore, wf) == {pod: "".join(f"line {i:02d}\n" for i in range(20))}
    with memstore.units() as uow:
        (row,) = repository.get_stored_logs(uow.session, ref(wf))
        chunks = list(repository.read_log(uow.session, row.log_id))
    assert len(chunks) > 1
