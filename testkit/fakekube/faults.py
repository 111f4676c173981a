"""Fault rules: which requests fail, stall, get reset or cut, and how many times."""

import re
import threading
from dataclasses import dataclass, field

RESOURCE_MATCHES = ("pods/log", "pods", "workflows", "tokenreviews", "subjectaccessreviews")


@dataclass
class Fault:
    kind: str  # "fail" | "delay" | "reset" | "cut"
    match: str
    times: int | None  # None: until cleared
    status: int = 500
    message: str | None = None
    seconds: float = 0.0
    after_bytes: int = 0
    _pattern: re.Pattern | None = field(default=None, repr=False)

    def matches(self, request) -> bool:
        if self.match in RESOURCE_MATCHES:
            return request.resource == self.match
        if self.match == "watch":
            return request.verb == "watch"
        if self._pattern is None:
            self._pattern = re.compile(self.match)
        return self._pattern.search(request.raw_path) is not None


class Faults:
    """Rules in the order they were added; each use of a rule counts down its times."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []

    def add(self, fault: Fault):
        with self._lock:
            self._rules.append(fault)

    def clear(self):
        with self._lock:
            self._rules.clear()

    def take(self, request):
        """(seconds to delay, the first matching fail/reset/cut rule or None), using up what applies."""
        with self._lock:
            delay = sum(rule.seconds for rule in self._use(request, lambda r: r.kind == "delay"))
            final = self._use(request, lambda r: r.kind != "delay", first=True)
        return delay, (final[0] if final else None)

    def _use(self, request, wanted, first=False):
        used = []
        for rule in list(self._rules):
            if wanted(rule) and rule.matches(request):
                used.append(rule)
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                if first:
                    break
        return used
