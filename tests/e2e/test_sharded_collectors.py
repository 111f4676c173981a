"""Several `flask --app wsgi collect` processes share the running tasks: each task captured by exactly one
(its lease, read from `pg_locks`), one follow stream per container in all, the load even; one killed
with SIGKILL has its tasks taken over within 10 seconds, one that joins takes its share within a few
poll intervals, and every log is stored exactly once."""

import collections
import signal
import time

import psycopg2
import pytest

from tasklogs.identity import TaskRef
from testkit import scenarios
from testkit.collectors import forget_collectors, lease_holders, start_collector
from testkit.gunicorn import service_env
from testkit.waiting import wait_for

pytestmark = pytest.mark.e2e
WORKFLOWS, STEPS = 12, ("a", "b")
CONTAINERS = WORKFLOWS * len(STEPS)
TAKEOVER_LIMIT = 10.0  # seconds: the bound for a collector killed outright
POLL = 0.2  # TASKLOGS_POLL_INTERVAL in `service_env`
JOIN_POLLS = 10  # "within a few poll intervals" of its first heartbeat


class Fleet:
    """Collector processes on one database and one fake cluster."""

    def __init__(self, database_url, kubeconfig, tmp_path):
        self.env = service_env(database_url, kubeconfig)
        self.tmp_path, self.processes = tmp_path, []

    def start(self):
        process = start_collector(
            self.env, str(self.tmp_path / f"collector{len(self.processes)}.log")
        )
        self.processes.append(process)
        return process

    def alive(self) -> set[int]:
        return {process.pid for process in self.processes if process.poll() is None}

    def logs(self) -> str:
        return "".join(
            (self.tmp_path / f"collector{n}.log").read_text() for n in range(len(self.processes))
        )

    def stop(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(20))
            except Exception:  # noqa: BLE001 - killed below, the test fails on the code
                process.kill()
                codes.append(process.wait())
        return codes


@pytest.fixture
def fleet(database_url, collector_kubeconfig, tmp_path, app):
    forget_collectors(database_url)  # `app` made the schema; earlier tests' collectors are gone
    fleet = Fleet(database_url, collector_kubeconfig, tmp_path)
    yield fleet
    for process in fleet.processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def per_stream_counts(kube) -> collections.Counter:
    return collections.Counter(stream.pod for stream in kube.app.streams.select(kind="pods/log"))


def shared_out(database_url, kube, refs, pids) -> bool:
    """Every task's lease held by one of `pids`, and one follow stream per container, none twice."""
    held = lease_holders(database_url, refs)
    streams = per_stream_counts(kube)
    return (
        set(held) == set(refs)
        and set(held.values()) <= pids
        and sum(streams.values()) == CONTAINERS
        and set(streams.values()) == {1}
    )


def balanced(database_url, kube, refs, pids) -> bool:
    """Shared out, among every one of `pids`, none above 1.5 times its share of containers."""
    load = containers_per_process(database_url, refs)
    return (
        shared_out(database_url, kube, refs, pids)
        and set(load) == pids
        and max(load.values()) <= 1.5 * CONTAINERS / len(pids)
    )


def containers_per_process(database_url, refs) -> collections.Counter:
    held = lease_holders(database_url, refs)
    return collections.Counter(
        {pid: len(STEPS) * list(held.values()).count(pid) for pid in held.values()}
    )


def member_of(database_url, pid: int) -> bool:
    """Whether the process with this pid has its row in `collectors` (its name holds the pid)."""
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM collectors WHERE name LIKE %s", (f"%-{pid}-%",))
            return cursor.fetchone()[0] == 1
    finally:
        connection.close()


def following(kube) -> int:
    return sum(1 for request in kube.requests if request.resource == "pods/log" and request.follow)


def settled(database_url, kube, refs, pids, quiet: float = 1.0) -> bool:
    """Balanced, and still so after `quiet` seconds in which nobody opened a follow stream."""
    if not balanced(database_url, kube, refs, pids):
        return False
    follows = following(kube)
    time.sleep(quiet)
    return following(kube) == follows and balanced(database_url, kube, refs, pids)


def write(kube, workflows, lines: range) -> None:
    for index in lines:
        for wf in workflows:
            for step in STEPS:
                kube.write_log(wf.pod(step), "main", f"{wf.task_id} {step} {index}\n")
        time.sleep(0.01)


def test_collectors_share_survive_sigkill_and_rejoin_exactly_once(
    fleet, database_url, kube, client, task_id
):
    workflows = [scenarios.workflow(kube, f"{task_id}-{n}", STEPS) for n in range(WORKFLOWS)]
    refs = [TaskRef("argo", wf.task_id) for wf in workflows]
    for _ in range(3):
        fleet.start()
    # "balanced" allows up to 1.5 times a share, so the first balanced moment may still be on its way
    # to the final assignment; it must come to rest: balanced, and no new follow for a whole second
    assert wait_for(lambda: settled(database_url, kube, refs, fleet.alive()), 30), (
        "settled: nobody follows what another collector captures\n" + fleet.logs()
    )
    load = containers_per_process(database_url, refs)

    write(kube, workflows, range(0, 20))
    victim = max(load, key=load.__getitem__)
    victim_tasks = {t for t, pid in lease_holders(database_url, refs).items() if pid == victim}
    next(p for p in fleet.processes if p.pid == victim).send_signal(signal.SIGKILL)
    killed = time.monotonic()
    write(kube, workflows, range(20, 40))

    def taken_over_by_the_others() -> bool:
        holders = lease_holders(database_url, refs)
        return all(holders.get(t) in fleet.alive() for t in victim_tasks) and shared_out(
            database_url, kube, refs, fleet.alive()
        )

    assert wait_for(taken_over_by_the_others, TAKEOVER_LIMIT), fleet.logs()
    taken_over = time.monotonic() - killed
    assert taken_over < TAKEOVER_LIMIT
    assert wait_for(lambda: balanced(database_url, kube, refs, fleet.alive()), 20), fleet.logs()

    write(kube, workflows, range(40, 60))
    joined = fleet.start()
    assert wait_for(lambda: member_of(database_url, joined.pid), 30), fleet.logs()
    joined_at = time.monotonic()  # its first heartbeat: the others see it from their next one
    assert wait_for(lambda: balanced(database_url, kube, refs, fleet.alive()), 10), fleet.logs()
    joined_in = time.monotonic() - joined_at
    assert joined_in < JOIN_POLLS * POLL, f"the newcomer took its share in {joined_in:.1f} s"
    print(
        f"taken over {taken_over:.1f} s after SIGKILL; share taken {joined_in:.1f} s after joining"
    )
    write(kube, workflows, range(60, 80))

    for wf in workflows:
        scenarios.finish(kube, wf)
    for wf in workflows:
        assert wait_for(
            lambda wf=wf: (
                client.get(f"/api/v1/tasks/{wf.task_id}/logs").get_json().get("complete") is True
            ),
            30,
        ), fleet.logs()
    for wf in workflows:
        kube.delete_pod(wf.pod("a"))
        kube.delete_pod(wf.pod("b"))
    for wf in workflows:
        body = client.get(f"/api/v1/tasks/{wf.task_id}/logs").get_json()
        assert (body["source"], body["complete"]) == ("database", True)
        assert [entry["logs"] for entry in body["logs"]] == [
            "".join(f"{wf.task_id} {step} {i}\n" for i in range(80)) for step in STEPS
        ], f"{wf.task_id}: nothing lost or repeated"
    codes = fleet.stop()
    assert codes.count(-signal.SIGKILL) == 1 and codes.count(0) == 3, (codes, fleet.logs())
