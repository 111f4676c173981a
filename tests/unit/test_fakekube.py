"""The fake Kubernetes API server, exercised only through the real `kubernetes` client and a kubeconfig."""

import base64
import gzip
import json
import re
import threading
import time

import pytest
import urllib3
from kubernetes import client, config, watch

from testkit.fakekube import FakeKube, argo_pod_name, argo_workflow, fnv32a

NS = "argo"
WF = "wf-abc"


@pytest.fixture
def kube():
    fake = FakeKube(namespace=NS)
    yield fake
    fake.close()
    leftovers = [t.name for t in threading.enumerate() if t.name.startswith("fakekube")]
    assert leftovers == []


def make_api(kube, tmp_path, retries=None):
    cfg = client.Configuration()
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.retries = retries
    return client.ApiClient(cfg)


@pytest.fixture
def api(kube, tmp_path):
    api_client = make_api(kube, tmp_path)
    yield api_client
    api_client.close()


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture
def custom(api):
    return client.CustomObjectsApi(api)


def raw_log(api, pod, timeout=(3, 10), **params):
    """GET pods/log with raw query parameters (the client has no sinceTime argument); the urllib3 response."""
    method, url, headers, body, post = api.param_serialize(
        method="GET",
        resource_path="/api/v1/namespaces/{namespace}/pods/{name}/log",
        path_params={"namespace": NS, "name": pod},
        query_params=list(params.items()),
        header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"],
    )
    return api.call_api(method, url, headers, body, post, _request_timeout=timeout).response


def follow_log(core, pod, **kwargs):
    return core.read_namespaced_pod_log(
        pod, NS, follow=True, _preload_content=False, _request_timeout=(3, 10), **kwargs
    )


def status_of(exc_info):
    return json.loads(exc_info.value.body)


def later(seconds, fn, *args, **kwargs):
    timer = threading.Timer(seconds, fn, args, kwargs)
    timer.start()
    return timer


# --- objects ---


def test_list_and_get_pods_by_label(kube, core):
    kube.add_argo_pod(WF, f"{WF}-1", "wf-abc-echo-1")
    kube.add_argo_pod("other", "other-2", "other-echo-2")
    kube.add_pod("plain")

    pods = core.list_namespaced_pod(NS, label_selector=f"workflows.argoproj.io/workflow={WF}")
    assert [p.metadata.name for p in pods.items] == ["wf-abc-echo-1"]
    assert int(pods.metadata.resource_version) > 0
    pod = core.read_namespaced_pod("wf-abc-echo-1", NS)
    assert pod.metadata.annotations["workflows.argoproj.io/node-id"] == f"{WF}-1"
    assert pod.metadata.annotations["kubectl.kubernetes.io/default-container"] == "main"
    assert [c.name for c in pod.spec.init_containers] == ["init"]
    assert [c.name for c in pod.status.container_statuses] == ["wait", "main"]
    assert (
        len(core.list_namespaced_pod(NS, label_selector="workflows.argoproj.io/workflow").items)
        == 2
    )
    assert [p.metadata.name for p in core.list_namespaced_pod(NS, limit=1).items] == [
        "other-echo-2"
    ]


def test_pod_not_found_status(core):
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod("nope", NS)
    assert exc.value.status == 404
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "pods"},
        "code": 404,
    }


def test_workflows_list_get_and_not_found(kube, custom):
    kube.add_workflow(
        argo_workflow(WF, nodes=[{"name": WF, "templateName": "main", "type": "Steps"}])
    )
    kube.add_workflow(argo_workflow("wf-other"))

    listed = custom.list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NS, "workflows", field_selector=f"metadata.name={WF}"
    )
    assert listed["kind"] == "WorkflowList" and [
        w["metadata"]["name"] for w in listed["items"]
    ] == [WF]
    got = custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", WF)
    assert got["status"]["nodes"][WF]["id"] == WF and got["metadata"]["namespace"] == NS
    with pytest.raises(client.ApiException) as exc:
        custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", "nope")
    assert status_of(exc)["message"] == 'workflows.argoproj.io "nope" not found'
    assert status_of(exc)["details"] == {
        "name": "nope",
        "group": "argoproj.io",
        "kind": "workflows",
    }


def test_unauthorized_without_token(kube, tmp_path):
    api_client = make_api(kube, tmp_path)
    api_client.configuration.api_key = {}
    with pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(api_client).list_namespaced_pod(NS)
    assert exc.value.status == 401 and status_of(exc)["reason"] == "Unauthorized"
    api_client.close()


# --- log errors ---


@pytest.mark.parametrize(
    "setup, kwargs, message",
    [
        (
            lambda k: k.add_argo_pod(WF, "n", "p"),
            {},
            "a container name must be specified for pod p, choose one of: [init wait main]",
        ),
        (
            lambda k: k.add_argo_pod(WF, "n", "p"),
            {"container": "foo"},
            "container foo is not valid for pod p",
        ),
        (
            lambda k: k.add_argo_pod(WF, "n", "p", container_state="waiting"),
            {"container": "main"},
            'container "main" in pod "p" is waiting to start: ContainerCreating',
        ),
        (
            lambda k: k.add_argo_pod(WF, "n", "p"),
            {"container": "main", "previous": True},
            'previous terminated container "main" in pod "p" not found',
        ),
    ],
)
def test_log_bad_requests(kube, core, setup, kwargs, message):
    setup(kube)
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("p", NS, **kwargs)
    assert exc.value.status == 400
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


def test_log_pod_initializing_and_missing_pod(kube, core):
    kube.add_pod("p", container_state="waiting")
    kube.set_container_state("p", "main", "waiting", reason="PodInitializing")
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("p", NS)
    assert (
        status_of(exc)["message"]
        == 'container "main" in pod "p" is waiting to start: PodInitializing'
    )
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("gone", NS, container="main")
    assert exc.value.status == 404 and status_of(exc)["message"] == 'pods "gone" not found'


def test_log_bad_since_time_and_invalid_options(kube, api):
    kube.add_pod("p")
    resp = raw_log(api, "p", sinceTime="yesterday")
    assert resp.status == 400
    assert (
        json.loads(resp.data)["message"]
        == 'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"'
    )
    resp = raw_log(api, "p", sinceTime="2026-13-01T00:00:00Z")
    assert (
        json.loads(resp.data)["message"]
        == 'parsing time "2026-13-01T00:00:00Z": month out of range'
    )
    resp = raw_log(api, "p", tailLines="-1")
    assert resp.status == 422
    assert (
        json.loads(resp.data)["message"]
        == 'PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0'
    )


# --- log content ---


def test_timestamps_partial_lines_and_since_time_truncation(kube, api):
    kube.add_pod("p")
    kube.write_log("p", "main", "early\n", ts="2026-01-02T03:04:04.900000000Z")
    kube.write_log("p", "main", "abc", ts="2026-01-02T03:04:05.500000001Z")
    kube.write_log("p", "main", "def\nlast", ts="2026-01-02T03:04:06.000000002Z")

    assert raw_log(api, "p", timestamps="true").data == (
        b"2026-01-02T03:04:04.900000000Z early\n"
        b"2026-01-02T03:04:05.500000001Z abcdef\n"
        b"2026-01-02T03:04:06.000000002Z last"
    )
    # sinceTime 05.9 reaches the kubelet as 05: the line started at 05.5 is included
    assert raw_log(api, "p", sinceTime="2026-01-02T03:04:05.9Z").data == b"abcdef\nlast"
    assert raw_log(api, "p", tailLines="1").data == b"last"
    assert raw_log(api, "p", limitBytes="4").data == b"earl"
    assert kube.log_bytes("p", "main") == b"early\nabcdef\nlast"


def test_default_timestamps_strictly_increase(kube, api):
    kube.add_pod("p")
    for i in range(50):
        kube.write_log("p", "main", f"{i}\n")
    stamps = re.findall(rb"^(\S+) ", raw_log(api, "p", timestamps="true").data, re.M)
    assert len(stamps) == 50
    assert all(re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", s) for s in stamps)
    stored = [ts for ts, _ in kube.log_lines("p", "main")]
    assert stored == sorted(set(stored))


def test_nul_and_invalid_utf8_are_byte_exact(kube, core):
    kube.add_pod("p")
    payload = b"nul\x00here\n\xff\xfe bad \xe2\x82\n\xe2\x82\xac euro"
    kube.write_log("p", "main", payload)
    resp = core.read_namespaced_pod_log("p", NS, _preload_content=False, _request_timeout=(3, 10))
    assert resp.data == payload
    resp.release_conn()


def test_follow_receives_writes_live_and_ends_on_termination(kube, core):
    kube.add_argo_pod(WF, "n", "p")
    kube.write_log("p", "main", "one\n")
    resp = core.read_namespaced_pod_log(
        "p", NS, container="main", follow=True, _preload_content=False, _request_timeout=(3, 10)
    )
    chunks = resp.stream(1024)
    assert next(chunks) == b"one\n"
    assert kube.open_streams() == 1
    kube.write_log("p", "main", "tw")
    assert next(chunks) == b"tw"
    kube.write_log("p", "main", "o\n")
    assert next(chunks) == b"o\n"
    later(0.05, kube.set_container_state, "p", "main", "terminated")
    assert list(chunks) == []  # clean end: the terminating chunk arrived
    resp.release_conn()
    assert kube.requests[-1].follow and kube.requests[-1].status == 200
    assert (
        kube.pod("p")["status"]["containerStatuses"][1]["state"]["terminated"]["reason"]
        == "Completed"
    )


def test_follow_ends_cleanly_when_pod_deleted(kube, core):
    kube.add_pod("p")
    resp = follow_log(core, "p")
    later(0.05, kube.write_log, "p", "main", "bye\n")
    later(0.1, kube.delete_pod, "p")
    assert b"".join(resp.stream(1024)) == b"bye\n"
    resp.release_conn()
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("p", NS)
    assert exc.value.status == 404


def test_previous_after_restart(kube, core):
    kube.add_pod("p")
    kube.write_log("p", "main", "first run\n")
    kube.restart_container("p", "main")
    kube.write_log("p", "main", "second run\n")
    assert core.read_namespaced_pod_log("p", NS, previous=True) == "first run\n"
    assert core.read_namespaced_pod_log("p", NS) == "second run\n"
    status = kube.pod("p")["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1 and status["lastState"]["terminated"]["exitCode"] == 1


def test_removed_container_answers_200_with_error_text(kube, core):
    kube.add_pod("p")
    kube.write_log("p", "main", "lost\n")
    kube.remove_container_logs("p", "main")
    body = core.read_namespaced_pod_log("p", NS)
    assert re.fullmatch(r"unable to retrieve container logs for containerd://[0-9a-f]{64}", body)


# --- faults ---


def test_cut_mid_utf8_then_reset(kube, core):
    kube.add_pod("p")
    kube.write_log("p", "main", "€uro\n")
    kube.cut("pods/log", 2)
    resp = follow_log(core, "p")
    got = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for chunk in resp.stream(1024):
            got.append(chunk)
    assert b"".join(got) == b"\xe2\x82"
    resp.release_conn()


def test_reset_without_response(kube, tmp_path):
    api_client = make_api(kube, tmp_path, retries=False)
    kube.reset("pods")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        client.CoreV1Api(api_client).list_namespaced_pod(NS)
    assert kube.requests[-1].status == 0
    assert client.CoreV1Api(api_client).list_namespaced_pod(NS).items == []
    api_client.close()


def test_fail_500_then_recovers(kube, core):
    kube.fail("pods", 500)
    with pytest.raises(client.ApiException) as exc:
        core.list_namespaced_pod(NS)
    assert exc.value.status == 500
    assert status_of(exc)["reason"] == "InternalError"
    assert core.list_namespaced_pod(NS).items == []
    assert [r.status for r in kube.requests] == [500, 200]


def test_delay_triggers_client_read_timeout(kube, tmp_path):
    api_client = make_api(kube, tmp_path, retries=False)
    kube.delay("pods", 1.0)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        client.CoreV1Api(api_client).list_namespaced_pod(NS, _request_timeout=(1, 0.2))
    api_client.close()


def test_cut_streams_resets_open_follows(kube, core):
    kube.add_pod("p")
    resp = follow_log(core, "p")
    kube.write_log("p", "main", "x\n")
    chunks = resp.stream(1024)
    assert next(chunks) == b"x\n"
    kube.cut_streams("p")
    assert kube.open_streams() == 0
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(chunks)
    resp.release_conn()


def test_stop_refuses_connections_and_start_comes_back_on_same_port(kube, tmp_path):
    api_client = make_api(kube, tmp_path, retries=False)
    core = client.CoreV1Api(api_client)
    kube.add_pod("p")
    resp = follow_log(core, "p")
    port = kube.port
    kube.stop()
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(resp.stream(1024))
    resp.release_conn()
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        core.list_namespaced_pod(NS)
    kube.start()
    assert kube.port == port and [p.metadata.name for p in core.list_namespaced_pod(NS).items] == [
        "p"
    ]
    api_client.close()


# --- watches ---


def test_pod_watch_events_and_selector_leave(kube, core):
    kube.add_argo_pod(WF, "n1", "p1")
    w = watch.Watch()
    events = w.stream(
        core.list_namespaced_pod,
        NS,
        label_selector="workflows.argoproj.io/completed=false",
        timeout_seconds=5,
        _request_timeout=(3, 10),
    )
    first = next(events)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "p1")
    kube.set_container_state("p1", "main", "running")
    assert next(events)["type"] == "MODIFIED"
    kube.finish_pod("p1")  # completed=true: the pod leaves the selection
    gone = next(events)
    assert gone["type"] == "DELETED"  # carrying the object as it was before it left
    assert gone["object"].metadata.labels["workflows.argoproj.io/completed"] == "false"
    assert kube.open_streams("watch") == 1
    w.stop()


def test_workflow_watch_from_resource_version_and_end(kube, custom):
    kube.add_workflow(argo_workflow(WF))
    rv = kube.workflow(WF)["metadata"]["resourceVersion"]
    kube.update_workflow(WF, lambda wf: wf["status"].update(phase="Succeeded"))
    kube.delete_workflow(WF)
    w = watch.Watch()
    events = [
        (e["type"], e["object"]["status"]["phase"])
        for e in w.stream(
            custom.list_namespaced_custom_object,
            "argoproj.io",
            "v1alpha1",
            NS,
            "workflows",
            resource_version=rv,
            timeout_seconds=1,
        )
    ]
    assert events == [("MODIFIED", "Succeeded"), ("DELETED", "Succeeded")]


def test_end_watches_ends_streams_cleanly(kube, custom):
    resp = custom.list_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        NS,
        "workflows",
        watch=True,
        _preload_content=False,
        _request_timeout=(3, 10),
    )
    later(0.1, kube.end_watches)
    assert b"".join(resp.stream(1024)) == b""
    resp.release_conn()


def test_watch_with_expired_resource_version_gets_410(kube, core):
    kube.add_pod("p")
    old = kube.pod("p")["metadata"]["resourceVersion"]
    kube.set_pod_phase("p", "Succeeded")
    kube.expire_history()
    resp = core.list_namespaced_pod(
        NS, watch=True, resource_version=old, _preload_content=False, _request_timeout=(3, 10)
    )
    lines = resp.data.splitlines()
    now = kube.pod("p")["metadata"]["resourceVersion"]
    assert [json.loads(line) for line in lines] == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {old} ({now})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    with pytest.raises(client.ApiException) as exc:
        next(
            watch.Watch().stream(
                core.list_namespaced_pod, NS, resource_version=old, timeout_seconds=1
            )
        )
    assert exc.value.status == 410


# --- rbac ---


def test_rbac_forbidden_wording(kube, core, custom, tmp_path):
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text("""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: tasklogs}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tasklogs}
""")
    kube.load_rbac(rbac)
    kube.add_pod("x")
    assert core.read_namespaced_pod("x", NS).metadata.name == "x"
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_pod_log("x", NS)
    assert exc.value.status == 403
    assert status_of(exc)["message"] == (
        'pods "x" is forbidden: User "system:serviceaccount:argo:tasklogs" '
        'cannot get resource "pods/log" in API group "" in the namespace "argo"'
    )
    assert status_of(exc)["details"] == {"name": "x", "kind": "pods"}
    with pytest.raises(client.ApiException) as exc:
        custom.list_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows")
    assert status_of(exc)["message"] == (
        'workflows.argoproj.io is forbidden: User "system:serviceaccount:argo:tasklogs" cannot list resource '
        '"workflows" in API group "argoproj.io" in the namespace "argo"'
    )


# --- argo naming ---


def test_fnv32a_vectors_from_argo_ui_tests():
    assert fnv32a("hello") == 1335831723
    assert fnv32a("world") == 933488787
    assert fnv32a("You cannot alter your fate. However, you can rise to meet it.") == 827171719
    assert fnv32a("こんにちは") == 486186189
    assert fnv32a("🚀✨🔥") == 2133319838


def test_argo_pod_names_match_argo_tests():
    # node IDs from cmd/argo/commands/common/get_test.go
    assert (
        argo_pod_name("many-items-z26lj", "many-items-z26lj[0].sleep(9:nine)", "sleep", "v1")
        == "many-items-z26lj-2619926859"
    )
    assert (
        argo_pod_name("many-items-z26lj", "many-items-z26lj[0].sleep(11:eleven)", "sleep", "v1")
        == "many-items-z26lj-3011405271"
    )
    # workflow/util/pod_name_v2_test.go
    assert (
        argo_pod_name("wfname", "nodename", "templatename", "v2")
        == f"wfname-templatename-{fnv32a('nodename')}"
    )
    assert argo_pod_name("wfname", "stp.inline", "", "v2") == f"wfname-{fnv32a('stp.inline')}"
    assert argo_pod_name("wfname", "wfname", "templatename", "v2") == "wfname"
    long_wf = (
        "alongworkflownamethatincludeslotsofdetailsandisessentiallyalargerunonsentencewithpoorstyleand"
        "nopunctuationtobehadwhatsoever"
    )
    long_tpl = (
        "alongtemplatenamethatincludessliightlymoredetailsandiscertainlyalargerunonstnence"
        "withevenworsestylisticconcernsandpreposterouslyeliminatespunctuation"
    )
    name = argo_pod_name(long_wf, "nodename", long_tpl, "v2")
    assert name == f"{long_wf}-{long_tpl}"[:242] + f"-{fnv32a('nodename')}"


def test_argo_workflow_node_ids_and_compressed_round_trip(kube, custom):
    nodes = [
        {"name": WF, "templateName": "main", "type": "Steps", "children": [f"{WF}.a"]},
        {"name": f"{WF}.a", "templateRef": {"name": "lib", "template": "echo"}, "type": "Pod"},
    ]
    plain = argo_workflow(WF, nodes=nodes, pod_name_format="v2")
    child = f"{WF}-{fnv32a(WF + '.a')}"
    assert set(plain["status"]["nodes"]) == {WF, child}
    assert plain["status"]["nodes"][WF]["children"] == [child]
    assert plain["metadata"]["annotations"]["workflows.argoproj.io/pod-name-format"] == "v2"

    kube.add_workflow(argo_workflow(WF, nodes=nodes, compressed=True))
    got = custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", WF)
    assert "nodes" not in got["status"]
    raw = base64.b64decode(got["status"]["compressedNodes"])
    assert raw[:2] == b"\x1f\x8b" and json.loads(gzip.decompress(raw)) == plain["status"]["nodes"]
    offloaded = argo_workflow("wf-off", nodes=nodes, offloaded=True)["status"]
    assert offloaded["offloadNodeStatusVersion"] == "fnv:12345" and "nodes" not in offloaded


def test_requests_are_recorded(kube, core):
    kube.add_pod("p")
    core.read_namespaced_pod_log("p", NS, container="main")
    core.list_namespaced_pod(NS)
    assert kube.count(verb="get", resource="pods/log") == 1 and kube.count(verb="list") == 1
    req = kube.requests[0]
    assert (req.method, req.path, req.query, req.name, req.group, req.status) == (
        "GET",
        "/api/v1/namespaces/argo/pods/p/log",
        {"container": "main"},
        "p",
        "",
        200,
    )
    kube.reset_requests()
    assert kube.requests == []


def test_keep_alive_connections_are_reused(kube, core):
    for _ in range(5):
        core.list_namespaced_pod(NS)
    assert kube.connections == 1


def test_watch_bookmarks(kube, core):
    kube.bookmark_interval = 0.05
    resp = core.list_namespaced_pod(
        NS,
        watch=True,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
        _request_timeout=(3, 10),
    )
    events = [json.loads(line) for line in resp.data.splitlines()]
    assert events and {e["type"] for e in events} == {"BOOKMARK"}
    current = core.list_namespaced_pod(NS).metadata.resource_version
    assert events[0]["object"]["metadata"]["resourceVersion"] == current


def test_disconnected_follower_is_released_quietly(kube, core, capfd):
    kube.add_pod("p")
    resp = follow_log(core, "p")
    kube.write_log("p", "main", "x\n")
    assert next(resp.stream(1024)) == b"x\n"
    resp.close()  # the client walks away mid-stream
    deadline = time.monotonic() + 3
    while kube.open_streams() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kube.open_streams() == 0
    kube.write_log("p", "main", "nobody listens\n")
    assert capfd.readouterr().err == ""


def test_rbac_forbidden_wording_at_the_cluster_scope():
    from testkit.fakekube.status import forbidden

    error = forbidden(
        "system:serviceaccount:argo:tasklogs-collector",
        "create",
        "tokenreviews",
        "",
        "authentication.k8s.io",
        None,
    )
    assert (error.code, error.message) == (
        403,
        'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:argo:'
        'tasklogs-collector" cannot create resource "tokenreviews" in API group '
        '"authentication.k8s.io" at the cluster scope',
    )


def test_rbac_bindings_resolve_per_subject_and_namespace():
    from testkit.fakekube.rbac import allows, grants_of

    role = {"kind": "Role", "metadata": {"name": "r", "namespace": "a"}, "rules": [POD_READ]}
    objects = [
        role,
        {
            "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "a"},
            "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}],  # namespace: the binding's
        },
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "c"},
            "roleRef": {"kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:a"}],
        },
    ]
    sa, other = "system:serviceaccount:a:sa", "system:serviceaccount:b:sa"
    assert allows(grants_of(objects, sa).rules_in("a"), "get", "", "pods", "p")
    assert not allows(grants_of(objects, sa).rules_in("b"), "get", "", "pods", "p")
    assert not allows(grants_of(objects, other).rules_in("a"), "get", "", "pods", "p")
    review = ("create", "authentication.k8s.io", "tokenreviews", None)
    assert allows(grants_of(objects, sa).rules_in(None), *review)
    assert not allows(grants_of(objects, other).rules_in(None), *review)
    with pytest.raises(ValueError, match="Role 'missing'"):
        grants_of(
            [
                {
                    "kind": "RoleBinding",
                    "metadata": {"name": "b", "namespace": "a"},
                    "roleRef": {"kind": "Role", "name": "missing"},
                    "subjects": [{"kind": "ServiceAccount", "name": "sa"}],
                }
            ],
            sa,
        )


POD_READ = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
