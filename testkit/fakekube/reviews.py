"""TokenReview and SubjectAccessReview, as kube-apiserver serves them.

pkg/registry/authentication/tokenreview/storage.go: an empty token is a 400; the answer echoes the
request with `status.authenticated` and `status.user` (the authenticator adds the group
`system:authenticated`), or without them for a token nobody issued.
pkg/registry/authorization/subjectaccessreview/rest.go and pkg/apis/authorization/validation: a spec
needs resourceAttributes or nonResourceAttributes and a user or a group (422 otherwise); the RBAC
authorizer answers `allowed` with a reason, or no opinion (`allowed: false` and nothing else).
Both are created with 201.
"""

import json

from .status import bad_request, invalid

AUTHENTICATED = "system:authenticated"


def _review_body(request, kind, api_version):
    try:
        obj = json.loads(request.body or b"{}")
    except ValueError as error:
        raise bad_request(f"couldn't get version/kind; json parse error: {error}") from None
    if not isinstance(obj, dict):
        raise bad_request("couldn't get version/kind; json parse error: not an object")
    if obj.get("kind", kind) != kind or obj.get("apiVersion", api_version) != api_version:
        raise bad_request(f"the body of the request was in an unknown format: {obj.get('kind')}")
    obj.setdefault("kind", kind)
    obj.setdefault("apiVersion", api_version)
    obj["metadata"] = {"creationTimestamp": None, **(obj.get("metadata") or {})}
    return obj


def serve_token_review(app, request, body):
    review = _review_body(request, "TokenReview", "authentication.k8s.io/v1")
    token = (review.get("spec") or {}).get("token") or ""
    if not token:
        raise bad_request("token is required for TokenReview in authentication")
    user = app.kube.tokens.get(token)
    status = {"user": {}}
    if user is not None:
        groups = list(user["groups"])
        if AUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
        status = {
            "authenticated": True,
            "user": {"username": user["username"], "uid": user["uid"], "groups": groups},
        }
    review["status"] = status
    body.fixed(201, "application/json", json.dumps(review).encode())


def serve_access_review(app, request, body):
    review = _review_body(request, "SubjectAccessReview", "authorization.k8s.io/v1")
    spec = review.get("spec") or {}
    attributes = spec.get("resourceAttributes")
    causes = []
    if attributes is None and spec.get("nonResourceAttributes") is None:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.resourceAttributes",
                "Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes "
                "must be specified",
            )
        )
    if not spec.get("user") and not spec.get("groups"):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.user",
                'Invalid value: "": at least one of user or group must be specified',
            )
        )
    if causes:
        raise invalid("SubjectAccessReview.authorization.k8s.io", "", causes)
    allowed, reason = False, ""
    if attributes is not None:
        resource = attributes.get("resource", "")
        if attributes.get("subresource"):
            resource = f"{resource}/{attributes['subresource']}"
        allowed, reason = app.kube.rbac.decide(
            spec.get("user", ""),
            spec.get("groups") or [],
            attributes.get("namespace", ""),
            attributes.get("verb", ""),
            attributes.get("group", ""),
            resource,
            attributes.get("name") or None,
        )
    review["status"] = {"allowed": allowed, **({"reason": reason} if reason else {})}
    body.fixed(201, "application/json", json.dumps(review).encode())
