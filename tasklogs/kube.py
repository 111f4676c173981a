"""The Kubernetes adapter: the only module that imports `kubernetes`.

It speaks to the API server with the official client and hands back plain dicts and byte streams;
every `ApiException` and network error leaves as one of the project's own exceptions.
"""

import base64
import binascii
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from . import argo, metrics
from .cluster import (
    ALL_NAMESPACES,
    AccessDecision,
    ConfigMap,
    ContainerStatus,
    PodSummary,
    ReviewedToken,
)
from .config import ClusterSettings
from .errors import (
    ClusterMisconfigured,
    ClusterRefused,
    ClusterUnavailable,
    ContainerWaiting,
    LogsGone,
    ObjectNotFound,
    WatchExpired,
)

log = logging.getLogger(__name__)

ARGO_GROUP, ARGO_VERSION, WORKFLOWS = "argoproj.io", "v1alpha1", "workflows"

REMOVED_CONTAINER = b"unable to retrieve container logs for "
READ_SIZE = 65536
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)


def _configuration_tried(config_file: str | None) -> str:
    """Where the configuration was looked for, for a message that says what to fix."""
    if config_file is not None:
        return f"tried {config_file}"
    paths = os.environ.get("KUBECONFIG", "")
    tried = [p for p in paths.split(os.pathsep) if p] or [os.path.expanduser("~/.kube/config")]
    source = "KUBECONFIG" if paths else "the default path"
    return (
        "not in a pod (KUBERNETES_SERVICE_HOST unset), so tried "
        + ", ".join(tried)
        + f" ({source})"
    )


def describe_configuration(api_client: client.ApiClient) -> str:
    """The API server this client talks to, for the start-up line (no credentials)."""
    return api_client.configuration.host


def network_cause(error: BaseException) -> tuple[str, bool]:
    """What went wrong under a network error, in words, and whether it is a configuration that only
    a person can fix (a name that does not resolve, TLS refused) rather than a server that is down."""
    chain = _chain(error)
    for kind, cause, permanent in _CAUSES:
        found = next((e for e in chain if isinstance(e, kind)), None)
        if found is not None:
            return cause(found), permanent
    return type(error).__name__, False


def _chain(error: BaseException) -> list[BaseException]:
    """The error and everything under it (urllib3's `reason`, causes, contexts, wrapped arguments)."""
    found: list[BaseException] = []
    pending: list[object] = [error]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or any(current is e for e in found):
            continue
        found.append(current)
        pending += [getattr(current, "reason", None), current.__cause__, current.__context__]
        pending += list(getattr(current, "args", ()))
    return found


# (error class, its description, whether only a configuration change helps), most specific first:
# urllib3's NewConnectionError is a ConnectTimeoutError, so a refusal must be looked for before a timeout.
_CAUSES: list[tuple[Any, Callable[[Any], str], bool]] = [
    (socket.gaierror, lambda e: "DNS lookup failed (the server name does not resolve)", True),
    (
        ssl.SSLCertVerificationError,
        lambda e: f"TLS certificate not trusted ({e.verify_message})",
        True,
    ),
    (
        (ssl.SSLError, urllib3.exceptions.SSLError),
        lambda e: f"TLS handshake failed ({_first_line(e)})",
        True,
    ),
    (ConnectionRefusedError, lambda e: "connection refused (nothing listens there)", False),
    (ConnectionResetError, lambda e: "connection reset", False),
    (
        (TimeoutError, urllib3.exceptions.TimeoutError),
        lambda e: "timed out",
        False,
    ),
]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def load_api_client(config_file: str | None = None, pool_size: int = 1024) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else `KUBECONFIG` / ~/.kube/config."""
    configuration = client.Configuration()
    try:
        if config_file is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=config_file, client_configuration=configuration, persist_config=False
            )
    except (config.ConfigException, OSError) as error:
        raise ClusterMisconfigured(
            f"no usable Kubernetes configuration: {_configuration_tried(config_file)}: {error}"
        ) from None
    configuration.connection_pool_maxsize = pool_size
    # Quick retries of a connection that failed to open, and one of a read that failed (a kept-alive
    # connection the server had closed); no more, since a read that timed out would multiply the read
    # timeout: callers back off by themselves.
    configuration.retries = urllib3.util.Retry(
        total=3, connect=2, read=1, status=0, redirect=0, other=0
    )
    return client.ApiClient(configuration)


class LogStream:
    """An open pods/log response: iterate it for raw byte chunks; always close it.

    `pause` (seconds, read before every wait for data) lets lines gather between reads: a capture nobody
    watches live takes a burst of lines with one wakeup instead of one per line."""

    def __init__(self, response, describe: str):
        self._response = response
        self._describe = describe
        self._first = True
        self.pause = lambda: 0.0

    def __iter__(self):
        buffered = getattr(getattr(self._response, "_fp", None), "fp", None)
        if self._response.chunked and buffered is not None:
            chunks = _dechunked(buffered, lambda: self.pause())
        else:
            chunks = self._response.stream(65536)
        try:
            for chunk in chunks:
                if self._first:
                    self._first = False
                    if chunk.startswith(REMOVED_CONTAINER):
                        raise LogsGone(
                            f"{self._describe}: {chunk.decode('utf-8', 'replace').strip()}"
                        )
                if chunk:
                    yield chunk
        except (*_NETWORK_ERRORS, BrokenChunk) as error:
            raise ClusterUnavailable(
                f"{self._describe}: stream broken: {type(error).__name__}"
            ) from None

    def abort(self) -> None:
        """Cut the connection from another thread: a read blocked on it fails at once."""
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(2)
            except OSError:
                pass

    def close(self) -> None:
        """Release the connection (the server sees the follow stream end)."""
        try:
            self._response.close()
            self._response.release_conn()
        except Exception:  # noqa: BLE001 - closing a broken stream must not raise
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BrokenChunk(ValueError):
    """The chunked body ended or went wrong before its last chunk."""


def _dechunked(reader, pause):
    """Decode a chunked HTTP body straight from the connection's buffered reader.

    Each `read1` returns every chunk that has arrived, so a burst of lines costs one read and one wakeup
    (urllib3's `read_chunked` makes several calls per chunk). After a short read it waits `pause()`
    seconds, so that the next lines gather."""
    chunks, drained = _ChunkDecoder(), False
    while not chunks.done:
        delay = pause() if drained else 0.0
        if delay:
            time.sleep(delay)
        data = reader.read1(READ_SIZE)
        if not data:
            raise BrokenChunk("connection closed before the last chunk")
        drained = len(data) < READ_SIZE  # a full read means more is waiting: no pause then
        body = chunks.feed(data)
        if body:
            yield body


class _ChunkDecoder:
    """Chunked transfer coding (RFC 9112 section 7.1), fed whatever bytes arrive."""

    def __init__(self):
        self._buffer = b""
        self._left = 0  # data bytes left in the current chunk
        self._expect = "size"  # "size" line, chunk "data", or the "crlf" after it
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buffer, position, body = self._buffer + data, 0, []
        while not self.done:
            if self._expect == "size":
                end = buffer.find(b"\r\n", position)
                if end < 0:
                    break
                try:
                    self._left = int(buffer[position:end].split(b";", 1)[0], 16)
                except ValueError:
                    raise BrokenChunk(f"bad chunk size {buffer[position:end][:20]!r}") from None
                position, self._expect = end + 2, "data"
                self.done = self._left == 0
            elif self._expect == "data":
                taken = buffer[position : position + self._left]
                if not taken:
                    break
                body.append(taken)
                position, self._left = position + len(taken), self._left - len(taken)
                if not self._left:
                    self._expect = "crlf"
            else:
                if len(buffer) - position < 2:
                    break
                position, self._expect = position + 2, "size"
        self._buffer = buffer[position:]
        return b"".join(body)


class Kube:
    """Reads Argo Workflows, pods and pod logs of one namespace (`in_namespace` gives the adapter of
    another, on the same connection pool); `ALL_NAMESPACES` (`*`) lists and watches them all."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        *,
        connect_timeout: float = 3,
        read_timeout: float = 15,
        stream_idle_timeout: float = 60,
    ):
        self.api_client = api_client
        self.namespace = namespace
        self._timeout = (connect_timeout, read_timeout)
        self._stream_timeout = (connect_timeout, stream_idle_timeout)
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._authentication = client.AuthenticationV1Api(api_client)
        self._authorization = client.AuthorizationV1Api(api_client)
        self._siblings: dict[str, Kube] = {namespace: self}
        self._siblings_lock = threading.Lock()

    def in_namespace(self, namespace: str) -> "Kube":
        """The adapter for `namespace`, sharing this one's API client (built once per namespace)."""
        with self._siblings_lock:
            sibling = self._siblings.get(namespace)
            if sibling is None:
                sibling = Kube.__new__(Kube)
                sibling.__dict__.update(self.__dict__)
                sibling.namespace = namespace
                self._siblings[namespace] = sibling
            return sibling

    @property
    def _all(self) -> bool:
        return self.namespace == ALL_NAMESPACES

    @classmethod
    def from_settings(cls, settings: ClusterSettings) -> "Kube":
        """Build the adapter from the cluster settings and the Kubernetes configuration found."""
        return cls(
            load_api_client(),
            settings.namespace,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            stream_idle_timeout=settings.stream_idle_timeout,
        )

    def close(self) -> None:
        self.api_client.close()

    def get_workflow(self, name: str) -> dict | None:
        """The Workflow object as a dict, or None when it does not exist."""
        with self._translated("get", "workflows.argoproj.io", name) as call:
            try:
                return cast(
                    dict,
                    self._custom.get_namespaced_custom_object(
                        ARGO_GROUP,
                        ARGO_VERSION,
                        self.namespace,
                        WORKFLOWS,
                        name,
                        _request_timeout=self._timeout,
                    ),
                )
            except ApiException as error:
                if error.status == 404:
                    call.code = 404
                    return None
                raise

    def list_workflows(self) -> tuple[list[dict], str]:
        """Every Workflow of the namespace and the list's resourceVersion."""
        with self._translated("list", "workflows.argoproj.io"):
            listing = cast(
                dict,
                self._custom.list_cluster_custom_object(
                    ARGO_GROUP, ARGO_VERSION, WORKFLOWS, _request_timeout=self._timeout
                )
                if self._all
                else self._custom.list_namespaced_custom_object(
                    ARGO_GROUP,
                    ARGO_VERSION,
                    self.namespace,
                    WORKFLOWS,
                    _request_timeout=self._timeout,
                ),
            )
        return listing.get("items", []), listing.get("metadata", {}).get("resourceVersion", "")

    def watch_workflows(self, resource_version: str, *, timeout_seconds: int = 300):
        """Yield (event type, workflow, resourceVersion) after `resource_version` until the server ends the
        watch; BOOKMARK events only move the resourceVersion on.

        Raises WatchExpired when the server no longer has that resourceVersion (410 Gone)."""
        path = f"/apis/{ARGO_GROUP}/{ARGO_VERSION}{self._scope}/{WORKFLOWS}"
        for kind, workflow in self._watch(
            path, "workflows.argoproj.io", resource_version, [], timeout_seconds
        ):
            yield kind, workflow, _version_of(workflow)

    def list_workflow_pods(self) -> tuple[list[PodSummary], str]:
        """Every workflow pod of the namespace (`pod_summary` dicts) and the list's resourceVersion."""
        with self._translated("list", "pods"):
            listing = _json(
                self._core.list_pod_for_all_namespaces(
                    label_selector=argo.LABEL_WORKFLOW,
                    _request_timeout=self._timeout,
                    _preload_content=False,
                )
                if self._all
                else self._core.list_namespaced_pod(
                    self.namespace,
                    label_selector=argo.LABEL_WORKFLOW,
                    _request_timeout=self._timeout,
                    _preload_content=False,
                )
            )
        return (
            [pod_summary(pod) for pod in listing.get("items", [])],
            listing.get("metadata", {}).get("resourceVersion", ""),
        )

    def watch_workflow_pods(self, resource_version: str, *, timeout_seconds: int = 300):
        """Yield (event type, pod summary, resourceVersion) for workflow pods after `resource_version`."""
        events = self._watch(
            f"/api/v1{self._scope}/pods",
            "pods",
            resource_version,
            [("labelSelector", argo.LABEL_WORKFLOW)],
            timeout_seconds,
        )
        for kind, pod in events:
            yield kind, pod_summary(pod), _version_of(pod)

    @property
    def _scope(self) -> str:
        """The path segment of namespaced lists and watches (none for all namespaces)."""
        return "" if self._all else "/namespaces/{namespace}"

    def _watch(
        self, path: str, resource: str, resource_version: str, selectors: list, timeout_seconds: int
    ):
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
            *selectors,
        ]
        response = self._open(
            path,
            {"namespace": self.namespace},
            query,
            "application/json",
            (self._timeout[0], timeout_seconds + self._timeout[1]),
            "watch",
            resource,
        )
        with LogStream(response, f"watch of {resource} in {self.namespace}") as stream:
            yield from _watch_events(stream)

    def list_pods(self, workflow: str) -> list[PodSummary]:
        """The pods labelled as belonging to `workflow`, as plain dicts (see `pod_summary`)."""
        with self._translated("list", "pods"):
            listing = _json(
                self._core.list_namespaced_pod(
                    self.namespace,
                    label_selector=f"{argo.LABEL_WORKFLOW}={workflow}",
                    _request_timeout=self._timeout,
                    _preload_content=False,
                )
            )
        return [pod_summary(pod) for pod in listing.get("items", [])]

    def get_pod(self, name: str) -> PodSummary | None:
        """One pod as a plain dict, or None when it does not exist."""
        with self._translated("get", "pods", name) as call:
            try:
                pod = _json(
                    self._core.read_namespaced_pod(
                        name, self.namespace, _request_timeout=self._timeout, _preload_content=False
                    )
                )
            except ApiException as error:
                if error.status == 404:
                    call.code = 404
                    return None
                raise
        return pod_summary(pod)

    def get_configmap(self, name: str) -> ConfigMap | None:
        """A ConfigMap's data and annotations, or None when it does not exist."""
        found = self._get_core("configmaps", name, self._core.read_namespaced_config_map)
        if found is None:
            return None
        return {
            "data": found.get("data") or {},
            "annotations": (found.get("metadata") or {}).get("annotations") or {},
        }

    def get_secret(self, name: str) -> dict[str, bytes] | None:
        """A Secret's data, base64-decoded, or None when it does not exist."""
        found = self._get_core("secrets", name, self._core.read_namespaced_secret)
        if found is None:
            return None
        try:
            return {
                key: base64.b64decode(value, validate=True)
                for key, value in (found.get("data") or {}).items()
            }
        except (binascii.Error, ValueError, TypeError):
            raise ClusterRefused(f"secret {name!r} holds data that is not base64") from None

    def _get_core(self, resource: str, name: str, read: Callable[..., Any]) -> dict | None:
        with self._translated("get", resource, name):
            try:
                return _json(
                    read(
                        name, self.namespace, _request_timeout=self._timeout, _preload_content=False
                    )
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise

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
    ) -> LogStream:
        """Open the pod's log; the caller iterates the raw bytes and closes the stream."""
        query = [
            ("container", container),
            ("follow", _flag(follow)),
            ("timestamps", _flag(timestamps)),
        ]
        if previous:
            query.append(("previous", "true"))
        if since_time:  # the client has no since_time argument (client-python #1351)
            query.append(("sinceTime", since_time))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        timeout = self._stream_timeout if follow else self._timeout
        response = self._open(
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            {"namespace": self.namespace, "name": pod},
            query,
            "text/plain",
            timeout,
            "get",
            "pods/log",
            pod,
        )
        return LogStream(response, f"log of {pod}/{container}")

    def review_token(self, token: str) -> ReviewedToken:
        """Who the bearer token belongs to, by a TokenReview (authentication.k8s.io/v1)."""
        body: Any = {  # a dict is what the client sends as it is
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        with self._translated("create", "tokenreviews.authentication.k8s.io"):
            answer = _json(
                self._authentication.create_token_review(
                    body, _request_timeout=self._timeout, _preload_content=False
                )
            )
        status = answer.get("status") or {}
        user = status.get("user") or {}
        return {
            "authenticated": bool(status.get("authenticated")),
            "username": user.get("username", ""),
            "uid": user.get("uid", ""),
            "groups": list(user.get("groups") or []),
            "error": status.get("error", ""),
        }

    def review_access(self, user: str, groups, namespace: str) -> AccessDecision:
        """Whether `user` with `groups` may get pods/log in `namespace`, by a SubjectAccessReview."""
        body: Any = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": "get",
                    "group": "",
                    "resource": "pods",
                    "subresource": "log",
                },
                "user": user,
                "groups": list(groups),
            },
        }
        with self._translated("create", "subjectaccessreviews.authorization.k8s.io"):
            answer = _json(
                self._authorization.create_subject_access_review(
                    body, _request_timeout=self._timeout, _preload_content=False
                )
            )
        status = answer.get("status") or {}
        return {
            "allowed": bool(status.get("allowed")),
            "denied": bool(status.get("denied")),
            "reason": status.get("reason", ""),
        }

    def check(self) -> None:
        """Raise unless the API server answers a cheap request this service is allowed to make."""
        with self._translated("list", "pods"):
            response: Any = self._core.list_namespaced_pod(
                self.namespace, limit=1, _request_timeout=self._timeout, _preload_content=False
            )
            response.release_conn()

    def _open(self, path, path_params, query, accept, timeout, verb, resource, name=None):
        with self._translated(verb, resource, name):
            request = self.api_client.param_serialize(
                method="GET",
                resource_path=path,
                path_params=path_params,
                query_params=query,
                header_params={"Accept": accept},
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(*request, _request_timeout=timeout).response
            if not 200 <= response.status < 300:
                error = ApiException(http_resp=response)
                response.release_conn()
                raise error
            return response

    @contextmanager
    def _translated(self, verb: str, resource: str, name: str | None = None):
        """Count the request made inside (by its answer's status, `error` when none came) and turn
        its failure into the project's exception."""
        call = _Call()
        try:
            yield call
        except ApiException as error:
            metrics.kube_request(verb, resource, error.status or "error")
            raise _translate(error, verb, resource, name, self.namespace) from None
        except _NETWORK_ERRORS as error:
            metrics.kube_request(verb, resource, "error")
            cause, permanent = network_cause(error)
            raise (ClusterMisconfigured if permanent else ClusterUnavailable)(
                f"Kubernetes API at {self.api_client.configuration.host} unreachable"
                f" ({verb} {resource}): {cause}"
            ) from None
        metrics.kube_request(verb, resource, call.code)


class _Call:
    """The status a request inside `Kube._translated` ended with, when it was not an error raised."""

    code = 200


def _json(response: Any) -> dict:
    """The JSON body of a response read with `_preload_content=False` (the client then returns the raw
    urllib3 response, whatever its annotations say)."""
    return json.loads(response.data)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _status_message(error: ApiException) -> str:
    try:
        return json.loads(error.body or "{}").get("message", "") or error.reason or ""
    except (TypeError, ValueError, AttributeError):
        return str(error.reason or "")


def _translate(
    error: ApiException, verb: str, resource: str, name: str | None, namespace: str
) -> Exception:
    """Map an API error to the project's exception, keeping the API server's own words."""
    message = _status_message(error)
    target = f"{resource} {name!r}" if name else resource
    if error.status == 404:
        return ObjectNotFound(message or f"{target} not found")
    if error.status in (401, 403):
        return ClusterRefused(
            f"Kubernetes refused to {verb} {target} in namespace {namespace!r}: "
            f"the service account needs '{verb}' on '{resource}' ({message})"
        )
    if error.status == 410:
        return WatchExpired(message or "resource version too old")
    if error.status == 400 and "is waiting to start" in message:
        return ContainerWaiting(message)
    if error.status == 400 and "previous terminated container" in message:
        return LogsGone(message)
    if error.status == 429 or error.status >= 500:
        return ClusterUnavailable(
            f"Kubernetes API answered {error.status} to {verb} {target}: {message}"
        )
    return ClusterRefused(f"Kubernetes API answered {error.status} to {verb} {target}: {message}")


def _watch_events(stream: LogStream):
    buffer = b""
    for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                if obj.get("code") == 410:
                    raise WatchExpired(obj.get("message", "resource version too old"))
                raise ClusterUnavailable(f"watch error: {obj.get('message', obj)}")
            yield event.get("type"), obj


def _version_of(obj: dict) -> str:
    return obj.get("metadata", {}).get("resourceVersion", "")


def pod_summary(pod: dict) -> PodSummary:
    """The parts of a Pod this service uses, as a plain dict."""
    metadata, status = pod.get("metadata", {}), pod.get("status", {})
    containers: dict[str, ContainerStatus] = {}
    for entry in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        state_name, state = next(iter((entry.get("state") or {"waiting": {}}).items()))
        containers[entry["name"]] = {
            "state": state_name,
            "reason": (state or {}).get("reason", ""),
            "restarts": entry.get("restartCount", 0),
            "exit_code": (state or {}).get("exitCode"),
        }
    spec = pod.get("spec", {})
    return {
        "name": metadata.get("name", ""),
        "namespace": metadata.get("namespace", ""),
        "container_names": [
            c["name"] for c in spec.get("initContainers", []) + spec.get("containers", [])
        ],
        "labels": metadata.get("labels") or {},
        "annotations": metadata.get("annotations") or {},
        "created": metadata.get("creationTimestamp", ""),
        "deleting": bool(metadata.get("deletionTimestamp")),
        "phase": status.get("phase", "Pending"),
        "containers": containers,
    }
