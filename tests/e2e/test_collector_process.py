"""`flask --app wsgi collect` as a process: killed with SIGKILL mid-workflow and started again, it
resumes from what is stored with no gap and no duplicate."""

import os
import signal
import subprocess
import sys
import time

import pytest

from testkit import ROOT, scenarios
from testkit.gunicorn import service_env
from testkit.waiting import wait_for

pytestmark = pytest.mark.e2e
FLASK = os.path.join(os.path.dirname(sys.executable), "flask")


def start_collector(database_url, kubeconfig, log_path):
    log = open(log_path, "ab")
    return subprocess.Popen(
        [FLASK, "--app", "wsgi", "collect"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **service_env(database_url, kubeconfig)},
    )


def following(kube) -> int:
    """Follow requests the fake has seen (a killed process's stream may look open for a while)."""
    return sum(1 for request in kube.requests if request.resource == "pods/log" and request.follow)


def test_sigkill_and_restart_lose_and_repeat_nothing(
    database_url, collector_kubeconfig, kube, client, task_id, tmp_path
):
    log_path = str(tmp_path / "collector.log")
    wf = scenarios.workflow(kube, task_id)
    collector = start_collector(database_url, collector_kubeconfig, log_path)
    try:
        assert wait_for(lambda: kube.open_streams() == 1), open(log_path).read()
        for index in range(50):
            kube.write_log(wf.pod(), "main", f"line {index}\n")
            time.sleep(0.01)
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        for index in range(50, 100):
            kube.write_log(wf.pod(), "main", f"line {index}\n")
        follows = following(kube)
        collector = start_collector(database_url, collector_kubeconfig, log_path)
        assert wait_for(lambda: following(kube) > follows), open(log_path).read()
        for index in range(100, 150):
            kube.write_log(wf.pod(), "main", f"line {index}\n")
        scenarios.finish(kube, wf)
        assert wait_for(
            lambda: client.get(f"/api/v1/tasks/{task_id}/logs").get_json().get("complete") is True
        )
        kube.delete_pod(wf.pod())
        body = client.get(f"/api/v1/tasks/{task_id}/logs").get_json()
        assert body["logs"][0]["logs"] == "".join(f"line {i}\n" for i in range(150))
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(15) == 0, open(log_path).read()
    finally:
        if collector.poll() is None:
            collector.kill()
