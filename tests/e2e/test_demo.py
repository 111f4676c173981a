"""`make demo` (`python -m demo`): the simulated cluster, tasklogs under gunicorn and the collector as
processes; the workflows are listed, a running one's log grows, the failed one is Failed, and Ctrl-C
stops everything, leaving no process behind."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from testkit import ROOT
from testkit.databases import ADMIN_URL, TEST_DATABASE, drop_database
from testkit.processes import free_port
from testkit.waiting import wait_for

pytestmark = pytest.mark.e2e
DEMO_DATABASE = f"{TEST_DATABASE}_demo"  # derived: parallel runs never share it


class Demo:
    """`python -m demo` in a session of its own (as a terminal would run it), its output collected."""

    def __init__(self, directory: str, *args: str, port: int | None = None):
        self.port = port or free_port()
        command = [sys.executable, "-m", "demo", "--port", str(self.port), "--dir", directory]
        command += ["--database", DEMO_DATABASE, "--admin-url", ADMIN_URL, *args]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.decode("utf-8", "replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def get(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            body = response.read().decode()
            return (
                json.loads(body)
                if response.headers["Content-Type"].startswith("application/json")
                else body
            )


def descendants(pid: int) -> set[int]:
    """Every process under `pid`, by the parent links in /proc (the demo's children have sessions of
    their own, so a process group would miss them)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def training_log(body: dict) -> str:
    """The running workflow's second step: the one that logs a line a second."""
    return next(entry["logs"] for entry in body["logs"] if "-train-" in entry["pod"])


def settled_as(tasks: dict, first: dict, phases: dict) -> bool:
    """Each of those workflows has its final phase and its final save ran."""
    return all(
        (tasks.get(first[kind], {}).get("phase"), tasks.get(first[kind], {}).get("complete"))
        == (phase, True)
        for kind, phase in phases.items()
    )


def listed(demo: Demo) -> dict:
    return {(t["namespace"], t["task_id"]): t for t in demo.get("/api/v1/tasks?limit=500")["tasks"]}


@pytest.fixture
def demo(tmp_path):
    started = []

    def start(*args: str, port: int | None = None) -> Demo:
        started.append(Demo(str(tmp_path), *args, port=port))
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait()
    drop_database(DEMO_DATABASE)


def test_the_demo_shows_every_kind_of_workflow_and_stops_cleanly(demo, tmp_path):
    started = demo("--large-lines", "20000", "--new-every", "4")
    assert wait_for(lambda: "Ctrl-C stops everything." in started.output, timeout=90), (
        started.output
    )
    assert f"http://127.0.0.1:{started.port}/" in started.output and "curl -s" in started.output
    assert "wsdump ws://" in started.output and "PostgreSQL database" in started.output
    with open(tmp_path / "cluster.json") as file:
        first = {w["kind"]: (w["namespace"], w["name"]) for w in json.load(file)["workflows"]}
    assert set(first) == {"running", "succeeded", "failed", "retried", "large", "ansi"}

    settled = {
        "succeeded": "Succeeded",
        "failed": "Failed",
        "retried": "Succeeded",
        "large": "Succeeded",
    }
    assert wait_for(lambda: settled_as(listed(started), first, settled), timeout=90), (
        listed(started),
        started.output,
    )
    tasks = listed(started)
    assert {namespace for namespace, _ in tasks} == {"argo", "argo-ci"}
    assert tasks[first["running"]]["phase"] == "Running" and not tasks[first["running"]]["complete"]
    assert tasks[first["retried"]]["pods"] == 2, "one pod per attempt of the Retry node"

    running = "/api/v1/namespaces/{}/tasks/{}/logs".format(*first["running"])
    before = training_log(started.get(running))
    time.sleep(2.5)
    after = training_log(started.get(running))
    assert len(after) > len(before) and after.startswith(before), "the running one keeps logging"
    large = "/api/v1/namespaces/{}/tasks/{}/logs?format=text&tail=1".format(*first["large"])
    assert wait_for(lambda: started.get(large) == "exported 20000 rows\n", timeout=60)
    ansi = started.get("/api/v1/namespaces/{}/tasks/{}/logs?format=text".format(*first["ansi"]))
    assert "\x1b[32m" in ansi and "\r" in ansi and "%" in ansi
    assert wait_for(lambda: len(listed(started)) > len(first), timeout=30), "new workflows start"

    processes = descendants(started.process.pid)
    assert len(processes) >= 4, "the cluster, gunicorn's master and worker(s), the collector"
    started.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert started.process.wait(60) == 0, started.output
    assert "demo: stopped" in started.output
    assert wait_for(lambda: not any(alive(pid) for pid in processes), timeout=10), [
        pid for pid in processes if alive(pid)
    ]


def test_without_postgresql_the_demo_runs_on_sqlite(demo, tmp_path):
    started = demo(
        "--admin-url", "postgresql://postgres@127.0.0.1:1/postgres", "--large-lines", "2000"
    )
    assert wait_for(lambda: "Ctrl-C stops everything." in started.output, timeout=90), (
        started.output
    )
    assert (
        "PostgreSQL is not reachable at postgresql://postgres@127.0.0.1:1/postgres"
        in started.output
    )
    assert "SQLite file" in started.output and (tmp_path / "tasklogs.sqlite").exists()
    assert wait_for(lambda: len(listed(started)) >= 6, timeout=60), started.output
    started.process.send_signal(signal.SIGINT)
    assert started.process.wait(60) == 0, started.output


def test_a_demo_that_cannot_start_says_why_and_leaves_nothing_behind(demo):
    """Its port taken, gunicorn cannot bind: the demo says so, exits 1 and stops the cluster it started."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = demo("--large-lines", "100", port=taken.getsockname()[1])
        assert started.process.wait(90) == 1, started.output
    assert "demo: gunicorn exited with" in started.output and "demo: stopped" in started.output
    assert "Connection in use" in started.output, "gunicorn's own words are shown"
