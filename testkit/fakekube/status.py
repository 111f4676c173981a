"""Status error bodies worded as kube-apiserver words them.

Wording comes from k8s.io/apimachinery/pkg/api/errors (NewNotFound, NewBadRequest, NewForbidden,
NewInvalid, NewResourceExpired) and apiserver/pkg/endpoints/handlers/responsewriters/errors.go.
"""

import json

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

_GO_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(obj, sort_keys=False) -> bytes:
    """JSON the way Go's encoding/json writes it: compact, raw UTF-8, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    if any(c in text for c in _GO_HTML_ESCAPES):
        text = "".join(_GO_HTML_ESCAPES.get(c, c) for c in text)
    return text.encode("utf-8", "surrogatepass")


def qualified(resource: str, group: str) -> str:
    """GroupResource.String(): "pods" or "workflows.argoproj.io"."""
    return f"{resource}.{group}" if group else resource


class ApiError(Exception):
    """An error the apiserver answers with a Status body."""

    def __init__(self, code, message, reason=None, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status


def _details(name="", group="", kind="", **extra) -> dict:
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}
    details.update(extra)
    return details


def not_found(resource, name, group="") -> ApiError:
    return ApiError(
        404,
        f'{qualified(resource, group)} "{name}" not found',
        details=_details(name, group, resource),
    )


def no_such_route() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", details={})


def bad_request(message) -> ApiError:
    return ApiError(400, message)


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "the server does not allow this method on the requested resource", details={}
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def expired(message) -> ApiError:
    return ApiError(410, message)


def invalid(kind, name, causes) -> ApiError:
    """NewInvalid; causes are (type, field, message), e.g. ("FieldValueInvalid", "tailLines", "...")."""
    causes = [
        {"reason": type_, "message": message, "field": field} for type_, field, message in causes
    ]
    parts = [f"{c['field']}: {c['message']}" for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        f'{kind} "{name}" is invalid: {summary}',
        details=_details(name, "", kind, causes=causes),
    )


def forbidden(user, verb, resource, subresource, group, namespace, name=None) -> ApiError:
    """responsewriters.Forbidden (forbiddenMessage): a namespaced request, or with `namespace` None a
    cluster-scoped one."""
    full = f"{resource}/{subresource}" if subresource else resource
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    why = f'User "{user}" cannot {verb} resource "{full}" in API group "{group}" {scope}'

    target = qualified(resource, group)
    head = f'{target} "{name}" is forbidden' if name else f"{target} is forbidden"
    return ApiError(403, f"{head}: {why}", details=_details(name or "", group, resource))


def injected(code, message=None) -> ApiError:
    """A Status for an injected failure, with the apiserver's usual wording for that code."""
    if code == 500:
        cause = message or "injected fault"
        return ApiError(
            500, f"Internal error occurred: {cause}", details={"causes": [{"message": cause}]}
        )
    if code == 429:
        return ApiError(
            429,
            message or "Too many requests, please try again later.",
            details={"retryAfterSeconds": 1},
            headers={"Retry-After": "1"},
        )
    if code == 503:
        return ApiError(
            503, message or "the server is currently unable to handle the request", details={}
        )
    if code == 504:
        return ApiError(
            504,
            message
            or "Timeout: request did not complete within requested timeout - context deadline exceeded",
            details={},
        )
    return ApiError(code, message or "injected fault", details={})
