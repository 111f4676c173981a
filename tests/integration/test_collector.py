"""The collector: every workflow captured without a viewer, surviving podGC, watch breaks, 410 Gone,
restarts and a second collector; container restarts and extra containers."""

import logging
import threading
import time

import psycopg2
import pytest

from tasklogs.bootstrap import build_collector
from testkit import scenarios
from testkit.apps import LiveServer, dispose, make_app
from testkit.collectors import forget_collectors
from testkit.names import ref
from testkit.waiting import wait_for
from testkit.wsclient import TailClient, log_text


class RunningCollector:
    def __init__(self, database_url, kube_adapter, **settings):
        self.app = make_app(database_url, kube_adapter, **settings)
        self.collector = build_collector(self.app.extensions["tasklogs"])
        self.thread = threading.Thread(target=self.collector.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.collector.stop()
        self.thread.join(10)
        dispose(self.app)


@pytest.fixture
def collectors(database_url, collector_kube_adapter):
    """Collectors under the collector's service account (the REST `client` is the web one), alone in
    the membership."""
    forget_collectors(database_url)
    running = []

    def start(**settings):
        collector = RunningCollector(database_url, collector_kube_adapter, **settings)
        running.append(collector)
        return collector

    yield start
    for collector in running:
        collector.stop()


def rest(app, task_id):
    return app.test_client().get(f"/api/v1/tasks/{task_id}/logs").get_json()


def test_captures_without_viewers_and_survives_pod_gc(collectors, client, kube, task_id):
    collectors()
    wf = scenarios.workflow(kube, task_id, ["a", "b"])
    assert wait_for(lambda: kube.open_streams() == 2), (
        "one follow stream per container, no viewer needed"
    )
    for index in range(20):
        kube.write_log(wf.pod("a"), "main", f"a{index}\n")
        kube.write_log(wf.pod("b"), "main", f"b{index}\n")
    scenarios.finish(kube, wf)
    for pod in wf.pods.values():
        kube.delete_pod(pod)  # podGC right after completion
    assert wait_for(
        lambda: client.get(f"/api/v1/tasks/{task_id}/logs").get_json().get("complete") is True
    )
    kube.stop()
    body = client.get(f"/api/v1/tasks/{task_id}/logs").get_json()
    assert (body["source"], body["complete"]) == ("database", True)
    assert [e["logs"] for e in body["logs"]] == [
        "".join(f"a{i}\n" for i in range(20)),
        "".join(f"b{i}\n" for i in range(20)),
    ]


def test_finished_pods_seen_first_are_read_once(collectors, client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "done before the collector started\n")
    scenarios.finish(kube, wf)
    collectors()
    assert wait_for(
        lambda: client.get(f"/api/v1/tasks/{task_id}/logs").get_json().get("complete") is True
    )
    assert kube.count(verb="get", resource="pods/log") <= 2
    assert (
        client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["logs"][0]["logs"]
        == "done before the collector started\n"
    )


@pytest.mark.parametrize("fault", ["watch ends", "410 Gone"])
def test_watch_breaking_and_expiring_resumes(collectors, client, kube, task_id, fault):
    collectors()
    first = scenarios.workflow(kube, task_id)
    assert wait_for(lambda: kube.open_streams() == 1)
    if fault == "410 Gone":
        kube.update_workflow(task_id, lambda body: body["metadata"]["labels"].update(touched="yes"))
        time.sleep(0.2)  # the workflow watch moves on; the pod watch stays at an older version
        kube.expire_history()
    kube.end_watches()
    second = scenarios.workflow(kube, task_id + "-2")
    assert wait_for(lambda: kube.open_streams() == 2), (
        "a workflow created after the break is captured"
    )
    for wf in (first, second):
        kube.write_log(wf.pod(), "main", f"{wf.task_id}\n")
        scenarios.finish(kube, wf)
    for wf in (first, second):
        assert wait_for(
            lambda wf=wf: (
                client.get(f"/api/v1/tasks/{wf.task_id}/logs").get_json().get("complete") is True
            )
        )
        assert (
            client.get(f"/api/v1/tasks/{wf.task_id}/logs").get_json()["logs"][0]["logs"]
            == f"{wf.task_id}\n"
        )
    if fault == "410 Gone":
        lists = [
            r
            for r in kube.requests
            if r.verb == "list" and r.resource in ("workflows", "pods") and not r.name
        ]
        assert len(lists) >= 3, "410 Gone makes the collector list again"


def test_restart_mid_workflow_resumes_without_gap_or_duplicate(collectors, client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    first = collectors()
    for index in range(10):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
    assert wait_for(
        lambda: (
            "line 9"
            in (client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["logs"] or [{"logs": ""}])[
                0
            ]["logs"]
        )
    )
    first.stop()
    for index in range(10, 20):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
    collectors()
    assert wait_for(lambda: kube.open_streams() == 1), (
        "the new collector follows the container again"
    )
    for index in range(20, 30):
        kube.write_log(wf.pod(), "main", f"line {index}\n")
    scenarios.finish(kube, wf)
    assert wait_for(lambda: kube.open_streams() == 0), "it read to the container's end"
    kube.delete_pod(wf.pod())
    assert wait_for(
        lambda: client.get(f"/api/v1/tasks/{task_id}/logs").get_json().get("complete") is True
    )
    assert client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["logs"][0]["logs"] == "".join(
        f"line {i}\n" for i in range(30)
    )


def test_two_collectors_split_the_work_without_double_capture(collectors, client, kube, task_id):
    collectors(), collectors()
    workflows = [scenarios.workflow(kube, f"{task_id}-{n}", ["a", "b"]) for n in range(4)]

    def settled() -> bool:
        """8 follow streams for half a second on end: once the two collectors agree who captures
        what (a hand-over's old stream may close a moment after the new one opens; the lease and
        the stored position keep the text exactly once meanwhile)."""
        for _ in range(10):
            if kube.open_streams() != 8:
                return False
            time.sleep(0.05)
        return True

    assert wait_for(settled, 15), "each container is followed once across both collectors"
    for wf in workflows:
        for step in ("a", "b"):
            kube.write_log(wf.pod(step), "main", f"{wf.task_id} {step}\n")
        scenarios.finish(kube, wf)
    for wf in workflows:
        assert wait_for(
            lambda wf=wf: (
                client.get(f"/api/v1/tasks/{wf.task_id}/logs").get_json().get("complete") is True
            )
        )
        body = client.get(f"/api/v1/tasks/{wf.task_id}/logs").get_json()
        assert [e["logs"] for e in body["logs"]] == [f"{wf.task_id} a\n", f"{wf.task_id} b\n"]


def test_web_tail_reuses_the_collectors_capture(collectors, app, kube, task_id):
    collector = collectors()
    wf = scenarios.workflow(kube, task_id)
    assert wait_for(lambda: kube.open_streams() == 1)
    captured = collector.collector.engine.driver(ref(task_id)).feed
    assert not captured.watched(), "nobody watches yet: the collector reads at its own pace"
    live = LiveServer(app)
    try:
        viewer = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
        frames = [viewer.frame()]
        for index in range(10):
            kube.write_log(wf.pod(), "main", f"line {index}\n")
        frames += viewer.frames_until(lambda f: f["type"] == "append" and "line 9" in f["data"])
        assert kube.open_streams() == 1, "the web worker follows the collector's journal"
        assert wait_for(captured.watched_elsewhere), (
            "the web worker told the collector it has a viewer"
        )
        scenarios.finish(kube, wf)
        frames += viewer.rest()
        assert log_text(frames, wf.pod()) == "".join(f"line {i}\n" for i in range(10))
    finally:
        live.close()


def test_the_collector_hurries_only_while_viewers_elsewhere_follow(collectors, app, kube, task_id):
    """The collector commits every 5 s here; text a web viewer waits for is committed as soon as it is
    read."""
    collector = collectors(TASKLOGS_JOURNAL_INTERVAL=5)
    wf = scenarios.workflow(kube, task_id)
    assert wait_for(lambda: kube.open_streams() == 1)
    captured = collector.collector.engine.driver(ref(task_id)).feed
    live = LiveServer(app)
    try:
        viewer = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"), timeout=2)
        viewer.frame()
        assert wait_for(captured.watched_elsewhere)
        for index in range(3):
            kube.write_log(wf.pod(), "main", f"watched {index}\n")
            frame = viewer.frame()  # within 2 s, not after the collector's 5 s journal interval
            assert (frame["type"], frame["data"]) == ("append", f"watched {index}\n")
        viewer.close()
        assert wait_for(lambda: not captured.watched_elsewhere(), timeout=5), (
            "announcements stop with the last viewer and the collector goes back to its own pace"
        )
        kube.write_log(wf.pod(), "main", "unwatched\n")
        scenarios.finish(kube, wf)
        assert wait_for(
            lambda: app.test_client().get(f"/api/v1/tasks/{task_id}/logs").get_json()["complete"]
        )
    finally:
        live.close()


def test_container_restart_keeps_the_previous_instance_log(collectors, client, kube, task_id):
    collectors()
    wf = scenarios.workflow(kube, task_id)
    assert wait_for(lambda: kube.open_streams() == 1)
    kube.write_log(wf.pod(), "main", "first run\n")
    time.sleep(0.3)
    kube.restart_container(wf.pod(), "main")
    kube.write_log(wf.pod(), "main", "second run\n")
    scenarios.finish(kube, wf)
    assert wait_for(
        lambda: (
            "second run"
            in client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["logs"][0]["logs"]
        )
    )
    kube.delete_pod(wf.pod())
    assert wait_for(
        lambda: client.get(f"/api/v1/tasks/{task_id}/logs").get_json().get("complete") is True
    )
    assert (
        client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["logs"][0]["logs"]
        == "first run\nsecond run\n"
    )


def test_restart_before_the_capture_saw_it_reads_the_previous_log(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "main", "crashed\n")
    kube.restart_container(wf.pod(), "main")
    kube.write_log(wf.pod(), "main", "recovered\n")
    assert (
        client.get(f"/api/v1/tasks/{task_id}/logs").get_json()["logs"][0]["logs"]
        == "crashed\nrecovered\n"
    )


def test_extra_containers_are_stored_and_served_per_container(
    collectors, database_url, kube_adapter, kube, task_id
):
    settings = {"TASKLOGS_CONTAINERS": ("init", "wait")}
    collectors(**settings)
    wf = scenarios.workflow(kube, task_id)
    kube.write_log(wf.pod(), "init", "init output\n")
    kube.write_log(wf.pod(), "wait", "wait output\n")
    kube.write_log(wf.pod(), "main", "main output\n")
    scenarios.finish(kube, wf)
    app = make_app(database_url, kube_adapter, **settings)
    try:
        assert wait_for(lambda: rest(app, task_id).get("complete") is True)
        kube.delete_pod(wf.pod())
        body = rest(app, task_id)
        assert [(e["container"], e["logs"]) for e in body["logs"]] == [
            ("main", "main output\n"),
            ("init", "init output\n"),
            ("wait", "wait output\n"),
        ]
        text = (
            app.test_client()
            .get(f"/api/v1/tasks/{task_id}/logs?format=text&container=init")
            .get_data(as_text=True)
        )
        assert text == "init output\n"
    finally:
        dispose(app)


def test_many_workflows_ending_at_once_queue_for_their_final_saves(
    collectors, database_url, client, kube, task_id, caplog
):
    caplog.set_level(logging.INFO, logger="tasklogs")
    collectors(TASKLOGS_DB_POOL_SIZE=2, TASKLOGS_DB_POOL_TIMEOUT=1)
    workflows = [scenarios.workflow(kube, f"{task_id}-{n}") for n in range(12)]
    assert wait_for(lambda: kube.open_streams() == 12)
    for wf in workflows:
        kube.write_log(wf.pod(), "main", f"{wf.task_id}\n")
    with psycopg2.connect(database_url) as blocker, blocker.cursor() as cursor:
        cursor.execute("SET lock_timeout = '30s'")  # a lock left behind fails it, not hangs
        cursor.execute("LOCK TABLE tasks IN EXCLUSIVE MODE")  # final saves hang on it for 3 s
        for wf in workflows:
            scenarios.finish(kube, wf)
        time.sleep(3)
    blocker.close()
    for wf in workflows:
        assert wait_for(
            lambda wf=wf: (
                client.get(f"/api/v1/tasks/{wf.task_id}/logs").get_json().get("complete") is True
            )
        )
        assert (
            client.get(f"/api/v1/tasks/{wf.task_id}/logs").get_json()["logs"][0]["logs"]
            == f"{wf.task_id}\n"
        )
    assert not [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO
        and "tasklogs" in r.name
        and (
            "not saved" in r.getMessage()
            or "failed" in r.getMessage()
            or "failing" in r.getMessage()
        )
    ], "phase and final saves wait for a connection instead of timing out on a pool of 2"


def test_hurried_commits_come_at_most_once_per_hurry_gap(
    collectors, app, database_url, kube, task_id
):
    """A chatty pod watched from elsewhere: its lines share commits, one per TASKLOGS_JOURNAL_HURRY_GAP."""
    collector = collectors(TASKLOGS_JOURNAL_INTERVAL=5, TASKLOGS_JOURNAL_HURRY_GAP=0.5)
    wf = scenarios.workflow(kube, task_id)
    assert wait_for(lambda: kube.open_streams() == 1)
    captured = collector.collector.engine.driver(ref(task_id)).feed
    live = LiveServer(app)
    try:
        viewer = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
        viewer.frame()
        assert wait_for(captured.watched_elsewhere)
        began = time.monotonic()
        for index in range(20):
            kube.write_log(wf.pod(), "main", f"line {index}\n")
            time.sleep(0.02)
        viewer.frames_until(lambda f: f["type"] == "append" and "line 19" in f["data"])
        allowed = 2 + int((time.monotonic() - began) / 0.5)
        with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM log_pages JOIN task_logs ON task_logs.id = log_pages.log_id "
                "WHERE task_logs.task_id = %s",
                (task_id,),
            )
            commits = cursor.fetchone()[0]
        connection.close()
        assert 1 <= commits <= allowed, f"20 lines took {commits} commits, more than one per 0.5 s"
    finally:
        live.close()


def test_the_collector_and_the_web_app_stay_within_their_accounts(
    collectors, client, kube, task_id
):
    """Under the shipped RBAC each process is refused nothing, and the collector uses its watches."""
    collectors()
    wf = scenarios.workflow(kube, task_id)
    assert wait_for(lambda: kube.open_streams() == 1)
    kube.write_log(wf.pod(), "main", "one\n")
    scenarios.finish(kube, wf)
    assert wait_for(
        lambda: client.get(f"/api/v1/tasks/{task_id}/logs").get_json().get("complete") is True
    )
    assert client.get("/readyz").status_code == 200
    calls = {}
    for request in kube.requests:
        if request.resource:  # served routes: RBAC ran
            calls.setdefault(request.user, set()).add(
                (request.verb, request.resource, request.status)
            )
    collector = calls.pop("system:serviceaccount:argo:tasklogs-collector")
    web = calls.pop("system:serviceaccount:argo:tasklogs-web")
    assert calls == {}, "nobody else called"
    assert not {status for _, _, status in collector | web} & {401, 403}
    assert {("list", "workflows"), ("watch", "workflows"), ("list", "pods"), ("watch", "pods")} <= {
        (verb, resource) for verb, resource, _ in collector
    }
    assert ("get", "pods/log") in {(verb, resource) for verb, resource, _ in collector}
    assert not {verb for verb, _, _ in web} & {"watch"}


def test_a_collector_joining_takes_its_share_while_web_tails_miss_nothing(
    collectors, app, kube, task_id
):
    """The tasks that move to a newcomer are handed over under their leases; the web worker's viewers
    follow the journal throughout (the web worker captures nothing) and see every line once."""
    first = collectors()
    workflows = [scenarios.workflow(kube, f"{task_id}-{n}") for n in range(8)]
    assert wait_for(lambda: kube.open_streams() == 8)
    live = LiveServer(app)
    try:
        viewers = {
            wf.task_id: TailClient(live.ws_url(f"/ws/tasks/{wf.task_id}/logs")) for wf in workflows
        }
        frames = {task: [viewer.frame()] for task, viewer in viewers.items()}
        for index in range(10):
            for wf in workflows:
                kube.write_log(wf.pod(), "main", f"line {index}\n")
        second = collectors()
        engines = (first.collector.engine, second.collector.engine)

        def shared() -> bool:
            leading = [[e.leads(ref(wf.task_id)) for e in engines] for wf in workflows]
            return kube.open_streams() == 8 and all(sum(pair) == 1 for pair in leading)

        def moved() -> list:
            return [wf for wf in workflows if second.collector.engine.leads(ref(wf.task_id))]

        assert wait_for(lambda: shared() and len(moved()) == len(second.collector.mine) > 0, 10)
        assert 0 < len(moved()) < 8, "the newcomer took a share, not everything"
        for index in range(10, 20):
            for wf in workflows:
                kube.write_log(wf.pod(), "main", f"line {index}\n")
        for wf in workflows:
            scenarios.finish(kube, wf)
        for wf in workflows:
            frames[wf.task_id] += viewers[wf.task_id].rest()
            assert log_text(frames[wf.task_id], wf.pod()) == "".join(
                f"line {i}\n" for i in range(20)
            ), wf.task_id
        assert app.extensions["tasklogs"].engine.stats()["leading"] == 0
    finally:
        live.close()


def test_collectors_of_other_namespace_lists_do_not_share_and_leases_keep_one_capture(
    collectors, kube, task_id
):
    """Only collectors serving the same namespaces share out; two whose lists differ (a
    misconfiguration; here the second may not even read team-b) each count only themselves, and the
    lease still keeps one capture per task."""
    first = collectors()
    other = collectors(TASKLOGS_NAMESPACES="argo,team-b")
    scenarios.workflow(kube, task_id)
    assert wait_for(lambda: kube.open_streams() == 1)
    time.sleep(0.5)  # five heartbeats each
    for running in (first, other):
        membership = running.collector.membership
        assert membership.members == (membership.name,)
    assert first.collector.mine == {ref(task_id)}
    assert kube.open_streams() == 1
