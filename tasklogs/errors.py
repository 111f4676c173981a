"""The project's exceptions, raised deep and turned into JSON `{"error", "message"}` in one place."""

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

from .redaction import redact

log = logging.getLogger(__name__)


class TasklogsError(Exception):
    """Base of every error the API reports; `status` is the HTTP status, `code` the JSON error code."""

    status = 500
    code = "internal_error"
    retry_after: int | None = None  # seconds for a Retry-After header: worth trying again soon

    def __init__(self, message: str):
        message = redact(message)  # a URL's password or a token never reaches a body or a log
        super().__init__(message)
        self.message = message


class InvalidRequest(TasklogsError):
    status = 400
    code = "invalid_request"


class InvalidTaskId(InvalidRequest):
    code = "invalid_task_id"


class Unauthorized(TasklogsError):
    status = 401
    code = "unauthorized"


class Forbidden(TasklogsError):
    """The caller is known but may not read pod logs in that namespace (RBAC)."""

    status = 403
    code = "forbidden"


class OriginForbidden(TasklogsError):
    status = 403
    code = "origin_forbidden"


class TaskNotFound(TasklogsError):
    status = 404
    code = "task_not_found"


class NamespaceNotServed(TasklogsError):
    status = 404
    code = "namespace_not_served"


class TooManyFromClient(TasklogsError):
    status = 429
    code = "too_many_connections_from_client"
    retry_after: int | None = 5


class TooManyConnections(TasklogsError):
    status = 503
    code = "too_many_connections"
    retry_after: int | None = 5


class ClusterError(TasklogsError):
    """Something about the Kubernetes side; subclasses say what."""

    status = 502
    code = "cluster_error"


class ClusterRefused(ClusterError):
    """The API server answered but refused (403, 401, or a request it calls bad)."""

    status = 502
    code = "cluster_refused"


class ClusterUnavailable(ClusterError):
    """The API server could not be reached, timed out, or answered 5xx/429."""

    status = 503
    code = "cluster_unavailable"
    retry_after: int | None = 5


class ClusterMisconfigured(ClusterUnavailable):
    """The cluster cannot be reached as configured (no usable kubeconfig, a server name that does not
    resolve, a TLS handshake refused): trying again will not help until someone fixes the configuration."""

    code = "cluster_misconfigured"
    retry_after = None


class ObjectNotFound(ClusterError):
    """The API server answered 404 for a pod or workflow."""

    status = 404
    code = "not_found"


class ContainerWaiting(ClusterError):
    """The container has not started yet (ContainerCreating, PodInitializing)."""

    status = 409
    code = "container_waiting"


class LogsGone(ClusterError):
    """The container's log is no longer kept by the node (removed container, no previous instance)."""

    status = 410
    code = "logs_gone"


class WatchExpired(ClusterError):
    """A watch or list asked for a resourceVersion the API server no longer has (410 Gone)."""

    status = 410
    code = "watch_expired"


class WorkflowUnreadable(TasklogsError):
    """The task's Workflow has a status Argo never writes (a wrong type, or compressed nodes that are
    corrupt or inflate beyond TASKLOGS_MAX_WORKFLOW_MB): its logs cannot be resolved until it is fixed."""

    status = 502
    code = "workflow_unreadable"


class ArtifactUnreadable(TasklogsError):
    """A log's archived artifact (Argo's archiveLogs) cannot be read: where it is, and why. Served as a
    note on that log (the task's other logs are still served); nothing is stored for it."""

    status = 502
    code = "artifact_unreadable"


class StoreUnavailable(TasklogsError):
    """PostgreSQL could not be reached, or no connection was free in time."""

    status = 503
    code = "database_unavailable"
    retry_after: int | None = 5


class Unavailable(TasklogsError):
    """Neither the database nor the cluster can answer."""

    status = 503
    code = "unavailable"
    retry_after: int | None = 5


def error_body(error: TasklogsError) -> dict:
    return {"error": error.code, "message": error.message}


def register_error_handlers(app) -> None:
    """Every error leaves as JSON; unexpected ones as a bare 500 without internals."""

    @app.errorhandler(TasklogsError)
    def known_error(error):
        response = jsonify(error_body(error))
        if isinstance(error, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="tasklogs"'
        if error.retry_after:
            response.headers["Retry-After"] = str(error.retry_after)
        return response, error.status

    @app.errorhandler(HTTPException)
    def http_error(error):
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify({"error": code, "message": error.description}), error.code

    @app.errorhandler(Exception)
    def unexpected_error(error):
        log.exception("unhandled error")
        return jsonify({"error": "internal_error", "message": "internal error"}), 500
