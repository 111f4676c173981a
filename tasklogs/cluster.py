"""What the engine, the service and the collector need from the cluster: the `Cluster` protocol.

`kube.Kube` implements it over the real API server; the tests' in-memory cluster implements it for unit
tests. Everything here is plain data: pods are `PodSummary` dicts, logs raw byte chunks (each line
prefixed with the kubelet's RFC 3339 timestamp, as `timestamps=true` returns it).
"""

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypedDict, runtime_checkable

ALL_NAMESPACES = (
    "*"  # `in_namespace(ALL_NAMESPACES)`: the view that lists and watches every namespace
)


class ContainerStatus(TypedDict):
    state: str  # "waiting", "running" or "terminated"
    reason: str
    restarts: int
    exit_code: int | None


class PodSummary(TypedDict):
    name: str
    namespace: str
    container_names: list[str]
    labels: dict[str, str]
    annotations: dict[str, str]
    created: str
    deleting: bool
    phase: str
    containers: dict[str, ContainerStatus]


class ConfigMap(TypedDict):
    data: dict[str, str]
    annotations: dict[str, str]


class LogStream(Protocol):
    """An open log: iterate it for raw byte chunks; `abort()` cuts it from another thread."""

    pause: Callable[[], float]  # seconds to let lines gather before each wait for data

    def __iter__(self) -> Iterator[bytes]: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> "LogStream": ...

    def __exit__(self, *exc: object) -> None: ...


WatchEvent = tuple[str, dict, str]  # (ADDED/MODIFIED/DELETED/BOOKMARK, object, resourceVersion)


class Cluster(Protocol):
    """Workflows, pods and pod logs of one namespace; failures leave as the project's ClusterErrors."""

    namespace: str  # "*" for the view that lists and watches every namespace

    def in_namespace(self, namespace: str) -> "Cluster":
        """The same cluster, seen from another namespace."""
        ...

    def get_workflow(self, name: str) -> dict | None: ...

    def list_pods(self, workflow: str) -> list[PodSummary]: ...

    def get_pod(self, name: str) -> PodSummary | None: ...

    def get_configmap(self, name: str) -> "ConfigMap | None":
        """A ConfigMap of the namespace (Argo's artifact repositories), or None when it does not exist."""
        ...

    def get_secret(self, name: str) -> dict[str, bytes] | None:
        """A Secret's data, decoded (an artifact repository's credentials), or None when it does not
        exist."""
        ...

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
    ) -> LogStream: ...

    def check(self) -> None: ...

    def list_workflows(self) -> tuple[list[dict], str]: ...

    def watch_workflows(
        self, resource_version: str, *, timeout_seconds: int = 300
    ) -> Iterator[WatchEvent]: ...

    def list_workflow_pods(self) -> tuple[list[PodSummary], str]: ...

    def watch_workflow_pods(
        self, resource_version: str, *, timeout_seconds: int = 300
    ) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...


class ReviewedToken(TypedDict):
    """A TokenReview's answer: whether the token is a known user's, and who."""

    authenticated: bool
    username: str
    uid: str
    groups: list[str]
    error: str  # why the token could not be checked ("" when it simply is not known)


class AccessDecision(TypedDict):
    """A SubjectAccessReview's answer."""

    allowed: bool
    denied: bool  # an authorizer said no explicitly (RBAC never does: it only does not allow)
    reason: str


@runtime_checkable
class AccessReviews(Protocol):
    """Kubernetes' own answers about a caller: who a bearer token is (TokenReview), and whether a user
    with groups may read pod logs in a namespace (SubjectAccessReview: get pods/log).
    Failures leave as ClusterErrors, never as a grant."""

    def review_token(self, token: str) -> ReviewedToken: ...

    def review_access(self, user: str, groups: Sequence[str], namespace: str) -> AccessDecision: ...
