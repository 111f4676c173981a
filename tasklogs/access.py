"""Who may use the API: an optional bearer token, or an authenticating proxy's user header, and for
WebSockets an Origin check (cross-site WebSocket hijacking) and per-worker/per-client limits."""

import hmac
import threading
from collections import Counter
from urllib.parse import urlsplit

from flask import g, request

from .config import AccessSettings
from .errors import OriginForbidden, TooManyConnections, TooManyFromClient, Unauthorized


def authenticate(settings: AccessSettings) -> None:
    """Let the request in, or raise Unauthorized; with neither token nor user header configured, all pass."""
    token, user_header = settings.api_token, settings.user_header
    if not token and not user_header:
        return
    if user_header and request.headers.get(user_header):
        g.user = request.headers[user_header]
        return
    if token:
        presented = _bearer(request.headers.get("Authorization", ""))
        if presented is None and is_websocket():
            presented = request.args.get("access_token")
        if presented is not None and hmac.compare_digest(presented.encode(), token.encode()):
            return
        raise Unauthorized(
            "a valid bearer token is required (Authorization: Bearer <token>"
            + (", or ?access_token= on a WebSocket)" if is_websocket() else ")")
        )
    raise Unauthorized(
        f"requests must come through the authenticating proxy (no {user_header} header)"
    )


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def is_websocket() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def check_origin(settings: AccessSettings) -> None:
    """Browsers send Origin on every WebSocket: only the allowed origins (default: our own) may connect."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    allowed = settings.allowed_origins
    if "*" in allowed or origin.rstrip("/") in allowed:
        return
    if not allowed and urlsplit(origin).netloc == request.host:
        return
    raise OriginForbidden(f"WebSocket connections from origin {origin[:200]!r} are not allowed")


class TailSlots:
    """Counts the WebSockets one worker holds, in total and per client address."""

    def __init__(self, total: int, per_client: int):
        self.total, self.per_client = total, per_client
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        with self._lock:
            if sum(self._open.values()) >= self.total:
                raise TooManyConnections(
                    f"this worker already serves {self.total} live tails; try again later"
                )
            if self._open[client] >= self.per_client:
                raise TooManyFromClient(f"at most {self.per_client} live tails per client address")
            self._open[client] += 1

    def give_back(self, client: str) -> None:
        with self._lock:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

    def count(self) -> int:
        with self._lock:
            return sum(self._open.values())


def take_tail_slot(slots: TailSlots) -> None:
    """Reserve a WebSocket slot for this request (given back by `give_back_tail_slot` when it ends)."""
    slots.take(request.remote_addr or "")
    g.tail_slot = request.remote_addr or ""


def give_back_tail_slot(slots: TailSlots) -> None:
    if "tail_slot" in g:
        slots.give_back(g.pop("tail_slot"))
