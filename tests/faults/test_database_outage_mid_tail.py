"""PostgreSQL goes away in the middle of a live tail and comes back."""

import time

import pytest

from testkit import scenarios
from testkit.apps import LiveServer, dispose, make_app
from testkit.waiting import wait_for
from testkit.wsclient import TailClient, log_text

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("outage", ["database restarted", "network partition"])
def test_tail_goes_on_and_the_stored_log_ends_byte_for_byte_equal(
    proxied_app, db_proxy, kube, task_id, outage
):
    """In a partition PostgreSQL keeps the old sessions, and the advisory lock of this process's lease
    with them: the process must end its own stale session to capture (and save) again."""
    live = LiveServer(proxied_app)
    try:
        wf = scenarios.workflow(kube, task_id)
        kube.write_log(wf.pod(), "main", "before the outage\n")
        client = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
        frames = [client.frame()]
        db_proxy.stop(server_notices=outage == "database restarted")
        for index in range(20):
            kube.write_log(wf.pod(), "main", f"during {index} \u00e9\n")
            time.sleep(0.02)
        frames += client.frames_until(lambda f: f["type"] == "append" and "during 19" in f["data"])

        rest = proxied_app.test_client().get(f"/api/v1/tasks/{task_id}/logs")
        body = rest.get_json()
        assert rest.headers["X-Tasklogs-Degraded"] == "database" and body["source"] == "kubernetes"
        assert "during 19" in body["logs"][0]["logs"]

        db_proxy.start()
        time.sleep(1.0)  # several lease checks: the process must still (again) be the one capturing
        kube.write_log(wf.pod(), "main", "after the outage\n")
        scenarios.finish(kube, wf)
        frames += client.rest()
        expected = kube.log_bytes(wf.pod(), "main").decode()
        assert client.close_code == 1000 and log_text(frames, wf.pod()) == expected

        kube.stop()
        stored = proxied_app.test_client().get(f"/api/v1/tasks/{task_id}/logs").get_json()
        assert (stored["source"], stored["complete"]) == ("database", True)
        assert stored["logs"][0]["logs"] == expected, (
            "what was captured during the outage is stored"
        )
    finally:
        live.close()


def test_viewer_joining_during_the_outage_gets_a_snapshot_from_kubernetes(
    proxied_app, db_proxy, kube, task_id
):
    live = LiveServer(proxied_app)
    try:
        wf = scenarios.workflow(kube, task_id)
        kube.write_log(wf.pod(), "main", "one\n")
        db_proxy.stop()
        client = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
        frames = [client.frame()]
        assert frames[0]["type"] == "snapshot" and frames[0]["source"] == "kubernetes"
        kube.write_log(wf.pod(), "main", "two\n")
        db_proxy.start()
        scenarios.finish(kube, wf)
        frames += client.rest()
        assert log_text(frames, wf.pod()) == "one\ntwo\n" and frames[-1]["type"] == "complete"
    finally:
        live.close()


def test_a_long_outage_pauses_the_capture_instead_of_filling_memory(
    database_url, db_proxy, kube_adapter, kube, task_id
):
    """Past TASKLOGS_MAX_UNSAVED_MB of unsaved text the capture stops reading: the text waits in Kubernetes
    and is read from where the capture stood once the database is back, nothing lost or repeated."""
    app = make_app(
        db_proxy.url(database_url.rsplit("/", 1)[1]), kube_adapter, TASKLOGS_MAX_UNSAVED_MB=0.002
    )
    live = LiveServer(app)
    try:
        wf = scenarios.workflow(kube, task_id)
        kube.write_log(wf.pod(), "main", "before the outage\n")
        client = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
        frames = [client.frame()]
        writer = app.extensions["tasklogs"].engine.writer
        db_proxy.stop()
        lines = [
            f"during {index:03d} " + "x" * 90 + "\n" for index in range(100)
        ]  # 10,000 characters
        for line in lines:
            kube.write_log(wf.pod(), "main", line)
            time.sleep(0.005)
        assert wait_for(lambda: kube.open_streams() == 0), "the capture closed its stream and waits"
        time.sleep(0.5)
        assert not writer.healthy and 2_000 <= writer.held < 2_500, (
            "it holds the limit and one read more"
        )
        frames += client.frames_until(lambda f: f["type"] == "append" and "during 019" in f["data"])
        assert "during 099" not in log_text(frames, wf.pod())

        db_proxy.start()
        assert wait_for(lambda: kube.open_streams() == 1, timeout=10), (
            "it reads on once the database is back"
        )
        kube.write_log(wf.pod(), "main", "after the outage\n")
        scenarios.finish(kube, wf)
        frames += client.rest()
        expected = kube.log_bytes(wf.pod(), "main").decode()
        assert client.close_code == 1000 and log_text(frames, wf.pod()) == expected
        assert writer.held == 0
        stored = app.test_client().get(f"/api/v1/tasks/{task_id}/logs").get_json()
        assert (stored["source"], stored["complete"]) == ("database", True)
        assert stored["logs"][0]["logs"] == expected
    finally:
        live.close()
        dispose(app)
