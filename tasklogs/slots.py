"""Tail slots: how many WebSockets one worker holds, in total and per client."""

import threading
from collections import Counter

from .errors import TooManyConnections, TooManyFromClient


class TailSlots:
    """Counts the WebSockets one worker holds, in total and per client (an identity or an address)."""

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
                raise TooManyFromClient(f"at most {self.per_client} live tails per client")
            self._open[client] += 1

    def give_back(self, client: str) -> None:
        with self._lock:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

    def count(self) -> int:
        with self._lock:
            return sum(self._open.values())
