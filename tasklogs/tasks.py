"""What the cluster says about a task: its workflow's phase and the pods that hold its logs."""

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from . import argo
from .cluster import Cluster, ContainerStatus, PodSummary
from .errors import TaskNotFound, WorkflowUnreadable
from .identity import LogId, TaskRef

log = logging.getLogger(__name__)

FINAL_POD_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Stream:
    """One log of the task as the cluster describes it, with its node's phase."""

    log: LogId
    phase: str

    @property
    def key(self) -> str:
        return self.log.key


@dataclass
class ClusterTask:
    task: TaskRef
    phase: str
    final: bool
    streams: list[Stream]
    pods: dict[str, PodSummary] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    workflow: dict | None = None  # the Workflow as read (None: deleted), for its archived logs

    @property
    def times(self) -> tuple[datetime | None, datetime | None]:
        return self.started_at, self.finished_at

    def container_status(self, stream: Stream) -> ContainerStatus | None:
        """The container's status from the pod, or None when the pod or the status is missing."""
        pod = self.pods.get(stream.log.pod)
        return pod["containers"].get(stream.log.container) if pod else None

    def stream_settled(self, stream: Stream) -> bool:
        """True when the container's log cannot grow any more."""
        pod = self.pods.get(stream.log.pod)
        if pod is None:
            return self.final or argo.is_final_phase(stream.phase)
        status = pod["containers"].get(stream.log.container)
        return pod["phase"] in FINAL_POD_PHASES or (
            status is not None and status["state"] == "terminated"
        )

    @property
    def settled(self) -> bool:
        """The workflow has ended and none of its logs can grow: time for the final save."""
        return self.final and all(self.stream_settled(stream) for stream in self.streams)


def read_task(
    kube: Cluster,
    task: TaskRef,
    containers: tuple[str, ...],
    max_nodes_bytes: int = argo.DEFAULT_MAX_NODES_BYTES,
    *,
    orphan_pods: bool = True,
) -> ClusterTask:
    """Read the Workflow and its pods; TaskNotFound when the cluster knows neither. Without
    `orphan_pods` a missing Workflow is TaskNotFound at once (one request), its pods unasked."""
    cluster = kube.in_namespace(task.namespace)
    workflow = cluster.get_workflow(task.name)
    if workflow is None and not orphan_pods:
        raise _not_found(task)
    return build_task(task, workflow, cluster.list_pods(task.name), containers, max_nodes_bytes)


def build_task(
    task: TaskRef,
    workflow: dict | None,
    pods: list[PodSummary],
    containers: tuple[str, ...],
    max_nodes_bytes: int = argo.DEFAULT_MAX_NODES_BYTES,
) -> ClusterTask:
    """The task as the cluster describes it: `containers[0]` of every pod, the others where present.
    WorkflowUnreadable when the Workflow's status has a shape Argo never writes."""
    task_id = task.name
    if workflow is None and not pods:
        raise _not_found(task)
    by_name = {pod["name"]: pod for pod in pods}
    try:
        phase = argo.workflow_phase(workflow) if workflow else _phase_from_pods(by_name)
        targets = _targets(task_id, workflow, pods, max_nodes_bytes)
    except argo.MalformedStatus as error:
        raise WorkflowUnreadable(
            f"workflow {task_id!r} in namespace {task.namespace!r} is unreadable: {error}; its"
            " logs can be served once the workflow is fixed or deleted"
        ) from None
    streams = [
        Stream(LogId(target.node_id, target.pod_name, container), target.phase)
        for target in targets
        for container in _containers_of(by_name.get(target.pod_name), containers)
    ]
    started, finished = argo.workflow_times(workflow) if workflow else (None, None)
    return ClusterTask(
        task, phase, argo.is_final_phase(phase), streams, by_name, started, finished, workflow
    )


def _not_found(task: TaskRef) -> TaskNotFound:
    return TaskNotFound(
        f"task {task.name!r} is not known to the database or to the cluster"
        f" (namespace {task.namespace!r})"
    )


def _targets(
    task_id: str, workflow: dict | None, pods: list[PodSummary], max_nodes_bytes: int
) -> list[argo.PodTarget]:
    try:
        return argo.resolve_pod_targets(workflow, pods, max_nodes_bytes)
    except argo.MalformedStatus:
        raise
    except argo.NodesUnavailable as error:
        log.warning("workflow %s: %s; using the pods that still exist", task_id, error)
        return argo.resolve_pod_targets(None, pods)


def _containers_of(pod: PodSummary | None, containers: tuple[str, ...]) -> list[str]:
    if pod is None:
        return [containers[0]]
    present = pod.get("container_names") or list(pod["containers"])
    return [containers[0]] + [name for name in present if name in containers[1:]]


def _phase_from_pods(pods: dict[str, PodSummary]) -> str:
    """The phase of a workflow whose object was deleted, judged from the pods it left."""
    phases = {pod["phase"] for pod in pods.values()}
    if phases <= {"Succeeded"}:
        return "Succeeded"
    if phases <= set(FINAL_POD_PHASES):
        return "Failed"
    return "Running"


class UnknownTasks:
    """Task ids the cluster said it does not know, remembered for `ttl` seconds (a negative cache):
    the same unknown id again meanwhile costs no request. At most `size` ids are kept."""

    def __init__(self, ttl: float, size: int = 10_000):
        self.ttl, self.size = ttl, size
        self._until: dict[TaskRef, float] = {}
        self._lock = threading.Lock()

    def add(self, task: TaskRef) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._until) >= self.size:
                self._until = {key: t for key, t in self._until.items() if t > now}
                while len(self._until) >= self.size:  # all fresh: the oldest go
                    del self._until[next(iter(self._until))]
            self._until[task] = now + self.ttl

    def __contains__(self, task: TaskRef) -> bool:
        with self._lock:
            until = self._until.get(task)
            if until is not None and until <= time.monotonic():
                del self._until[task]
                until = None
            return until is not None
