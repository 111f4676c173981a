"""Request handling: routing, fault injection, authentication, RBAC, then the endpoint."""

import re
import threading
import time
from urllib.parse import parse_qsl, unquote, urlsplit

from .cluster import WORKFLOW_GROUP
from .journal import Request
from .objects import serve_get, serve_list, serve_watch
from .params import is_true
from .podlog import serve_log
from .rbac import allows
from .reviews import serve_access_review, serve_token_review
from .selectors import name_in_field_selector
from .server import Body
from .status import (
    ApiError,
    forbidden,
    injected,
    method_not_allowed,
    no_such_route,
    not_found,
    unauthorized,
)

_NS = r"/namespaces/([^/]+)/"
# Lists and watches across every namespace (namespace None): /api/v1/pods, /apis/.../workflows.
CLUSTER_ROUTES = (
    (re.compile(r"^/api/v1/pods$"), "", "pods"),
    (re.compile(r"^/apis/argoproj\.io/v1alpha1/workflows$"), WORKFLOW_GROUP, "workflows"),
)
# Cluster-scoped reviews: created with POST, never stored (resource, group, how they are served).
REVIEWS = {
    "/apis/authentication.k8s.io/v1/tokenreviews": (
        "tokenreviews",
        "authentication.k8s.io",
        serve_token_review,
    ),
    "/apis/authorization.k8s.io/v1/subjectaccessreviews": (
        "subjectaccessreviews",
        "authorization.k8s.io",
        serve_access_review,
    ),
}
ROUTES = (
    (re.compile(r"^/api/v1" + _NS + r"pods$"), "", "pods", False),
    (re.compile(r"^/api/v1" + _NS + r"pods/([^/]+)$"), "", "pods", True),
    (re.compile(r"^/api/v1" + _NS + r"pods/([^/]+)/log$"), "", "pods/log", True),
    (re.compile(r"^/api/v1" + _NS + r"configmaps/([^/]+)$"), "", "configmaps", True),
    (re.compile(r"^/api/v1" + _NS + r"secrets/([^/]+)$"), "", "secrets", True),
    (
        re.compile(r"^/apis/argoproj\.io/v1alpha1" + _NS + r"workflows$"),
        WORKFLOW_GROUP,
        "workflows",
        False,
    ),
    (
        re.compile(r"^/apis/argoproj\.io/v1alpha1" + _NS + r"workflows/([^/]+)$"),
        WORKFLOW_GROUP,
        "workflows",
        True,
    ),
)


def parse_request(handler, body=b"") -> Request:
    """The request as the apiserver's RequestInfo sees it."""
    url = urlsplit(handler.path)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    request = Request(
        body=body,
        method=handler.command,
        path=url.path,
        query=query,
        verb=None,
        resource=None,
        name=None,
        group="",
        raw_path=handler.path,
        follow=is_true(query.get("follow")),
    )
    if url.path in REVIEWS:
        request.resource, request.group, _ = REVIEWS[url.path]
        request.verb = "create" if handler.command == "POST" else handler.command.lower()
        return request
    for pattern, group, resource, named in ROUTES:
        m = pattern.match(url.path)
        if m:
            request.group, request.resource, request.namespace = (
                group,
                resource,
                unquote(m.group(1)),
            )
            by_field = name_in_field_selector(
                query.get("fieldSelector")
            )  # RequestInfo does this too
            request.name = unquote(m.group(2)) if named else by_field
            request.verb = "get" if named else "watch" if is_true(query.get("watch")) else "list"
            return request
    for pattern, group, resource in CLUSTER_ROUTES:
        if pattern.match(url.path):
            request.group, request.resource, request.namespace = group, resource, None
            request.name = name_in_field_selector(query.get("fieldSelector"))
            request.verb = "watch" if is_true(query.get("watch")) else "list"
    return request


class Streams:
    """Open follow log streams and watches, so tests can count them and cut them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._open = set()

    def open(self, kind, resource, pod, cond, handler):
        stream = Stream(kind, resource, pod, cond, handler)
        with self._lock:
            self._open.add(stream)
        return stream

    def close(self, stream):
        with self._lock:
            self._open.discard(stream)
        stream.done.set()

    def select(self, kind=None, resource=None, pod=None):
        """Open streams, not counting those being aborted."""
        with self._lock:
            return [
                s
                for s in self._open
                if not s.aborted
                and (kind is None or s.kind == kind)
                and (resource is None or s.resource == resource)
                and (pod is None or s.pod == pod)
            ]


def wait_closed(streams, timeout=2.0):
    """Wait until the streams' threads have let go of them; force the sockets of any that do not."""
    deadline = time.monotonic() + timeout
    for stream in streams:
        if not stream.done.wait(max(0.0, deadline - time.monotonic())):
            stream.handler.abort_socket()


class Stream:
    def __init__(self, kind, resource, pod, cond, handler):
        self.kind, self.resource, self.pod, self.cond, self.handler = (
            kind,
            resource,
            pod,
            cond,
            handler,
        )
        self.aborted = False
        self.done = threading.Event()

    def abort(self):
        """Reset the connection now (the stream's own thread sends the RST)."""
        self.aborted = True
        with self.cond:
            self.cond.notify_all()


class App:
    """Serves one request on a handler thread; `kube` is the FakeKube that holds the state."""

    def __init__(self, kube):
        self.kube = kube
        self.cluster = kube.cluster
        self.streams = Streams()
        self.stopping = threading.Event()

    @property
    def bookmark_interval(self):
        return self.kube.bookmark_interval

    def serve(self, handler):
        request = parse_request(handler, _read_body(handler))
        delay, fault = self.kube.faults.take(request)
        if delay and self.stopping.wait(delay):
            handler.reset()
        cut_after = fault.after_bytes if fault and fault.kind == "cut" else None
        body = Body(handler, request, self.kube.journal, cut_after)
        if fault and fault.kind == "reset":
            self.kube.journal.record(request)
            handler.reset()
        try:
            if fault and fault.kind == "fail":
                raise self._injected(request, fault)
            self._dispatch(request, body, handler)
        except ApiError as err:
            if body.streaming:
                handler.reset()
            body.error(err)

    def _dispatch(self, request, body, handler):
        identity = self._authenticated(handler)
        if identity is None:
            raise unauthorized()
        request.user = identity.user
        if request.resource is None:
            raise no_such_route()
        review = REVIEWS.get(request.path)
        if request.method != ("POST" if review else "GET"):
            raise method_not_allowed()
        self._authorize(request, identity)
        if review:
            return review[2](self, request, body)
        if request.resource == "pods/log":
            return serve_log(self, request, body, handler)
        if request.verb == "watch":
            return serve_watch(self, request, body, handler)
        if request.verb == "list":
            return serve_list(self, request, body)
        return serve_get(self, request, body)

    def _authenticated(self, handler):
        """The identity of the request's bearer token, or None."""
        scheme, _, token = handler.headers.get("Authorization", "").partition(" ")
        return self.kube.identity(token) if scheme == "Bearer" else None

    def _authorize(self, request, identity):
        """RBAC as the apiserver runs it: the bindings of the request's namespace and the cluster-wide
        ones (ClusterRoleBindings), or only those for a cluster-scoped resource."""
        grants = identity.grants
        if grants is None or allows(
            grants.rules_in(request.namespace),
            request.verb,
            request.group,
            request.resource,
            request.name,
        ):
            return
        raise self._forbidden(request, identity.user)

    def _forbidden(self, request, user=None):
        resource, _, subresource = request.resource.partition("/")
        return forbidden(
            user or self.kube.user,
            request.verb,
            resource,
            subresource,
            request.group,
            request.namespace,
            request.name,
        )

    def _injected(self, request, fault):
        if fault.status == 403 and request.resource and fault.message is None:
            return self._forbidden(request)
        if fault.status == 401 and fault.message is None:
            return unauthorized()
        if fault.status == 404 and request.name and fault.message is None:
            return not_found(request.resource.partition("/")[0], request.name, request.group)
        return injected(fault.status, fault.message)

    def abort_streams(self, pod=None, kind=None):
        """Reset the matching streams; returns once their connections are gone."""
        streams = self.streams.select(kind=kind, pod=pod)
        for stream in streams:
            stream.abort()
        wait_closed(streams)


def _read_body(handler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""
