"""Argo naming rules and pod resolution, checked against vectors taken from argoproj/argo-workflows."""

import base64
import gzip
import json

import pytest

from tasklogs import argo
from tasklogs.argo import NodesUnavailable, PodTarget

# From workflow/util/pod_name_v1_test.go and pod_name_v2_test.go.
LONG_WF_NAME = (
    "alongworkflownamethatincludeslotsofdetailsandisessentiallyalargerunonsentencewithpoorstyle"
    "andnopunctuationtobehadwhatsoever"
)
LONG_TEMPLATE_NAME = (
    "alongtemplatenamethatincludessliightlymoredetailsandiscertainlyalargerunonstnencewithevenworse"
    "stylisticconcernsandpreposterouslyeliminatespunctuation"
)


def pod_node(wf, name, template, phase="Succeeded", started="2026-03-24T00:40:00Z", **extra):
    """Return a Pod node of workflow wf as Argo writes it in status.nodes."""
    node = {
        "id": argo.node_id(wf, name),
        "name": name,
        "displayName": name.rsplit(".", 1)[-1],
        "type": "Pod",
        "phase": phase,
        "templateName": template,
        "startedAt": started,
    }
    node.update(extra)
    return node


def workflow(name, nodes, annotations=None, **status):
    """Return a Workflow object as the Kubernetes API returns it, with nodes keyed by ID."""
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "status": {"phase": "Running", "nodes": {node["id"]: node for node in nodes}, **status},
    }


def pod(
    name,
    wf,
    node_name=None,
    annotate_id=True,
    phase="Running",
    created="2026-03-24T00:40:01Z",
    **labels,
):
    """Return a pod as the kube adapter hands it over."""
    annotations = {}
    if node_name is not None:
        annotations[argo.ANNOTATION_NODE_NAME] = node_name
        if annotate_id:
            annotations[argo.ANNOTATION_NODE_ID] = argo.node_id(wf, node_name)
    return {
        "name": name,
        "annotations": annotations,
        "labels": {argo.LABEL_WORKFLOW: wf, **labels},
        "phase": phase,
        "created": created,
    }


def compressed(nodes):
    """Return nodes the way Argo's packer stores them in status.compressedNodes: base64 of gzip'd JSON."""
    return base64.b64encode(gzip.compress(json.dumps(nodes).encode())).decode()


# --- hashes, IDs and names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", 0x811C9DC5),  # the FNV offset basis
        ("a", 0xE40C292C),  # Go hash/fnv golden32a
        ("ab", 0x4D2505CA),
        ("abc", 0x1A47E90B),
        ("foobar", 0xBF9CF968),
        (
            "retry-test-p7jzr[0].steps-outer-step1",
            2308805457,
        ),  # controller/indexes/workflow_index_test.go
    ],
)
def test_fnv32a_matches_known_values(text, expected):
    assert argo.fnv32a(text) == expected


def test_fnv32a_hashes_utf8_bytes():
    # "é" is c3 a9 in UTF-8 (0x1e9de8c1), not e9 as Latin-1 (0x6c0b6c44): Go hashes the string's bytes.
    assert argo.fnv32a("é") == 0x1E9DE8C1


def test_node_id_of_root_is_the_workflow_name():
    assert argo.node_id("workflow-retry", "workflow-retry") == "workflow-retry"


@pytest.mark.parametrize(
    "wf, name, expected",
    [
        ("many-items-z26lj", "many-items-z26lj[0].sleep(9:nine)", "many-items-z26lj-2619926859"),
        ("workflow-retry", "workflow-retry.launch(1:fail)(0)", "workflow-retry-1861571805"),
        (
            "retry-test-p7jzr",
            "retry-test-p7jzr[0].steps-outer-step1",
            "retry-test-p7jzr-2308805457",
        ),
    ],
)
def test_node_id_of_child(wf, name, expected):
    assert argo.node_id(wf, name) == expected


def test_v1_pod_name_is_the_node_id():
    assert argo.pod_name("wfname", "nodename", "templatename", "v1") == argo.node_id(
        "wfname", "nodename"
    )
    long_name = argo.pod_name(LONG_WF_NAME, "nodename", LONG_TEMPLATE_NAME, "v1")
    assert long_name == argo.node_id(LONG_WF_NAME, "nodename")


@pytest.mark.parametrize(
    "wf, name, template, expected",
    [
        (
            "wfname",
            "nodename",
            "templatename",
            "wfname-templatename-1454367246",
        ),  # pod_name_v2_test.go
        (
            "wfname",
            "stp.inline",
            "",
            "wfname-2902770869",
        ),  # pod_name_v2_test.go: no template, no "--"
        # workflow/util/util_test.go: real pods (the first also names the archived log key)
        (
            "subdag-iterate-jrfch",
            "subdag-iterate-jrfch.echo-group(0:foo).echo-bye",
            "echo",
            "subdag-iterate-jrfch-echo-1786915540",
        ),
        (
            "workflow-retry",
            "workflow-retry.launch(1:fail)(0)",
            "passfail",
            "workflow-retry-passfail-1861571805",
        ),
        (
            "workflow-retry",
            "workflow-retry.launch(0:pass)(0)",
            "passfail",
            "workflow-retry-passfail-3976347509",
        ),
        ("my-wf", "my-wf", "main", "my-wf"),  # a root Pod node's pod is named like the workflow
    ],
)
def test_v2_pod_name(wf, name, template, expected):
    assert argo.pod_name(wf, name, template, "v2") == expected


def test_v2_pod_name_uses_the_template_of_a_template_ref():
    # workflow/util/util_test.go TestGetTemplateFromNode
    template_ref = {"name": "foo-workflowtemplate", "template": "foo-template"}
    node = {"name": "wf.a", "templateName": "", "templateRef": template_ref}
    assert argo.node_template(node) == "foo-template"
    expected = f"wf-foo-template-{argo.fnv32a('wf.a')}"
    assert argo.pod_name("wf", "wf.a", argo.node_template(node), "v2") == expected
    assert argo.node_template({"templateName": "bar-template"}) == "bar-template"


def test_v2_pod_name_of_long_names_cuts_the_prefix_to_242_bytes():
    name = argo.pod_name(LONG_WF_NAME, "nodename", LONG_TEMPLATE_NAME, "v2")
    prefix = f"{LONG_WF_NAME}-{LONG_TEMPLATE_NAME}"
    assert name == f"{prefix[:242]}-1454367246"
    assert len(name) <= 253


@pytest.mark.parametrize("length, kept", [(241, 241), (242, 242), (243, 242), (300, 242)])
def test_pod_name_prefix_cut_is_len_greater_than_242(length, kept):
    # ensurePodNamePrefixLength: len(prefix) > maxPrefixLength-1 (242) -> prefix[0:242]
    wf = "w" * length
    assert argo.pod_name(wf, "x", "", "v2") == "w" * kept + f"-{argo.fnv32a('x')}"


def test_pod_name_rejects_unknown_version():
    with pytest.raises(ValueError):
        argo.pod_name("wf", "wf.a", "t", "v3")


def test_legacy_pod_name_of_argo_3_4_to_3_5_8():
    hash_ = argo.fnv32a("wf[0].a")
    assert argo.legacy_pod_name("wf", "wf[0].a", "") == f"wf--{hash_}"
    assert argo.legacy_pod_name("wf", "wf[0].a", "t") == f"wf-t-{hash_}"
    assert argo.legacy_pod_name("wf", "stp.inline", "t") == f"wf-{argo.fnv32a('stp.inline')}"


@pytest.mark.parametrize(
    "annotations, default, expected",
    [
        ({argo.ANNOTATION_POD_NAME_FORMAT: "v1"}, "v2", "v1"),
        ({argo.ANNOTATION_POD_NAME_FORMAT: "v2"}, "v1", "v2"),
        ({argo.ANNOTATION_POD_NAME_FORMAT: "v9"}, "v1", "v2"),  # upstream maps unknown values to v2
        ({}, "v2", "v2"),
        ({}, "v1", "v1"),  # absent: the controller's POD_NAMES, which the caller passes as default
    ],
)
def test_pod_name_version(annotations, default, expected):
    assert (
        argo.pod_name_version({"metadata": {"annotations": annotations}}, default=default)
        == expected
    )


def test_pod_name_version_defaults_to_v2():
    assert argo.pod_name_version({"metadata": {}}) == "v2"


# --- phases ------------------------------------------------------------------------------------------


def test_workflow_phase_empty_is_pending():
    assert argo.workflow_phase({"status": {}}) == "Pending"
    assert argo.workflow_phase({}) == "Pending"
    assert argo.workflow_phase({"status": {"phase": "Running"}}) == "Running"


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Error", "Skipped", "Omitted"])
def test_final_phases(phase):
    assert argo.is_final_phase(phase)


@pytest.mark.parametrize("phase", ["", "Pending", "Running", "Unknown"])
def test_unfinished_phases(phase):
    assert not argo.is_final_phase(phase)


# --- nodes -------------------------------------------------------------------------------------------


def test_workflow_nodes_reads_status_nodes():
    node = pod_node("wf", "wf.a", "t")
    assert argo.workflow_nodes(workflow("wf", [node])) == {node["id"]: node}


def test_workflow_nodes_decompresses_compressed_nodes():
    nodes = {n["id"]: n for n in [pod_node("wf", "wf.a", "t"), pod_node("wf", "wf.b", "t")]}
    wf = {"metadata": {"name": "wf"}, "status": {"compressedNodes": compressed(nodes)}}
    assert argo.workflow_nodes(wf) == nodes


def test_workflow_nodes_of_a_new_workflow_are_empty():
    assert argo.workflow_nodes({"metadata": {"name": "wf"}}) == {}


@pytest.mark.parametrize(
    "payload, words",
    [
        (b"\x28\xb5\x2f\xfd" + b"\x00" * 8, ["zstd", "gzip", "WORKFLOW_COMPRESSION_ALGORITHM"]),
        (b"\x0b\x02\x80{}\x03", ["brotli", "gzip"]),
    ],
)
def test_workflow_nodes_refuses_other_compressions(payload, words):
    wf = {
        "metadata": {"name": "wf"},
        "status": {"compressedNodes": base64.b64encode(payload).decode()},
    }
    with pytest.raises(NodesUnavailable) as raised:
        argo.workflow_nodes(wf)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"\x1f\x8bbroken").decode()])
def test_workflow_nodes_refuses_garbage(value):
    with pytest.raises(NodesUnavailable, match="compressedNodes"):
        argo.workflow_nodes({"metadata": {"name": "wf"}, "status": {"compressedNodes": value}})


def test_workflow_nodes_offloaded_says_why():
    wf = {"metadata": {"name": "wf"}, "status": {"offloadNodeStatusVersion": "fnv:1234"}}
    with pytest.raises(NodesUnavailable) as raised:
        argo.workflow_nodes(wf)
    message = str(raised.value)
    assert "offloaded" in message and "database" in message and "cannot" in message
    assert "fnv:1234" in message and "'wf'" in message


def test_nodes_unavailable_is_an_argo_error():
    assert issubclass(NodesUnavailable, argo.ArgoError)


def test_pod_nodes_keeps_pod_nodes_in_start_order():
    nodes = [
        {"id": "wf", "name": "wf", "type": "Steps", "startedAt": "2026-01-01T00:00:00Z"},
        {"id": "wf-1", "name": "wf.r", "type": "Retry", "startedAt": "2026-01-01T00:00:00Z"},
        pod_node("wf", "wf.r(1)", "t", started="2026-01-01T00:00:09Z"),
        pod_node("wf", "wf.r(0)", "t", started="2026-01-01T00:00:01Z"),
        pod_node("wf", "wf.b", "t", started="2026-01-01T00:00:01Z"),
        pod_node("wf", "wf.c", "t", started=""),
    ]
    names = [node["name"] for node in argo.pod_nodes(workflow("wf", nodes))]
    assert names == ["wf.b", "wf.r(0)", "wf.r(1)", "wf.c"]


def test_pod_nodes_fills_a_missing_id_from_the_key():
    node = pod_node("wf", "wf.a", "t")
    del node["id"]
    wf = {"metadata": {"name": "wf"}, "status": {"nodes": {"wf-42": node}}}
    assert argo.pod_nodes(wf)[0]["id"] == "wf-42"


# --- resolving pods ----------------------------------------------------------------------------------


def retry_workflow(annotations=None):
    """Return the workflow-retry example of workflow/util/util_test.go: two Retry nodes, one attempt each."""
    wf = "workflow-retry"
    nodes = [
        {"id": "workflow-retry", "name": "workflow-retry", "type": "DAG", "phase": "Failed"},
        {
            "id": "workflow-retry-816771446",
            "name": "workflow-retry.launch(0:pass)",
            "type": "Retry",
        },
        {
            "id": "workflow-retry-1743784750",
            "name": "workflow-retry.launch(1:fail)",
            "type": "Retry",
        },
        pod_node(
            wf, "workflow-retry.launch(0:pass)(0)", "passfail", "Succeeded", "2026-03-24T00:40:00Z"
        ),
        pod_node(
            wf, "workflow-retry.launch(1:fail)(0)", "passfail", "Failed", "2026-03-24T00:40:00Z"
        ),
        # a second attempt, added here to show attempts are separate Pod nodes
        pod_node(
            wf, "workflow-retry.launch(1:fail)(1)", "passfail", "Running", "2026-03-24T00:41:00Z"
        ),
    ]
    return workflow(wf, nodes, annotations)


def test_resolve_by_node_id_annotation_whatever_the_name():
    wf = retry_workflow()
    pods = [pod("renamed-pod", "workflow-retry", "workflow-retry.launch(0:pass)(0)")]
    target = argo.resolve_pod_targets(wf, pods)[0]
    assert target.pod_name == "renamed-pod"
    assert target.node_id == "workflow-retry-3976347509"


def test_resolve_retries_give_one_target_per_attempt():
    targets = argo.resolve_pod_targets(retry_workflow(), [])
    assert [(t.node_id, t.pod_name, t.phase) for t in targets] == [
        ("workflow-retry-3976347509", "workflow-retry-passfail-3976347509", "Succeeded"),
        ("workflow-retry-1861571805", "workflow-retry-passfail-1861571805", "Failed"),
        (
            argo.node_id("workflow-retry", "workflow-retry.launch(1:fail)(1)"),
            f"workflow-retry-passfail-{argo.fnv32a('workflow-retry.launch(1:fail)(1)')}",
            "Running",
        ),
    ]
    assert all(t.template == "passfail" for t in targets)


def test_resolve_without_annotations_by_v1_name():
    wf = (
        retry_workflow()
    )  # no pod-name-format annotation: v2 is expected, but an old controller made v1 pods
    pods = [pod("workflow-retry-1861571805", "workflow-retry", phase="Failed")]
    target = next(
        t for t in argo.resolve_pod_targets(wf, pods) if t.node_id == "workflow-retry-1861571805"
    )
    assert target.pod_name == "workflow-retry-1861571805"


def test_resolve_without_annotations_by_v2_name_in_a_v1_workflow():
    wf = retry_workflow({argo.ANNOTATION_POD_NAME_FORMAT: "v1"})
    pods = [pod("workflow-retry-passfail-1861571805", "workflow-retry")]
    target = next(
        t for t in argo.resolve_pod_targets(wf, pods) if t.node_id == "workflow-retry-1861571805"
    )
    assert target.pod_name == "workflow-retry-passfail-1861571805"


def test_resolve_without_annotations_by_v2_name():
    wf = retry_workflow({argo.ANNOTATION_POD_NAME_FORMAT: "v2"})
    pods = [pod("workflow-retry-passfail-1861571805", "workflow-retry")]
    target = next(
        t for t in argo.resolve_pod_targets(wf, pods) if t.node_id == "workflow-retry-1861571805"
    )
    assert target.pod_name == "workflow-retry-passfail-1861571805"


def test_resolve_by_legacy_name_of_a_node_without_template():
    wf = workflow("wf", [pod_node("wf", "wf[0].a", "")])
    legacy = f"wf--{argo.fnv32a('wf[0].a')}"
    assert argo.resolve_pod_targets(wf, [pod(legacy, "wf")])[0].pod_name == legacy


def test_resolve_ignores_a_name_match_annotated_for_another_node():
    wf = workflow("wf", [pod_node("wf", "wf.a", "t")])
    squatter = pod(argo.pod_name("wf", "wf.a", "t", "v1"), "wf", node_name="wf.other")
    target = argo.resolve_pod_targets(wf, [squatter])[0]
    assert target.pod_name == argo.pod_name("wf", "wf.a", "t", "v2")


def test_resolve_prefers_the_newest_pod_of_a_node():
    wf = workflow("wf", [pod_node("wf", "wf.a", "t")])
    pods = [
        pod("new", "wf", "wf.a", created="2026-01-01T00:00:09Z"),
        pod("old", "wf", "wf.a", created="2026-01-01T00:00:01Z"),
    ]
    assert argo.resolve_pod_targets(wf, pods)[0].pod_name == "new"


def test_resolve_pod_node_without_pod_gets_computed_name_and_node_phase():
    wf = workflow("wf", [pod_node("wf", "wf.a", "t", phase="Pending", displayName="a")])
    assert argo.resolve_pod_targets(wf, []) == [
        PodTarget(
            node_id=argo.node_id("wf", "wf.a"),
            node_name="wf.a",
            display_name="a",
            pod_name=f"wf-t-{argo.fnv32a('wf.a')}",
            phase="Pending",
            template="t",
            started="2026-03-24T00:40:00Z",
        )
    ]


def test_resolve_pod_node_without_pod_in_a_v1_workflow_gets_the_node_id():
    wf = workflow("wf", [pod_node("wf", "wf.a", "t")], {argo.ANNOTATION_POD_NAME_FORMAT: "v1"})
    assert argo.resolve_pod_targets(wf, [])[0].pod_name == argo.node_id("wf", "wf.a")


@pytest.mark.parametrize("phase", ["Skipped", "Omitted"])
def test_resolve_skipped_nodes_give_no_target(phase):
    wf = workflow("wf", [pod_node("wf", "wf.a", "t", phase=phase), pod_node("wf", "wf.b", "t")])
    assert [t.node_name for t in argo.resolve_pod_targets(wf, [])] == ["wf.b"]


def test_resolve_only_pod_nodes():
    nodes = [
        {"id": "wf", "name": "wf", "type": "Steps", "phase": "Running"},
        {
            "id": argo.node_id("wf", "wf[0]"),
            "name": "wf[0]",
            "type": "StepGroup",
            "phase": "Running",
        },
        {
            "id": argo.node_id("wf", "wf[0].s"),
            "name": "wf[0].s",
            "type": "Suspend",
            "phase": "Running",
        },
        pod_node("wf", "wf[0].a", "t"),
    ]
    assert [t.node_name for t in argo.resolve_pod_targets(workflow("wf", nodes), [])] == ["wf[0].a"]


def test_resolve_compressed_workflow():
    node = pod_node("wf", "wf.a", "t")
    wf = {"metadata": {"name": "wf"}, "status": {"compressedNodes": compressed({node["id"]: node})}}
    assert [t.node_id for t in argo.resolve_pod_targets(wf, [])] == [node["id"]]


def test_resolve_offloaded_workflow_raises_and_pods_alone_still_work():
    wf = {"metadata": {"name": "wf"}, "status": {"offloadNodeStatusVersion": "fnv:1"}}
    pods = [pod(argo.pod_name("wf", "wf.a", "t", "v2"), "wf", "wf.a")]
    with pytest.raises(NodesUnavailable):
        argo.resolve_pod_targets(wf, pods)
    assert [t.node_name for t in argo.resolve_pod_targets(None, pods)] == ["wf.a"]


def test_resolve_targets_order_by_start_then_name():
    nodes = [
        pod_node("wf", "wf.b", "t", started="2026-01-01T00:00:05Z"),
        pod_node("wf", "wf.a", "t", started="2026-01-01T00:00:05Z"),
        pod_node("wf", "wf.c", "t", started="2026-01-01T00:00:01Z"),
    ]
    targets = argo.resolve_pod_targets(workflow("wf", nodes), [])
    assert [t.node_name for t in targets] == ["wf.c", "wf.a", "wf.b"]
    assert sorted(reversed(targets), key=argo.pod_target_order) == targets


# --- resolving pods without the Workflow -------------------------------------------------------------


def test_resolve_without_workflow_from_pods_alone():
    pods = [
        pod("wf-t-2", "wf", "wf[1].second", phase="Running", created="2026-01-01T00:00:09Z"),
        pod(
            f"wf-t-{argo.fnv32a('wf[0].first(0:a.b)')}",
            "wf",
            "wf[0].first(0:a.b)",
            phase="Succeeded",
            created="2026-01-01T00:00:01Z",
        ),
    ]
    first, second = argo.resolve_pod_targets(None, pods)
    assert first == PodTarget(
        node_id=argo.node_id("wf", "wf[0].first(0:a.b)"),
        node_name="wf[0].first(0:a.b)",
        display_name="first(0:a.b)",
        pod_name=f"wf-t-{argo.fnv32a('wf[0].first(0:a.b)')}",
        phase="Succeeded",
        template="t",
        started="2026-01-01T00:00:01Z",
    )
    assert (second.node_name, second.display_name, second.phase) == (
        "wf[1].second",
        "second",
        "Running",
    )
    assert second.template == ""  # the name does not carry this node's hash


def test_resolve_without_workflow_node_id_from_node_name_annotation():
    pods = [pod("wf-echo-1786915540", "wf", "wf.echo-group(0:foo).echo-bye", annotate_id=False)]
    (target,) = argo.resolve_pod_targets(None, pods)
    assert target.node_id == argo.node_id("wf", "wf.echo-group(0:foo).echo-bye")
    assert target.display_name == "echo-bye"


def test_resolve_without_workflow_node_id_from_v1_pod_name():
    (target,) = argo.resolve_pod_targets(None, [pod("wf-1861571805", "wf")])
    assert (target.node_id, target.node_name, target.display_name) == (
        "wf-1861571805",
        "",
        "wf-1861571805",
    )
    assert target.template == ""


def test_resolve_without_workflow_skips_agent_and_artifact_gc_pods():
    pods = [
        pod("wf-1340600742-agent", "wf", **{argo.LABEL_COMPONENT: "agent"}),
        pod("wf-artgc-wfcomp-1", "wf", **{argo.LABEL_COMPONENT: "artifact-gc"}),
        pod("wf", "wf", "wf", phase="", created=""),
    ]
    (target,) = argo.resolve_pod_targets(None, pods)
    assert (target.pod_name, target.display_name, target.phase) == ("wf", "wf", "Pending")


def test_resolve_without_workflow_and_without_pods():
    assert argo.resolve_pod_targets(None, []) == []


# --- hardening: bombs, malformed statuses, the cache of parsed nodes -------------------------------


def bomb(megabytes: int) -> str:
    """compressedNodes of about `megabytes` MB of JSON: a Pod node with one long field."""
    body = b'{"n":{"type":"Pod","name":"wf.a","x":"' + b"a" * (megabytes << 20) + b'"}}'
    return base64.b64encode(gzip.compress(body, 9)).decode()


def versioned(status: dict, uid: str = "uid-1", version: str = "7") -> dict:
    return {"metadata": {"name": "wf", "uid": uid, "resourceVersion": version}, "status": status}


def test_a_gzip_bomb_is_refused_with_memory_bounded_by_the_limit():
    import tracemalloc

    compressed = bomb(64)  # 64 MB of JSON in about 90 KB of base64
    wf = {"metadata": {"name": "wf"}, "status": {"compressedNodes": compressed}}
    tracemalloc.start()
    with pytest.raises(argo.MalformedStatus, match=r"inflates to more than 4 MB") as raised:
        argo.workflow_nodes(wf, max_bytes=4 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "TASKLOGS_MAX_WORKFLOW_MB" in str(raised.value)
    assert peak < 8 << 20, f"inflating a bomb took {peak / 2**20:.0f} MB for a 4 MB limit"


def test_compressed_nodes_under_the_limit_are_read():
    node = pod_node("wf", "wf.a", "t")
    wf = {"metadata": {"name": "wf"}, "status": {"compressedNodes": compressed({"k": node})}}
    assert argo.workflow_nodes(wf, max_bytes=len(json.dumps({"k": node})) + 10) == {"k": node}


def test_cut_short_compressed_nodes_are_malformed():
    whole = gzip.compress(json.dumps({"k": pod_node("wf", "wf.a", "t")}).encode())
    wf = {"metadata": {"name": "wf"}, "status": {"compressedNodes": base64.b64encode(whole[:-12])}}
    wf["status"]["compressedNodes"] = wf["status"]["compressedNodes"].decode()
    with pytest.raises(argo.MalformedStatus, match="cut short"):
        argo.workflow_nodes(wf)


@pytest.mark.parametrize(
    "status, words",
    [
        ({"nodes": "abc"}, ["status.nodes is a string, not an object of nodes"]),
        ({"nodes": ["a"]}, ["status.nodes is a list"]),
        ({"nodes": {"k": "x"}}, ["status.nodes['k'] is a string, not a node object"]),
        ({"nodes": {"k": {"type": "Pod", "name": ["a"]}}}, ["status.nodes['k'].name is a list"]),
        ({"nodes": {"k": {"type": "Pod", "name": "a", "phase": {}}}}, [".phase is an object"]),
        (
            {"nodes": {"k": {"type": "Pod", "name": "a", "startedAt": 5}}},
            [".startedAt is a number"],
        ),
        ({"nodes": {"k": {"type": "Pod", "name": "a", "templateRef": "t"}}}, [".templateRef"]),
        ({"nodes": {"k": {"type": "Pod", "name": "a" * 70000}}}, ["70000 characters long"]),
        ({"compressedNodes": 12}, ["status.compressedNodes is a number"]),
        ({"compressedNodes": compressed(["a"])}, ["status.compressedNodes is a list"]),
    ],
)
def test_malformed_nodes_say_what_is_wrong(status, words):
    with pytest.raises(argo.MalformedStatus) as raised:
        argo.pod_nodes({"metadata": {"name": "wf"}, "status": status})
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize(
    "wf, words",
    [
        ({"status": "Running"}, "status is a string, not an object"),
        ({"status": {"phase": ["Running"]}}, "status.phase is a list, not a string"),
    ],
)
def test_a_malformed_phase_says_what_is_wrong(wf, words):
    with pytest.raises(argo.MalformedStatus, match=words):
        argo.workflow_phase(wf)


def test_non_pod_nodes_are_not_checked_beyond_their_type():
    nodes = {"s": {"type": "Steps", "name": ["anything"]}, "p": pod_node("wf", "wf.a", "t")}
    assert [
        node["name"] for node in argo.pod_nodes(workflow("wf", []) | {"status": {"nodes": nodes}})
    ] == ["wf.a"]


def test_parsed_nodes_are_cached_per_workflow_version():
    status = {"compressedNodes": compressed({"k": pod_node("wf", "wf.a", "t")})}
    first = argo.pod_nodes(versioned(status, version="100"))
    assert argo.pod_nodes(versioned(status, version="100")) is first, (
        "same version: not parsed again"
    )
    assert argo.pod_nodes(versioned(status, version="101")) is not first
    assert argo.pod_nodes(versioned(status, uid="other", version="100")) is not first
    assert [node["name"] for node in first] == ["wf.a"]


def test_a_bomb_is_refused_once_per_workflow_version():
    wf = versioned({"compressedNodes": bomb(8)}, uid="bomb-uid")
    with pytest.raises(argo.MalformedStatus) as first:
        argo.pod_nodes(wf, max_bytes=1 << 20)
    with pytest.raises(argo.MalformedStatus) as again:
        argo.pod_nodes(wf, max_bytes=1 << 20)
    assert again.value is first.value, "the cached refusal, not a second inflation"


def test_the_cache_keeps_only_what_pod_nodes_read():
    node = pod_node("wf", "wf.a", "t", outputs={"artifacts": [{"name": "big"}]}, children=["x"])
    (kept,) = argo.pod_nodes(versioned({"nodes": {node["id"]: node}}, uid="trim"))
    assert "outputs" not in kept and "children" not in kept and kept["name"] == "wf.a"


def test_the_cache_holds_a_bounded_number_of_nodes():
    cache = argo.ParsedNodes(max_nodes=5)
    cache.put(("a",), [{}] * 3)
    cache.put(("b",), [{}] * 2)
    assert cache.get(("a",)) is not None  # a is now the most recently used
    cache.put(("c",), [{}] * 2)
    assert cache.get(("b",)) is None and cache.get(("a",)) is not None and len(cache) == 2
    cache.put(("huge",), [{}] * 6)
    assert cache.get(("huge",)) is None, "larger than the whole budget: not kept"
