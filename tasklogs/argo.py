"""Argo Workflows' naming rules and status shapes, as pure functions over plain dicts.

Every rule here mirrors a named upstream source in argoproj/argo-workflows, so it can be checked:
node IDs (`pkg/apis/workflow/v1alpha1/workflow_types.go`, `Workflow.NodeID`), pod names
(`workflow/util/pod_name.go`), compressed nodes (`workflow/packer/packer.go`, `util/file/fileutil.go`)
and label/annotation keys (`workflow/common/common.go`).
"""

import base64
import binascii
import json
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from .cluster import PodSummary

LABEL_WORKFLOW = "workflows.argoproj.io/workflow"
LABEL_COMPONENT = "workflows.argoproj.io/component"
ANNOTATION_NODE_ID = "workflows.argoproj.io/node-id"
ANNOTATION_NODE_NAME = "workflows.argoproj.io/node-name"
ANNOTATION_POD_NAME_FORMAT = "workflows.argoproj.io/pod-name-format"

POD_NAME_V1 = "v1"
POD_NAME_V2 = "v2"
POD_NAME_VERSIONS = (POD_NAME_V1, POD_NAME_V2)

# maxK8sResourceNameLength (253) - k8sNamingHashLength (10) - 1: a longer prefix is cut to this many bytes.
MAX_POD_NAME_PREFIX_BYTES = 242

NODE_TYPE_POD = "Pod"
PHASE_PENDING = "Pending"
WORKFLOW_FINAL_PHASES = frozenset({"Succeeded", "Failed", "Error"})
# Skipped and Omitted nodes never get a pod, so nothing about them will change any more.
NO_POD_PHASES = frozenset({"Skipped", "Omitted"})
FINAL_PHASES = WORKFLOW_FINAL_PHASES | NO_POD_PHASES

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LATEST = datetime.max.replace(tzinfo=UTC)
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_INFLATE_PIECE = 1 << 20
DEFAULT_MAX_NODES_BYTES = 64 << 20  # TASKLOGS_MAX_WORKFLOW_MB's default
# The fields of a Pod node this service reads (and keeps in the cache of parsed nodes).
_NODE_TEXT_FIELDS = ("id", "name", "displayName", "type", "phase", "templateName", "startedAt")
# Node names hold loop items, so they can be long, but not this long (each is hashed on every read).
MAX_NODE_FIELD = 65536


class ArgoError(Exception):
    """A workflow's status cannot be read the way this service needs."""


class NodesUnavailable(ArgoError):
    """The workflow's nodes are not in the Workflow object in a form this service can read."""


class MalformedStatus(NodesUnavailable):
    """The workflow's status has a shape Argo never writes (a wrong type, corrupt or oversized
    compressed nodes): the message says what is wrong, without the workflow's name."""


@dataclass(frozen=True)
class PodTarget:
    """One pod of a workflow whose logs can be served: the node it runs and the pod's (expected) name."""

    node_id: str
    node_name: str
    display_name: str
    pod_name: str
    phase: str
    template: str
    started: str = ""


def fnv32a(text: str) -> int:
    """Return the 32-bit FNV-1a hash of the UTF-8 bytes of text (Go's hash/fnv New32a)."""
    value = _FNV32_OFFSET
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return value


def node_id(workflow_name: str, node_name: str) -> str:
    """Return the ID Argo gives the node named node_name in the workflow."""
    if node_name == workflow_name:
        return workflow_name
    return f"{workflow_name}-{fnv32a(node_name)}"


def pod_name(workflow_name: str, node_name: str, template_name: str, version: str) -> str:
    """Return the pod name Argo's current controller gives a Pod node (GeneratePodName)."""
    if version == POD_NAME_V1:
        return node_id(workflow_name, node_name)
    if version != POD_NAME_V2:
        raise ValueError(
            f"unknown pod name version {version!r}, expected one of {POD_NAME_VERSIONS}"
        )
    if node_name == workflow_name:
        return workflow_name
    prefix = f"{workflow_name}-{template_name}" if template_name else workflow_name
    return f"{_cut_pod_name_prefix(prefix)}-{fnv32a(node_name)}"


def legacy_pod_name(workflow_name: str, node_name: str, template_name: str) -> str:
    """Return the v2 pod name of Argo v3.4.0 to v3.5.8, which differs for nodes without a template."""
    if node_name == workflow_name:
        return workflow_name
    # v3.4.8-v3.5.8 left the template out when the node name contained ".inline"; before, it was always
    # put in, so an empty template gave "<wf>--<hash>".
    prefix = workflow_name if ".inline" in node_name else f"{workflow_name}-{template_name}"
    return f"{_cut_pod_name_prefix(prefix)}-{fnv32a(node_name)}"


def _cut_pod_name_prefix(prefix: str) -> str:
    # Go slices bytes; Kubernetes names are ASCII, so a split character cannot occur in a real pod name.
    return prefix.encode("utf-8")[:MAX_POD_NAME_PREFIX_BYTES].decode("utf-8", errors="ignore")


def pod_name_version(workflow: dict, default: str = POD_NAME_V2) -> str:
    """Return the pod name version from the workflow's pod-name-format annotation, else default."""
    annotations = (workflow.get("metadata") or {}).get("annotations") or {}
    version = annotations.get(ANNOTATION_POD_NAME_FORMAT)
    if version is None:
        return default
    # Upstream GetWorkflowPodNameVersion maps an unknown value to v2, not to the controller's setting.
    return version if version in POD_NAME_VERSIONS else POD_NAME_V2


def node_template(node: dict) -> str:
    """Return the template name Argo puts in a node's pod name: templateRef.template, else templateName."""
    template_ref = node.get("templateRef")
    if template_ref:
        return template_ref.get("template", "")
    return node.get("templateName", "")


def workflow_name(workflow: dict) -> str:
    """Return the workflow's name."""
    return (workflow.get("metadata") or {}).get("name", "")


def workflow_phase(workflow: dict) -> str:
    """Return the workflow's phase; a workflow the controller has not seen yet is Pending.
    MalformedStatus when the status or its phase has the wrong type."""
    phase = _status(workflow).get("phase")
    if phase is not None and not isinstance(phase, str):
        raise MalformedStatus(f"status.phase is {_kind(phase)}, not a string")
    return phase or PHASE_PENDING


def _status(workflow: dict) -> dict:
    status = workflow.get("status")
    if status is not None and not isinstance(status, dict):
        raise MalformedStatus(f"status is {_kind(status)}, not an object")
    return status or {}


def _kind(value: object) -> str:
    """How a JSON value that has the wrong type is named in a message: 'a list', 'a string', ..."""
    names = {str: "a string", list: "a list", dict: "an object", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "unknown")


def workflow_times(workflow: dict) -> tuple[datetime | None, datetime | None]:
    """When the workflow started (`status.startedAt`, else its creation) and finished (None while it
    runs); None where the object does not say or says something unreadable."""
    status, meta = workflow.get("status"), workflow.get("metadata")
    status = status if isinstance(status, dict) else {}
    meta = meta if isinstance(meta, dict) else {}
    started = status.get("startedAt") or meta.get("creationTimestamp")
    finished = status.get("finishedAt")
    return (
        _moment(started) if isinstance(started, str) else None,
        _moment(finished) if isinstance(finished, str) else None,
    )


def is_final_phase(phase: str) -> bool:
    """Tell whether a workflow or node in this phase is done: none of its pods will start or run again."""
    return phase in FINAL_PHASES


def workflow_nodes(workflow: dict, max_bytes: int = DEFAULT_MAX_NODES_BYTES) -> dict:
    """Return the workflow's nodes by node ID, decompressing status.compressedNodes when needed (to at
    most `max_bytes` of JSON). MalformedStatus when the status has a shape Argo never writes."""
    status = _status(workflow)
    if status.get("nodes"):
        return _checked_nodes(status["nodes"], "status.nodes")
    if status.get("compressedNodes"):
        nodes = _decompress_nodes(status["compressedNodes"], max_bytes)
        return _checked_nodes(nodes, "status.compressedNodes")
    if status.get("offloadNodeStatusVersion"):
        raise NodesUnavailable(
            f"workflow {workflow_name(workflow)!r} has its node status offloaded to Argo's database "
            f"(status.offloadNodeStatusVersion={status['offloadNodeStatusVersion']!r}); this service cannot "
            "read that database: only the pods that still exist can be found, by their workflow label"
        )
    return {}


def _checked_nodes(nodes: object, where: str) -> dict:
    """The nodes, if every field this service reads has the type Argo writes; else MalformedStatus."""
    if not isinstance(nodes, dict):
        raise MalformedStatus(f"{where} is {_kind(nodes)}, not an object of nodes")
    for key, node in nodes.items():
        if not isinstance(node, dict):
            raise MalformedStatus(f"{where}[{key[:80]!r}] is {_kind(node)}, not a node object")
        if node.get("type") != NODE_TYPE_POD:
            continue
        for name in _NODE_TEXT_FIELDS:
            _check_text(node.get(name), f"{where}[{key[:80]!r}].{name}")
        reference = node.get("templateRef")
        if reference is not None and not (
            isinstance(reference, dict) and isinstance(reference.get("template", ""), str)
        ):
            raise MalformedStatus(f"{where}[{key[:80]!r}].templateRef is not a template reference")
    return nodes


def _check_text(value: object, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise MalformedStatus(f"{where} is {_kind(value)}, not a string")
    if value is not None and len(value) > MAX_NODE_FIELD:
        raise MalformedStatus(f"{where} is {len(value)} characters long (at most {MAX_NODE_FIELD})")


def _decompress_nodes(compressed: object, max_bytes: int) -> object:
    if not isinstance(compressed, str):
        raise MalformedStatus(f"status.compressedNodes is {_kind(compressed)}, not a string")
    try:
        # Go's base64 decoder skips line breaks; anything else outside the alphabet is an error.
        payload = base64.b64decode(compressed.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as error:
        raise MalformedStatus(f"status.compressedNodes is not base64 ({error})") from None
    try:
        return json.loads(_inflate(payload, max_bytes))
    except ValueError as error:
        raise MalformedStatus(f"status.compressedNodes is unreadable ({error})") from None


def _inflate(payload: bytes, max_bytes: int) -> bytes | bytearray:
    """The gzip payload inflated, to at most `max_bytes`: a gzip bomb is refused, never inflated whole."""
    if not payload.startswith(_GZIP_MAGIC):
        # Argo >= 4.1 can also write zstd or brotli (WORKFLOW_COMPRESSION_ALGORITHM); brotli has no magic.
        algorithm = "zstd" if payload.startswith(_ZSTD_MAGIC) else "brotli (or unknown)"
        raise NodesUnavailable(
            f"status.compressedNodes is compressed with {algorithm}; this service reads only gzip, "
            "Argo's default: set WORKFLOW_COMPRESSION_ALGORITHM=gzip on the workflow controller"
        )
    inflater, text, data = zlib.decompressobj(_GZIP_WBITS), bytearray(), payload
    try:
        # A piece at a time into one buffer: the peak is the limit, not twice the inflated size.
        while data and not inflater.eof and len(text) <= max_bytes:
            text += inflater.decompress(data, _INFLATE_PIECE)
            data = inflater.unconsumed_tail
        if len(text) <= max_bytes:
            text += inflater.flush()
    except zlib.error as error:
        raise MalformedStatus(f"status.compressedNodes is not valid gzip ({error})") from None
    if len(text) > max_bytes:
        raise MalformedStatus(
            f"status.compressedNodes inflates to more than {max_bytes / 2**20:g} MB "
            "(TASKLOGS_MAX_WORKFLOW_MB)"
        )
    if not inflater.eof:
        raise MalformedStatus("status.compressedNodes is cut short (the gzip stream does not end)")
    return text


def pod_nodes(workflow: dict, max_bytes: int = DEFAULT_MAX_NODES_BYTES) -> list[dict]:
    """Return the workflow's Pod nodes (the only ones with a pod), ordered by start time, then name.

    Parsed once per workflow version (metadata uid and resourceVersion): polling a workflow that did
    not change inflates nothing, and a malformed one fails again at once."""
    metadata = workflow.get("metadata") or {}
    key = (metadata.get("uid"), metadata.get("resourceVersion"), max_bytes)
    if not (key[0] and key[1]):
        return _pod_nodes(workflow, max_bytes)
    cached = PARSED_NODES.get(key)
    if cached is None:
        try:
            cached = _pod_nodes(workflow, max_bytes)
        except NodesUnavailable as error:
            cached = error
        PARSED_NODES.put(key, cached)
    if isinstance(cached, NodesUnavailable):
        raise cached
    return cached


def _pod_nodes(workflow: dict, max_bytes: int) -> list[dict]:
    nodes = [
        _pod_node_fields(node, key)
        for key, node in workflow_nodes(workflow, max_bytes).items()
        if node.get("type") == NODE_TYPE_POD
    ]
    return sorted(nodes, key=lambda node: _start_order(node.get("startedAt"), node.get("name", "")))


def _pod_node_fields(node: dict, key: str) -> dict:
    kept = {name: node[name] for name in (*_NODE_TEXT_FIELDS, "templateRef") if name in node}
    return dict(kept, id=node.get("id") or key)


class ParsedNodes:
    """Pod nodes by workflow version, least recently used first out, holding at most `max_nodes` nodes
    (a result that failed counts as one)."""

    def __init__(self, max_nodes: int):
        self.max_nodes = max_nodes
        self._entries: OrderedDict[tuple, list[dict] | NodesUnavailable] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> list[dict] | NodesUnavailable | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple, value: list[dict] | NodesUnavailable) -> None:
        size = _size(value)
        if size > self.max_nodes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self._size += size - (0 if old is None else _size(old))
            self._entries[key] = value
            while self._size > self.max_nodes:
                self._size -= _size(self._entries.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._entries)


def _size(value: list[dict] | NodesUnavailable) -> int:
    return len(value) if isinstance(value, list) else 1


# About 1 KB per node kept: the cache stays under about 100 MB however many workflows are polled.
PARSED_NODES = ParsedNodes(max_nodes=100_000)


def pod_target_order(target: PodTarget) -> tuple:
    """Return the sort key that lists targets in the order their nodes started (not started: last)."""
    return _start_order(target.started, target.node_name or target.pod_name)


def _start_order(started: str | None, name: str) -> tuple:
    moment = _moment(started)
    return (moment is None, moment or _LATEST, name)


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve_pod_targets(
    workflow: dict | None, pods: list[PodSummary], max_nodes_bytes: int = DEFAULT_MAX_NODES_BYTES
) -> list[PodTarget]:
    """Return one target per pod the workflow has or will have, in start order.

    pods are the workflow's listed pods as plain dicts (name, annotations, labels, phase, created).
    With workflow None (the Workflow was deleted) the targets come from the pods alone.
    Raises NodesUnavailable when the workflow's nodes cannot be read; resolve_pod_targets(None, pods)
    then still finds the pods that exist. Raises MalformedStatus (a NodesUnavailable) when the status has
    a shape Argo never writes, or its compressed nodes inflate beyond `max_nodes_bytes`.
    """
    if workflow is None:
        targets = [_target_from_pod(pod) for pod in pods if _is_node_pod(pod)]
    else:
        targets = _targets_from_nodes(workflow, pods, max_nodes_bytes)
    return sorted(targets, key=pod_target_order)


def _targets_from_nodes(
    workflow: dict, pods: list[PodSummary], max_nodes_bytes: int
) -> list[PodTarget]:
    pods_by_node_id = _pods_by_node_id(pods)
    pods_by_name = {pod["name"]: pod for pod in pods}
    targets = []
    for node in pod_nodes(workflow, max_nodes_bytes):
        names = _candidate_pod_names(workflow_name(workflow), node, pod_name_version(workflow))
        pod = pods_by_node_id.get(node["id"]) or _pod_by_name(node, names, pods_by_name)
        phase = node.get("phase") or PHASE_PENDING
        if pod is None and phase in NO_POD_PHASES:
            continue
        targets.append(_target_from_node(node, pod["name"] if pod else names[0], phase))
    return targets


def _pods_by_node_id(pods: list[PodSummary]) -> dict[str, PodSummary]:
    # A pod that Argo restarted is recreated under the same node ID: the newest one wins.
    by_node_id = {}
    for pod in sorted(pods, key=lambda pod: _start_order(pod.get("created"), pod["name"])):
        pod_node_id = _annotation(pod, ANNOTATION_NODE_ID)
        if pod_node_id:
            by_node_id[pod_node_id] = pod
    return by_node_id


def _pod_by_name(
    node: dict, names: list[str], pods_by_name: dict[str, PodSummary]
) -> PodSummary | None:
    for name in names:
        pod = pods_by_name.get(name)
        # A pod annotated with another node's ID is that node's pod, whatever its name.
        if pod and _annotation(pod, ANNOTATION_NODE_ID) in (None, node["id"]):
            return pod
    return None


def _candidate_pod_names(name: str, node: dict, version: str) -> list[str]:
    # The expected name comes first. A workflow without the annotation may still have v1 pods from an
    # older controller, so the other version is tried too; then the v3.4.0-v3.5.8 variant of v2.
    template = node_template(node)
    other = POD_NAME_V1 if version == POD_NAME_V2 else POD_NAME_V2
    names = [
        pod_name(name, node["name"], template, version),
        pod_name(name, node["name"], template, other),
        legacy_pod_name(name, node["name"], template),
    ]
    return list(dict.fromkeys(names))


def _target_from_node(node: dict, name: str, phase: str) -> PodTarget:
    return PodTarget(
        node_id=node["id"],
        node_name=node.get("name", ""),
        display_name=node.get("displayName") or node.get("name", ""),
        pod_name=name,
        phase=phase,
        template=node_template(node),
        started=node.get("startedAt") or "",
    )


def _annotation(pod: PodSummary, key: str) -> str | None:
    return (pod.get("annotations") or {}).get(key)


def _is_node_pod(pod: PodSummary) -> bool:
    # Agent pods (HTTP/plugin templates) and artifact GC pods carry the workflow label but run no node.
    return not (pod.get("labels") or {}).get(LABEL_COMPONENT)


def _target_from_pod(pod: PodSummary) -> PodTarget:
    name = (pod.get("labels") or {}).get(LABEL_WORKFLOW, "")
    node_name = _annotation(pod, ANNOTATION_NODE_NAME) or ""
    return PodTarget(
        node_id=_pod_node_id(pod, name, node_name),
        node_name=node_name,
        display_name=_display_name(name, node_name) or pod["name"],
        pod_name=pod["name"],
        phase=pod.get("phase") or PHASE_PENDING,
        template=_template_from_pod_name(pod["name"], name, node_name),
        started=pod.get("created") or "",
    )


def _pod_node_id(pod: PodSummary, name: str, node_name: str) -> str:
    # The controller's own fallback (operator.go nodeID): node-id, else the ID of node-name.
    annotated = _annotation(pod, ANNOTATION_NODE_ID)
    if annotated:
        return annotated
    if node_name and name:
        return node_id(name, node_name)
    return pod["name"]  # a v1 pod name is its node ID


def _display_name(name: str, node_name: str) -> str:
    # Node names are "<wf>.<task>" or "<wf>[0].<step>", nested; items like "(0:a.b)" may hold dots.
    rest = node_name[len(name) :] if name and node_name.startswith(name) else node_name
    depth = 0
    for index in range(len(rest) - 1, -1, -1):
        depth += (rest[index] in ")]") - (rest[index] in "([")
        if rest[index] == "." and depth == 0:
            return rest[index + 1 :]
    return node_name


def _template_from_pod_name(pod: str, name: str, node_name: str) -> str:
    # A v2 pod name is "<wf>-<template>-<fnv32a(node name)>"; v1 and template-less names give "".
    prefix, suffix = f"{name}-", f"-{fnv32a(node_name)}"
    if not (name and node_name) or len(pod) < len(prefix) + len(suffix):
        return ""
    if pod.startswith(prefix) and pod.endswith(suffix):
        return pod[len(prefix) : -len(suffix)]
    return ""


# workflow/executor/executor.go, saveContainerLogs: each main container's log is saved as the output
# artifact `<container>-logs` (the file `<container>.log` under the archive location's key).
LOGS_ARTIFACT_SUFFIX = "-logs"


@dataclass(frozen=True)
class LogArtifact:
    """The artifact archiveLogs wrote for one container of a Pod node, and when the node finished."""

    artifact: dict
    finished: datetime | None


def log_artifact(
    workflow: dict, node_id: str, container: str, max_bytes: int = DEFAULT_MAX_NODES_BYTES
) -> LogArtifact | None:
    """The node's `<container>-logs` output artifact (`status.nodes[id].outputs.artifacts[]`), or None
    when the node records none (archiveLogs off, or the node unknown)."""
    node = workflow_nodes(workflow, max_bytes).get(node_id)
    outputs = node.get("outputs") if isinstance(node, dict) else None
    artifacts = outputs.get("artifacts") if isinstance(outputs, dict) else None
    wanted = container + LOGS_ARTIFACT_SUFFIX
    for artifact in artifacts if isinstance(artifacts, list) else []:
        if isinstance(artifact, dict) and artifact.get("name") == wanted:
            finished = node.get("finishedAt") if isinstance(node, dict) else None
            return LogArtifact(artifact, _moment(finished) if isinstance(finished, str) else None)
    return None


def artifact_repository_refs(workflow: dict) -> tuple[dict | None, dict | None]:
    """The workflow's `status.artifactRepositoryRef` (what the controller resolved and used) and its
    `spec.artifactRepositoryRef` (what it asked for), each None when absent or not an object."""
    status = workflow.get("status")
    spec = workflow.get("spec")
    resolved = status.get("artifactRepositoryRef") if isinstance(status, dict) else None
    asked = spec.get("artifactRepositoryRef") if isinstance(spec, dict) else None
    return (
        resolved if isinstance(resolved, dict) else None,
        asked if isinstance(asked, dict) else None,
    )
