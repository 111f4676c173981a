"""Kubernetes' answers about callers, remembered for a short while.

`Reviews.identify` asks a TokenReview who a bearer token is; `Reviews.may_read` asks a
SubjectAccessReview whether that user (with those groups) may `get pods/log` in a namespace. Answers are
kept for `TASKLOGS_AUTH_CACHE_SECONDS`, refusals for less (`AccessSettings.denial_seconds`), so a busy
client costs the API server one review a minute instead of one per request. Tokens are keyed by their
SHA-256, never kept themselves. A review that fails (the API server is down) is never remembered and
never a grant: the ClusterError goes up to the caller.
"""

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .cluster import AccessReviews
from .errors import Unauthorized

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Identity:
    """Who a request is: a user (and groups) when the mode names one, else nobody in particular."""

    user: str = ""
    groups: tuple[str, ...] = ()
    via: str = ""  # the mode that let the request in

    @property
    def label(self) -> str:
        """The name for the access log: the user, or how an unnamed caller got in."""
        return self.user or f"({self.via or 'anonymous'})"


class Expiring:
    """A bounded map whose entries each expire after their own number of seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, size: int = MAX_ENTRIES):
        self._clock, self._size = clock, size
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: Hashable, value: Any, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class Reviews:
    """TokenReviews and SubjectAccessReviews through `api`, each answer remembered briefly."""

    def __init__(
        self,
        api: AccessReviews,
        seconds: float,
        denial_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.api, self.seconds, self.denial_seconds = api, seconds, denial_seconds
        self._tokens = Expiring(clock)
        self._decisions = Expiring(clock)

    def identify(self, token: str) -> Identity:
        """The user the token belongs to; raise Unauthorized when Kubernetes does not know it."""
        key = hashlib.sha256(token.encode()).hexdigest()
        known = self._tokens.get(key)
        if known is None:
            known = self._review_token(token)
            self._tokens.put(
                key, known, self.seconds if isinstance(known, Identity) else self.denial_seconds
            )
        if isinstance(known, Identity):
            return known
        raise Unauthorized(known)

    def _review_token(self, token: str) -> Identity | str:
        answer = self.api.review_token(token)
        if answer["authenticated"] and answer["username"]:
            return Identity(answer["username"], tuple(answer["groups"]), "kubernetes")
        why = f": {answer['error'][:200]}" if answer["error"] else ""
        return f"Kubernetes did not accept the bearer token (TokenReview){why}"

    def may_read(self, identity: Identity, namespace: str) -> bool:
        """Whether the user may get pods/log in `namespace` (a SubjectAccessReview)."""
        key = (identity.user, identity.groups, namespace)
        allowed = self._decisions.get(key)
        if allowed is None:
            decision = self.api.review_access(identity.user, identity.groups, namespace)
            allowed = decision["allowed"] and not decision["denied"]
            self._decisions.put(key, allowed, self.seconds if allowed else self.denial_seconds)
        return allowed
