"""Collectors that share the work (`--only shards`): 1, 2 and 3 `flask --app wsgi collect` processes under
the collector run's load, and a kill/rejoin run.

Each run starts N collectors on a fresh database and the fake cluster in its own process, waits until
every task's lease is held (read from `pg_locks`: which process captures which task) and one follow
stream is open per container, then writes the timed lines while the journal sampler measures each line's
capture lag. The lag is grouped per process by the lease holder of the line's task. CPU is per process
over the writing. The kill/rejoin run (3 collectors) SIGKILLs the busiest after a third of the writing
and starts a new one after two thirds: the time until the killed one's tasks are all held again, the
time from the newcomer's first heartbeat until it holds its share, and, after the final saves, every
pod's stored log compared with the fake's byte for byte.
"""

import collections
import os
import signal
import threading
import time

import psycopg2

from tasklogs.identity import TaskRef
from testkit.collectors import lease_holders

from . import procstat
from .collector import (
    DRAIN_TIMEOUT,
    STARTUP_TIMEOUT,
    JournalSampler,
    collector_health,
    finish_and_wait,
    last_chunk_id,
    start_collector,
    stop_collector,
    verify_stored,
    wait_for,
    warm_up_journal,
)
from .kubeproc import RemoteCluster
from .measure import Bench, percentiles
from .servers import recreate_database

REORDER = 5000  # ids the sampler looks back: several writers commit out of id order


class Fleet:
    """The collector processes of one run, by index."""

    def __init__(self, bench: Bench, kubeconfig: str):
        self.bench, self.kubeconfig = bench, kubeconfig
        self.processes: list = []

    def start(self):
        log_base = self.bench.log_base(f"shards-collector{len(self.processes)}")
        process = start_collector(self.bench, self.kubeconfig, log_base)
        process.log_base = log_base
        self.processes.append(process)
        return process

    def alive(self) -> list:
        return [process for process in self.processes if process.poll() is None]


def holders(bench: Bench, refs: list[TaskRef]) -> dict[TaskRef, int]:
    return lease_holders(bench.database_url, refs)


def shared(bench: Bench, kube: RemoteCluster, refs, pods: int, alive: set[int]) -> bool:
    """Every task held by a live collector, each live one holding some, one stream per container."""
    held = holders(bench, refs)
    return (
        len(held) == len(refs) and set(held.values()) == alive and kube.call("open_streams") == pods
    )


def member_seen(bench: Bench, pid: int) -> bool:
    return bench.sql(f"SELECT count(*) FROM collectors WHERE name LIKE '%-{pid}-%'") == 1


def per_process(bench: Bench, sampler: JournalSampler, held: dict[TaskRef, int], steps: int):
    """Lag percentiles and containers per process, by the lease holder of each log's task."""
    connection = psycopg2.connect(bench.database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, namespace, task_id FROM task_logs")
            rows = cursor.fetchall()
    finally:
        connection.close()
    task_of = {row[0]: TaskRef(row[1], row[2]) for row in rows}
    lags: dict[int, list[int]] = collections.defaultdict(list)
    for log_id, values in sampler.by_log.items():
        lags[held.get(task_of.get(log_id), 0)].extend(values)
    containers = collections.Counter(held.values())
    return {
        str(pid): {"containers": steps * containers[pid], "lag_ms": percentiles(values)}
        for pid, values in sorted(lags.items())
    }


def shards_run(
    bench: Bench,
    collectors: int,
    workflows: int,
    steps: int,
    rate: float,
    seconds: float,
    line_chars: int,
    kill: bool = False,
) -> dict:
    """`collectors` processes share `workflows` running workflows of `steps` pods, `rate` lines/s to
    every pod for `seconds`; with `kill`, one SIGKILLed after a third and one started after two thirds."""
    recreate_database()
    with RemoteCluster(bench.directory) as kube:
        tasks = kube.call(
            "workflows", count=workflows, steps=[chr(ord("a") + i) for i in range(steps)]
        )
        refs = [TaskRef("argo", task["task_id"]) for task in tasks]
        pods = [pod for task in tasks for pod in task["pods"]]
        fleet = Fleet(bench, kube.kubeconfig)
        for _ in range(collectors):
            fleet.start()
        try:
            started = wait_for(
                lambda: shared(bench, kube, refs, len(pods), {p.pid for p in fleet.alive()}),
                STARTUP_TIMEOUT,
            )
            if started is None:
                raise RuntimeError(f"the collectors did not share {len(pods)} containers")
            warm_up = warm_up_journal(bench, kube, pods, line_chars)
            held_before = holders(bench, refs)
            window = _window(bench, kube, fleet, refs, pods, rate, seconds, line_chars, kill)
            held_after = holders(bench, refs)
            window["per_process"] = per_process(bench, window.pop("sampler"), held_after, steps)
            window["tasks_moved_in_window"] = sum(
                held_before.get(ref) != held_after.get(ref) for ref in refs
            )
            final_save = finish_and_wait(bench, kube, tasks)
        finally:
            codes = [stop_collector(process) for process in fleet.processes]
        verified = verify_stored(bench, kube, tasks)
    return {
        "kind": "shards",
        "service": "tasklogs",
        "collectors": collectors,
        "kill": kill,
        "workflows": workflows,
        "pods": len(pods),
        "rate": rate,
        "seconds": seconds,
        "startup_s": started,
        "warm_up_s": warm_up,
        "final_save_s": final_save,
        **window,
        "verify": verified,
        "health": [
            collector_health(process.log_base + ".log", code)
            for process, code in zip(fleet.processes, codes, strict=True)
        ],
    }


def _window(bench, kube, fleet, refs, pods, rate, seconds, line_chars, kill) -> dict:
    sampler = JournalSampler(bench.database_url, after_id=last_chunk_id(bench), reorder=REORDER)
    sampler.start()
    cpu = procstat.CpuWindow({"fake_k8s": lambda: [kube.pid], "postgres": bench.postgres_pids})
    cpu.start()
    events: dict = {"cpu_per_process": CollectorCpu(fleet)}
    parts = (seconds / 3, seconds / 3, seconds - 2 * seconds / 3) if kill else (seconds,)
    lines = 0
    for index, part in enumerate(parts):
        if kill and index == 1:
            _kill_busiest(bench, fleet, refs, len(pods), events)
        if kill and index == 2:
            _rejoin(bench, fleet, refs, len(pods), events)
        lines += kube.call("write", pods=pods, rate=rate, seconds=part, line_chars=line_chars)[
            "lines"
        ]
    usage = cpu.stop()
    events["cpu_per_process"] = events["cpu_per_process"].stop()
    for watcher in events.pop("watchers", []):
        watcher.join(30)
    drain = wait_for(
        lambda: sampler.total_lines >= lines or sampler.error is not None,
        DRAIN_TIMEOUT,
        interval=0.05,
    )
    sampler.stop()
    part_s, lag_per_part = sampler.lag_p99_over_time()
    return {
        "lines_written": lines,
        "lines_captured": sampler.total_lines,
        "drain_s": drain,
        "lag_ms": percentiles(sampler.visible_us),
        "lag_part_s": round(part_s, 2),
        "lag_p99_s_per_part": lag_per_part,
        "cpu": usage,
        "follow_streams_open": kube.call("open_streams"),
        "sampler": sampler,
        **events,
    }


class CollectorCpu:
    """CPU of each collector process over the part of the window it was alive, % of one core."""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.began = {p.pid: (time.monotonic(), procstat.cpu_seconds(p.pid)) for p in fleet.alive()}
        self.ended: dict[int, tuple[float, float]] = {}

    def joined(self, process) -> None:
        self.began[process.pid] = (time.monotonic(), procstat.cpu_seconds(process.pid))

    def killing(self, process) -> None:
        self.ended[process.pid] = (time.monotonic(), procstat.cpu_seconds(process.pid))

    def stop(self) -> dict:
        for process in self.fleet.alive():
            self.ended.setdefault(
                process.pid, (time.monotonic(), procstat.cpu_seconds(process.pid))
            )
        return {
            str(pid): {
                "cpu_percent": round(100 * (cpu - began[1]) / max(1e-9, end - began[0]), 1),
                "alive_s": round(end - began[0], 1),
            }
            for pid, began in self.began.items()
            for end, cpu in [self.ended[pid]]
        }


def _watch(bench, fleet, refs, pods, events, key, began, each_holds: bool) -> None:
    """In the background (the fake answers one command at a time): seconds from `began` until every
    task is held by a live collector (with `each_holds`, every live one holding some)."""

    def run():
        def done() -> bool:
            held = holders(bench, refs)
            alive = {p.pid for p in fleet.alive()}
            holding = set(held.values())
            return len(held) == len(refs) and (holding == alive if each_holds else holding <= alive)

        took = wait_for(done, 60, interval=0.1)
        events[key] = None if took is None else round(time.monotonic() - began, 2)

    watcher = threading.Thread(target=run, daemon=True)
    watcher.start()
    events.setdefault("watchers", []).append(watcher)


def _kill_busiest(bench, fleet, refs, pods, events) -> None:
    load = collections.Counter(holders(bench, refs).values())
    victim = next(p for p in fleet.alive() if p.pid == load.most_common(1)[0][0])
    events["killed_tasks"] = load[victim.pid]
    events["cpu_per_process"].killing(victim)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    _watch(bench, fleet, refs, pods, events, "takeover_s", time.monotonic(), False)


def _rejoin(bench, fleet, refs, pods, events) -> None:
    joined = fleet.start()
    events["cpu_per_process"].joined(joined)
    started = time.monotonic()
    wait_for(lambda: member_seen(bench, joined.pid), 60, interval=0.05)
    began = time.monotonic()  # its first heartbeat
    events["first_heartbeat_after_start_s"] = round(began - started, 2)
    _watch(bench, fleet, refs, pods, events, "join_s", began, True)
