"""The capture engine: one capture per container cluster-wide, fanned out to every viewer.

Its rooms: `engine` (the process's drivers and background threads), `driver` (one task, leading or
following), `follow` (one container followed into a feed), `oneshot` (one read for REST), `feed` (a
task's live state and its viewers), `tail` (one client's snapshot and live events), `journal` (text into
the store, and other processes' commits back), `leases` (who captures), `frames` (the tail protocol).
"""

from .driver import Driver, Outcome
from .engine import Engine, EngineClosed
from .tail import Tail

__all__ = ["Driver", "Engine", "EngineClosed", "Outcome", "Tail"]
