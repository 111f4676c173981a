"""An in-memory `tasklogs.cluster.Cluster` for unit tests: no HTTP, no threads of its own.

Workflows are built the way Argo names them (`testkit.fakekube.argo`, re-implemented from upstream
apart from `tasklogs.argo`, so `tasks.build_task` is checked against an independent reading), pods are
the `PodSummary` dicts `kube.pod_summary` makes of such pods, and logs follow the kubelet's rules as
the real adapter sees them:

- each line is stamped with an RFC 3339 timestamp with nine fraction digits and a space; the cluster's
  clock moves 1 ms per line, so many lines share a second and a resumed read repeats some of them;
- `since_time` keeps the lines of that whole second and later; `follow=True` blocks (on one
  `threading.Condition`) until new lines, the container's end, the pod's deletion, `abort()` or `close()`;
- errors are the adapter's: ObjectNotFound `pods "x" not found`, ContainerWaiting, LogsGone, and
  ClusterUnavailable for a cut stream (`break_streams`) or an unreachable cluster (`failure`).
"""

import copy
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from tasklogs import argo
from tasklogs.cluster import AccessDecision, ConfigMap, PodSummary, ReviewedToken
from tasklogs.errors import (
    ClusterRefused,
    ClusterUnavailable,
    ContainerWaiting,
    LogsGone,
    ObjectNotFound,
)
from testkit.fakekube.argo import argo_pod_name, argo_workflow
from testkit.fakekube.argo import node_id as argo_node_id

EPOCH = 1_767_323_045_000_000_000  # 2026-01-02T03:04:05Z in nanoseconds
TICK = 1_000_000  # the clock moves 1 ms per stamped line


def stamp(nanos: int) -> str:
    """`2026-01-02T03:04:05.123456789Z` for nanoseconds since the epoch."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


@dataclass
class Instance:
    """One run of a container: its stamped lines (`b"<stamp> text\\n"`); `closed` once it ended."""

    lines: list[bytes] = field(default_factory=list)
    closed: bool = False


@dataclass
class Container:
    state: str = "running"
    reason: str = ""
    exit_code: int | None = None
    restarts: int = 0
    current: Instance = field(default_factory=Instance)
    previous: Instance | None = None


@dataclass
class Pod:
    name: str
    labels: dict
    annotations: dict
    created: str
    phase: str
    containers: dict[str, Container]
    deleted: bool = False
    namespace: str = "argo"

    def summary(self) -> PodSummary:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "container_names": list(self.containers),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "created": self.created,
            "deleting": False,
            "phase": self.phase,
            "containers": {
                name: {
                    "state": c.state,
                    "reason": c.reason,
                    "restarts": c.restarts,
                    "exit_code": c.exit_code,
                }
                for name, c in self.containers.items()
            },
        }


REASONS = {"waiting": "ContainerCreating", "running": "", "terminated": "Completed"}


class MemoryCluster:
    """Workflows, pods and logs of one namespace in memory; `requests` counts calls by "verb resource"."""

    def __init__(self, namespace: str = "argo"):
        self.namespace = namespace
        self.requests: Counter[str] = Counter()
        self.failure: Exception | None = None  # raised by every request while set
        self.chunk_bytes = 0  # >0: log reads return pieces of this many bytes (lines cut anywhere)
        self.changed = threading.Condition()
        self.workflows: dict[str, dict] = {}
        self.pods: dict[str, Pod] = {}
        self.streams: set[MemoryLogStream] = set()
        self.events: list[tuple[int, str, str, dict]] = []  # (resourceVersion, kind, type, object)
        self.version = 1
        self.clock = EPOCH
        self.closed = False
        self.tokens: dict[str, tuple[str, tuple[str, ...]]] = {}  # bearer token -> (user, groups)
        self.readers: set[tuple[str, str]] = set()  # (user or group, namespace) that may read logs
        self._others: dict[str, MemoryCluster] = {}
        self.configmaps: dict[str, ConfigMap] = {}
        self.secrets: dict[str, dict[str, bytes]] = {}

    def in_namespace(self, namespace: str) -> "MemoryCluster":
        """This cluster for its own namespace (and for `*`); another namespace is another, empty
        MemoryCluster (build it through this call)."""
        if namespace in (self.namespace, "*"):
            return self
        return self._others.setdefault(namespace, MemoryCluster(namespace))

    # --- building the namespace ---

    def add_workflow(
        self,
        name: str,
        steps=("a",),
        *,
        phase="Running",
        pod_phase="Running",
        container_state="running",
        containers=("init", "wait", "main"),
        template="echo",
        make_pods=True,
    ) -> dict[str, str]:
        """A workflow with one Pod node per step (and its pod); return {step: pod name}."""
        nodes = [
            {
                "name": name,
                "type": "Steps",
                "templateName": "main",
                "phase": phase,
                "children": [f"{name}[0].{step}" for step in steps],
            }
        ]
        nodes += [
            {
                "name": f"{name}[0].{step}",
                "type": "Pod",
                "templateName": template,
                "phase": phase,
                "displayName": step,
                "startedAt": f"2026-01-02T03:04:{i:02d}Z",
            }
            for i, step in enumerate(steps)
        ]
        pods = {}
        with self.changed:
            self._record(
                "workflows",
                "ADDED",
                argo_workflow(
                    name,
                    phase=phase,
                    nodes=nodes,
                    pod_name_format="v2",
                    namespace=self.namespace,
                ),
            )
            for step, node in zip(steps, nodes[1:], strict=True):
                pods[step] = argo_pod_name(name, node["name"], template, "v2")
                if make_pods:
                    self.add_pod(
                        pods[step],
                        name,
                        argo_node_id(name, node["name"]),
                        node["name"],
                        phase=pod_phase,
                        state=container_state,
                        containers=containers,
                    )
        return pods

    def add_pod(
        self,
        pod: str,
        workflow: str,
        node_id: str,
        node_name: str,
        *,
        phase="Running",
        state="running",
        containers=("init", "wait", "main"),
    ) -> None:
        """An Argo pod of `workflow` running node `node_id` (labels and annotations as Argo sets them)."""
        with self.changed:
            self.pods[pod] = Pod(
                pod,
                {argo.LABEL_WORKFLOW: workflow, "workflows.argoproj.io/completed": "false"},
                {
                    argo.ANNOTATION_NODE_ID: node_id,
                    argo.ANNOTATION_NODE_NAME: node_name,
                    "kubectl.kubernetes.io/default-container": "main",
                },
                stamp(self.clock)[:19] + "Z",
                phase,
                {
                    name: Container(state, REASONS[state], 0 if state == "terminated" else None)
                    for name in containers
                },
                namespace=self.namespace,
            )
            self._pod_changed(pod, "ADDED")

    def set_phase(self, workflow: str, phase: str) -> None:
        """The workflow's phase and its nodes' (as the controller reports them at the end)."""
        with self.changed:
            obj = copy.deepcopy(self.workflows[workflow])
            obj["status"]["phase"] = obj["metadata"]["labels"]["workflows.argoproj.io/phase"] = (
                phase
            )
            for node in obj["status"].get("nodes", {}).values():
                node["phase"] = phase
            self._record("workflows", "MODIFIED", obj)

    def write(self, pod: str, text: str | bytes, container: str = "main", at: int | None = None):
        """Log lines (a newline ends the last if missing), stamped from the clock or at `at` ns."""
        data = text.encode() if isinstance(text, str) else text
        with self.changed:
            run = self.pods[pod].containers[container].current
            for line in data.splitlines(keepends=True):
                self.clock = max(self.clock + TICK, at or 0)
                run.lines.append(
                    stamp(at or self.clock).encode() + b" " + line.rstrip(b"\n") + b"\n"
                )
            self.changed.notify_all()

    def set_state(self, pod: str, container: str, state: str, *, reason=None, exit_code=0) -> None:
        """waiting | running | terminated (which ends the current run's followers)."""
        with self.changed:
            c = self.pods[pod].containers[container]
            c.state, c.reason = state, reason if reason is not None else REASONS[state]
            c.exit_code = exit_code if state == "terminated" else None
            c.current.closed = state == "terminated"
            self._pod_changed(pod)

    def restart(self, pod: str, container: str = "main") -> None:
        """The current run ends and becomes the previous one; a new run starts with an empty log."""
        with self.changed:
            c = self.pods[pod].containers[container]
            c.current.closed = True
            c.previous, c.current = c.current, Instance()
            c.restarts += 1
            c.state, c.reason, c.exit_code = "running", "", None
            self._pod_changed(pod)

    def finish_pod(self, pod: str, phase: str = "Succeeded", exit_code: int = 0) -> None:
        """Every container terminates; the pod reaches `phase` and Argo labels it completed."""
        with self.changed:
            for c in self.pods[pod].containers.values():
                if c.state != "terminated":
                    c.state, c.reason, c.exit_code = "terminated", REASONS["terminated"], exit_code
                    c.current.closed = True
            self.pods[pod].phase = phase
            self.pods[pod].labels["workflows.argoproj.io/completed"] = "true"
            self._pod_changed(pod)

    def finish(self, workflow: str, phase: str = "Succeeded") -> None:
        """Every pod of the workflow finishes, then the workflow reaches `phase`."""
        with self.changed:
            for pod in [p for p in self.pods.values() if p.labels[argo.LABEL_WORKFLOW] == workflow]:
                self.finish_pod(pod.name, "Succeeded" if phase == "Succeeded" else "Failed")
            self.set_phase(workflow, phase)

    def delete_pod(self, pod: str) -> None:
        """The pod goes (podGC): its follow streams end, further reads get 404."""
        with self.changed:
            gone = self.pods.pop(pod)
            gone.deleted = True
            self._record("pods", "DELETED", gone.summary())

    def change_workflow(self, workflow: str, change) -> None:
        """Apply `change(body)` to the Workflow object (a new resourceVersion, as any update)."""
        with self.changed:
            body = copy.deepcopy(self.workflows[workflow])
            change(body)
            self._record("workflows", "MODIFIED", body)

    def delete_workflow(self, workflow: str) -> None:
        with self.changed:
            self._record("workflows", "DELETED", self.workflows.pop(workflow))

    def break_streams(self) -> int:
        """Cut every open log stream (an API server restart): readers get ClusterUnavailable."""
        with self.changed:
            streams = [stream for stream in self.streams if not stream.aborted]
        for stream in streams:
            stream.abort()
        return len(streams)

    @property
    def open_streams(self) -> int:
        with self.changed:
            return len(self.streams)

    def _pod_changed(self, pod: str, kind: str = "MODIFIED") -> None:
        self._record("pods", kind, self.pods[pod].summary())

    def _record(self, kind: str, event: str, obj: dict) -> None:
        self.version += 1
        if kind == "workflows":
            obj["metadata"]["resourceVersion"] = str(self.version)
            obj["metadata"].setdefault("uid", str(uuid.uuid4()))
            if event != "DELETED":
                self.workflows[obj["metadata"]["name"]] = obj
        self.events.append((self.version, kind, event, copy.deepcopy(obj)))
        self.changed.notify_all()

    def _request(self, what: str) -> None:
        self.requests[what] += 1
        if self.failure is not None:
            raise self.failure

    # --- access reviews (the AccessReviews protocol) ---

    def review_token(self, token: str) -> ReviewedToken:
        self._request("create tokenreviews")
        user, groups = self.tokens.get(token, ("", ()))
        return {
            "authenticated": bool(user),
            "username": user,
            "uid": f"uid-{user}" if user else "",
            "groups": [*groups, "system:authenticated"] if user else [],
            "error": "",
        }

    def review_access(self, user: str, groups, namespace: str) -> AccessDecision:
        self._request("create subjectaccessreviews")
        allowed = any((subject, namespace) in self.readers for subject in (user, *groups))
        return {"allowed": allowed, "denied": False, "reason": ""}

    # --- the Cluster protocol ---

    def get_workflow(self, name: str) -> dict | None:
        self._request("get workflows")
        with self.changed:
            return copy.deepcopy(self.workflows.get(name))

    def list_pods(self, workflow: str) -> list[PodSummary]:
        self._request("list pods")
        with self.changed:
            pods = self.pods.values()
            return [p.summary() for p in pods if p.labels[argo.LABEL_WORKFLOW] == workflow]

    def get_configmap(self, name: str) -> ConfigMap | None:
        self._request("get configmaps")
        return copy.deepcopy(self.configmaps.get(name))

    def get_secret(self, name: str) -> dict[str, bytes] | None:
        self._request("get secrets")
        return dict(self.secrets[name]) if name in self.secrets else None

    def get_pod(self, name: str) -> PodSummary | None:
        self._request("get pods")
        with self.changed:
            return self.pods[name].summary() if name in self.pods else None

    def open_log(
        self,
        pod: str,
        container: str,
        *,
        follow: bool,
        since_time: str | None = None,
        timestamps: bool = True,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> "MemoryLogStream":
        self._request("get pods/log")
        with self.changed:
            if pod not in self.pods:
                raise ObjectNotFound(f'pods "{pod}" not found')
            the_pod = self.pods[pod]
            if container not in the_pod.containers:
                raise ClusterRefused(f"container {container} is not valid for pod {pod}")
            c, quoted = the_pod.containers[container], f'"{container}" in pod "{pod}"'
            if previous and c.previous is None:
                raise LogsGone(f"previous terminated container {quoted} not found")
            if not previous and c.state == "waiting" and c.previous is None:
                raise ContainerWaiting(f"container {quoted} is waiting to start: {c.reason}")
            run = c.previous if previous or c.state == "waiting" else c.current
            stream = MemoryLogStream(self, the_pod, run, follow, since_time, timestamps)
            if tail_lines is not None:
                stream.skip = max(0, len(run.lines) - tail_lines)
            self.streams.add(stream)
            return stream

    def check(self) -> None:
        self._request("list pods")

    def list_workflows(self) -> tuple[list[dict], str]:
        self._request("list workflows")
        with self.changed:
            return copy.deepcopy(list(self.workflows.values())), str(self.version)

    def watch_workflows(self, resource_version: str, *, timeout_seconds: int = 300):
        self._request("watch workflows")
        return self._watch("workflows", int(resource_version), timeout_seconds)

    def list_workflow_pods(self) -> tuple[list[PodSummary], str]:
        self._request("list pods")
        with self.changed:
            return [p.summary() for p in self.pods.values()], str(self.version)

    def watch_workflow_pods(self, resource_version: str, *, timeout_seconds: int = 300):
        self._request("watch pods")
        return self._watch("pods", int(resource_version), timeout_seconds)

    def _watch(self, kind: str, after: int, timeout: float):
        """Events of `kind` after resourceVersion `after`, until `timeout` seconds pass or `close()`."""
        deadline = time.monotonic() + timeout
        while True:
            with self.changed:
                events = [e for e in self.events if e[0] > after and e[1] == kind]
                if not events:
                    left = deadline - time.monotonic()
                    if self.closed or left <= 0:
                        return
                    self.changed.wait(left)
                    continue
            after = events[-1][0]
            for version, _, event, obj in events:
                yield event, copy.deepcopy(obj), str(version)

    def close(self) -> None:
        """Watches end (the adapter's client closes)."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()


class MemoryLogStream:
    """One open log: raw byte chunks of the run's lines, as the adapter's `LogStream` yields them."""

    def __init__(self, cluster, pod, run, follow, since_time, timestamps):
        self._cluster, self._pod, self._run = cluster, pod, run
        self._follow, self._timestamps = follow, timestamps
        self._since = since_time[:19] if since_time else ""
        self.aborted = self._closed = False
        self.pause = lambda: 0.0
        self.skip = 0  # lines not sent (tailLines)

    def __iter__(self):
        sent = self.skip
        while True:
            with self._cluster.changed:
                while not self._has_news(sent):
                    if self.aborted:
                        raise ClusterUnavailable("log stream broken: aborted")
                    if self._closed or not self._follow or self._run.closed or self._pod.deleted:
                        return
                    self._cluster.changed.wait()
                lines, sent = self._run.lines[sent:], len(self._run.lines)
            data = b"".join(
                self._shown(line) for line in lines if line[:19].decode() >= self._since
            )
            size = self._cluster.chunk_bytes or len(data) or 1
            for start in range(0, len(data), size):
                yield data[start : start + size]

    def _has_news(self, sent: int) -> bool:
        return not self.aborted and not self._closed and len(self._run.lines) > sent

    def _shown(self, line: bytes) -> bytes:
        return line if self._timestamps else line.split(b" ", 1)[1]

    def abort(self) -> None:
        with self._cluster.changed:
            self.aborted = True
            self._cluster.changed.notify_all()

    def close(self) -> None:
        with self._cluster.changed:
            self._closed = True
            self._cluster.streams.discard(self)
            self._cluster.changed.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
