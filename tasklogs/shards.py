"""Collectors that share the work: who captures which running task.

Every collector of one scope (the same served namespaces) beats a heartbeat into the `collectors`
table every poll interval and reads back the live members: those whose heartbeat, on the database's
clock, is younger than `TASKLOGS_COLLECTOR_TTL`. Each collector then computes the same assignment
from what they all see alike (the members' names, and the tasks and their containers in the watch
caches), and keeps a pinned driver only on its own tasks. The task lease (`engine.leases`) still
decides the one capture while the assignment changes hands: the old owner flushes and releases it, the
new one takes it and reads on from the stored position, so a hand-over loses and repeats nothing.

The assignment is rendezvous hashing with bounded loads: tasks are placed one by one in the order of
their own hash, each on the member ranking highest for it (a hash of member and task) that still has
room for its containers under `SLACK` times the average. A member that joins or leaves moves about
its share of tasks and no others; no member carries more than `SLACK` times its share of containers
(one task's containers more at worst, when tasks are few and large).
"""

import hashlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping

from .errors import StoreUnavailable
from .identity import TaskRef
from .store import repository
from .store.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)

SLACK = 1.25  # a member's load may exceed the average by this factor before tasks go elsewhere


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def ranking(task: TaskRef, members: Iterable[str]) -> list[str]:
    """The members in the task's order of preference (highest random weight first)."""
    return sorted(
        members, key=lambda member: (_hash(f"{member}\0{task.key}"), member), reverse=True
    )


def assign(weights: Mapping[TaskRef, int], members: Iterable[str]) -> dict[TaskRef, str]:
    """Each task's member: `weights` are the tasks' containers to capture (0 for a task that has none
    running); every member computing this from the same input gets the same answer."""
    names = sorted(set(members))
    if not names:
        return {}
    total = sum(weights.values())
    room = max(math.ceil(SLACK * total / len(names)), max(weights.values(), default=0))
    load = dict.fromkeys(names, 0)
    owners: dict[TaskRef, str] = {}
    for task in sorted(weights, key=lambda task: (_hash(task.key), task.key)):
        weight, preferred = weights[task], ranking(task, names)
        owner = next(
            (member for member in preferred if load[member] + weight <= room),
            min(preferred, key=load.__getitem__),
        )
        load[owner] += weight
        owners[task] = owner
    return owners


def member_name() -> str:
    """A name no other collector has: host, process and a random part (a restarted process is new)."""
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Membership:
    """This collector's row in `collectors` and the live members of its scope, as last read."""

    def __init__(self, units: UnitsOfWork, scope: str, ttl: float, name: str | None = None):
        self.units, self.scope, self.ttl = units, scope, ttl
        self.name = name or member_name()
        self.members: tuple[str, ...] = (self.name,)

    def beat(self) -> bool:
        """Heartbeat and read the live members; True if they changed. With the database down the last
        members read are kept (the leases decide meanwhile), and this one always counts itself."""
        try:
            with self.units() as uow:
                live = repository.beat_collector(uow.session, self.name, self.scope, self.ttl)
                uow.commit()
        except StoreUnavailable as error:
            log.info("collector heartbeat not recorded (%s)", error.message)
            return False
        members = tuple(sorted({*live, self.name}))
        changed, self.members = members != self.members, members
        if changed:
            log.info("%d collector(s) share the work: %s", len(members), ", ".join(members))
        return changed

    def leave(self) -> None:
        """Delete this collector's row, so that the others take its tasks at once."""
        try:
            with self.units() as uow:
                repository.leave_collectors(uow.session, self.name)
                uow.commit()
        except StoreUnavailable as error:  # its heartbeat expires instead
            log.info("could not leave the collectors (%s)", error.message)


class CollectorPresence:
    """Seen from a web worker: which namespaces live collectors capture. A web worker's tail of such a
    namespace follows the journal and never takes the lease, not even while it changes hands between
    collectors (it captures only where no collector does, as a fallback)."""

    def __init__(self, units: UnitsOfWork, ttl: float, interval: float):
        self.units, self.ttl, self.interval = units, ttl, interval
        self._scopes: set[str] = set()
        self._read = -math.inf
        self._lock = threading.Lock()

    def covers(self, namespace: str) -> bool:
        """Whether a live collector captures the namespace (as last read, at most `interval` ago)."""
        with self._lock:
            if time.monotonic() - self._read >= self.interval:
                self._refresh()
            scopes = self._scopes
        return any(scope == "*" or namespace in scope.split(",") for scope in scopes)

    def _refresh(self) -> None:
        self._read = time.monotonic()
        try:
            with self.units() as uow:
                self._scopes = repository.live_collector_scopes(uow.session, self.ttl)
        except StoreUnavailable:  # the lease says "nobody can tell" meanwhile: the last read stands
            pass
