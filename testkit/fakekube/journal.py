"""What requests reached the fake, for assertions."""

import threading
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    query: dict
    verb: str | None  # "get" | "list" | "watch" | "create" (None for paths the fake does not serve)
    resource: (
        str | None
    )  # "pods" | "pods/log" | "workflows" | "tokenreviews" | "subjectaccessreviews"
    name: str | None
    group: str
    namespace: str | None = None
    status: int = 0  # 0: the connection was reset before any answer
    follow: bool = False
    user: str | None = None  # who the bearer token is (None: not authenticated)
    raw_path: str = field(default="", repr=False)
    body: bytes = field(default=b"", repr=False)


class Journal:
    def __init__(self):
        self._lock = threading.Lock()
        self._requests = []

    def record(self, request: Request):
        with self._lock:
            self._requests.append(request)

    def snapshot(self) -> list:
        with self._lock:
            return list(self._requests)

    def reset(self):
        with self._lock:
            self._requests.clear()

    def count(self, verb=None, resource=None) -> int:
        return sum(
            1
            for r in self.snapshot()
            if (verb is None or r.verb == verb) and (resource is None or r.resource == resource)
        )
