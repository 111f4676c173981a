"""Argo Workflows objects for tests, naming re-implemented from argoproj/argo-workflows:
NodeID (pkg/apis/workflow/v1alpha1/workflow_types.go), GeneratePodName (workflow/util/pod_name.go)
and the node status packer (workflow/packer/packer.go, util/file/fileutil.go).
"""

import base64
import copy
import gzip
import json

MAX_K8S_RESOURCE_NAME_LENGTH = 253
K8S_NAMING_HASH_LENGTH = 10
MAX_PREFIX_LENGTH = MAX_K8S_RESOURCE_NAME_LENGTH - K8S_NAMING_HASH_LENGTH
POD_NAME_FORMAT_ANNOTATION = "workflows.argoproj.io/pod-name-format"


def fnv32a(s: str) -> int:
    """FNV-1a, 32 bits, over the UTF-8 bytes (Go's hash/fnv New32a)."""
    h = 0x811C9DC5
    for byte in s.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def node_id(workflow_name: str, node_name: str) -> str:
    if node_name == workflow_name:
        return workflow_name
    return f"{workflow_name}-{fnv32a(node_name)}"


def argo_pod_name(wf: str, node_name: str, template: str, version: str = "v2") -> str:
    """GeneratePodName: v1 is the node ID; v2 is <wf>-<template>-<fnv32a(node name)>."""
    if version == "v1":
        return node_id(wf, node_name)
    if wf == node_name:
        return wf
    prefix = f"{wf}-{template}" if template else wf
    raw = prefix.encode("utf-8")
    if len(raw) > MAX_PREFIX_LENGTH - 1:  # Go slices bytes, so may split a multibyte character
        prefix = raw[: MAX_PREFIX_LENGTH - 1].decode("utf-8", "ignore")
    return f"{prefix}-{fnv32a(node_name)}"


def node_template(node: dict) -> str:
    """GetTemplateFromNode: templateRef.template when set, else templateName."""
    ref = node.get("templateRef") or {}
    return ref.get("template") or node.get("templateName", "")


def compress_nodes(nodes: dict) -> str:
    """status.compressedNodes: base64 of gzip of the JSON of status.nodes."""
    raw = json.dumps(nodes, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(gzip.compress(raw)).decode()


def decompress_nodes(text: str) -> dict:
    return json.loads(gzip.decompress(base64.b64decode(text)))


def argo_workflow(
    name,
    *,
    phase="Running",
    nodes=None,
    pod_name_format=None,
    compressed=False,
    offloaded=False,
    annotations=None,
    namespace=None,
    labels=None,
) -> dict:
    """A Workflow object whose status.nodes are keyed by the IDs Argo gives them."""
    meta = {
        "name": name,
        "labels": {"workflows.argoproj.io/phase": phase, **(labels or {})},
        "annotations": dict(annotations or {}),
    }
    if namespace:
        meta["namespace"] = namespace
    if pod_name_format:
        meta["annotations"][POD_NAME_FORMAT_ANNOTATION] = pod_name_format
    status = {"phase": phase, "startedAt": "2026-01-02T03:04:05Z", "progress": "0/0"}
    node_map = nodes_by_id(name, nodes or [], phase)
    if offloaded:
        status["offloadNodeStatusVersion"] = "fnv:12345"
    elif compressed:
        status["compressedNodes"] = compress_nodes(node_map)
    elif node_map:
        status["nodes"] = node_map
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": meta,
        "spec": {"entrypoint": "main", "templates": []},
        "status": status,
    }


def nodes_by_id(workflow_name, nodes, phase) -> dict:
    """status.nodes: each node gets its id; children are given as node names and become ids."""
    node_map = {}
    for node in nodes:
        node = copy.deepcopy(node)
        node["id"] = node_id(workflow_name, node["name"])
        node.setdefault("displayName", node["name"].rsplit(".", 1)[-1])
        node.setdefault("phase", phase)
        children = [node_id(workflow_name, child) for child in node.pop("children", [])]
        if children:
            node["children"] = children
        node_map[node["id"]] = node
    return node_map
