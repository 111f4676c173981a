"""Who may read logs, by `TASKLOGS_AUTH`, and the WebSocket gates (Origin, tail slots).

Authentication (who is it) runs in the logs blueprint's `before_request`:

- `kubernetes`: the caller's bearer token (`Authorization: Bearer`, or `?access_token=` on a
  WebSocket), known to Kubernetes through a TokenReview;
- `proxy`: the user and groups headers of an authenticating proxy, believed only when the TCP peer is
  in `TASKLOGS_TRUSTED_PROXIES` (the same headers from anyone else: 401);
- `token`: the static `TASKLOGS_API_TOKEN`, compared in constant time;
- `none`: open; unset: clients on loopback only.

Authorization needs the task's namespace: `authorize(namespace)` asks a SubjectAccessReview whether
the user may `get pods/log` there (modes `kubernetes` and `proxy`; the others let everyone they
admitted read everything), and `readable(namespaces)` filters a list the same way. Reviews are
remembered briefly (`reviews.Reviews`). 401 `unauthorized` for missing or bad credentials, 403
`forbidden` naming the namespace, 503 when Kubernetes cannot answer: never a grant by default.
"""

import hmac
from collections.abc import Callable, Iterable
from functools import partial
from urllib.parse import urlsplit

from flask import g, request

from . import accesslog, proxies
from .bootstrap import services
from .config import AccessSettings
from .errors import (
    ClusterError,
    ClusterRefused,
    ClusterUnavailable,
    Forbidden,
    OriginForbidden,
    Unauthorized,
)
from .reviews import Identity
from .slots import TailSlots

__all__ = [
    "TailSlots",
    "authenticate",
    "authorize",
    "check_origin",
    "give_back_tail_slot",
    "readable",
    "take_tail_slot",
]

RBAC_MODES = ("kubernetes", "proxy")
DEFAULT_PORTS = {"http": 80, "https": 443}


def authenticate(settings: AccessSettings) -> Identity:
    """Who the caller is, by the mode (kept as `g.identity`); raise Unauthorized (401), or
    ClusterUnavailable (503) when Kubernetes cannot review the token."""
    identity = AUTHENTICATORS[settings.mode](settings)
    g.identity = identity
    accesslog.note(request.environ, user=identity.label)
    return identity


def _by_kubernetes(settings: AccessSettings) -> Identity:
    token = presented_token()
    if token is None:
        raise Unauthorized(
            "a Kubernetes bearer token is required (Authorization: Bearer <token>"
            + (", or ?access_token= on a WebSocket)" if is_websocket() else ")")
        )
    return _reviewed(lambda: services().reviews.identify(token))


def _by_proxy(settings: AccessSettings) -> Identity:
    user = request.headers.get(settings.user_header, "").strip()
    peer = proxies.peer_of(request.environ)
    if not proxies.is_trusted(peer, settings.trusted_proxies):
        if user:
            raise Unauthorized(
                f"{settings.user_header} is believed only from the proxies in "
                f"TASKLOGS_TRUSTED_PROXIES, and this request came from {peer}"
            )
        raise Unauthorized("requests must come through the authenticating proxy")
    if not user:
        raise Unauthorized(f"the authenticating proxy sent no {settings.user_header} header")
    groups = request.headers.get(settings.groups_header, "")
    return Identity(
        user, tuple(name.strip() for name in groups.split(",") if name.strip()), "proxy"
    )


def _by_token(settings: AccessSettings) -> Identity:
    presented = presented_token()
    if presented is not None and hmac.compare_digest(
        presented.encode(), settings.api_token.encode()
    ):
        return Identity(via="token")
    raise Unauthorized(
        "a valid bearer token is required (Authorization: Bearer <token>"
        + (", or ?access_token= on a WebSocket)" if is_websocket() else ")")
    )


def _open(settings: AccessSettings) -> Identity:
    return Identity(via="none")


def _loopback_only(settings: AccessSettings) -> Identity:
    if proxies.is_loopback(request.remote_addr or ""):
        return Identity(via="loopback")
    raise Unauthorized(
        "TASKLOGS_AUTH is not set, so only clients on the service's own machine are served; "
        "set TASKLOGS_AUTH to kubernetes, proxy, token or none"
    )


AUTHENTICATORS: dict[str, Callable[[AccessSettings], Identity]] = {
    "kubernetes": _by_kubernetes,
    "proxy": _by_proxy,
    "token": _by_token,
    "none": _open,
    "": _loopback_only,
}


def authorize(namespace: str) -> None:
    """Let the request read pod logs in `namespace`, or raise Forbidden (403), Unauthorized (401,
    no authenticated caller) or ClusterUnavailable (503, Kubernetes cannot answer)."""
    accesslog.note(request.environ, namespace=namespace)
    if services().settings.access.mode not in RBAC_MODES:
        return
    identity = _caller()
    if not _reviewed(lambda: services().reviews.may_read(identity, namespace)):
        raise Forbidden(
            f"{identity.user} may not read pod logs in namespace {namespace!r} "
            "(Kubernetes RBAC: get pods/log)"
        )


def readable(namespaces: Iterable[str]) -> list[str]:
    """The namespaces whose pod logs the caller may read (all of them in modes without RBAC)."""
    names = list(namespaces)
    if services().settings.access.mode not in RBAC_MODES:
        return names
    identity, reviews = _caller(), services().reviews
    return [name for name in names if _reviewed(partial(reviews.may_read, identity, name))]


def _caller() -> Identity:
    identity = g.get("identity")
    if identity is None or not identity.user:
        raise Unauthorized("the request was not authenticated")
    return identity


def _reviewed(review):
    """Run a review; a failure is a 503 (unreachable) or a 502 (refused), never a grant or a 500."""
    try:
        return review()
    except ClusterUnavailable as error:
        raise ClusterUnavailable(f"cannot check access now: {error.message}") from None
    except ClusterError as error:
        raise ClusterRefused(f"cannot check access: {error.message}") from None


def presented_token() -> str | None:
    """The bearer token of the request: the header, or on a WebSocket also `?access_token=`."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if is_websocket() and request.args.get("access_token"):
        return request.args["access_token"]
    return None


def is_websocket() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def check_origin(settings: AccessSettings) -> None:
    """Browsers send Origin on every WebSocket: only the allowed origins (default: our own, same
    scheme, host and port) may connect."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    allowed = settings.allowed_origins
    if "*" in allowed:
        return
    seen = origin_of(origin)
    if allowed:
        admitted = seen in {origin_of(entry) for entry in allowed}
    else:
        admitted = seen == origin_of(f"{request.scheme}://{request.host}")
    if seen is None or not admitted:
        raise OriginForbidden(f"WebSocket connections from origin {origin[:200]!r} are not allowed")


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the port filled in from the scheme; None if it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def take_tail_slot(slots: TailSlots) -> None:
    """Reserve a WebSocket slot for this request (given back by `give_back_tail_slot` when it ends):
    keyed by the authenticated user when there is one, else by the (trusted) client address."""
    identity = g.get("identity")
    client = (
        f"user:{identity.user}"
        if identity is not None and identity.user
        else f"address:{request.remote_addr or ''}"
    )
    slots.take(client)
    g.tail_slot = client


def give_back_tail_slot(slots: TailSlots) -> None:
    if "tail_slot" in g:
        slots.give_back(g.pop("tail_slot"))
