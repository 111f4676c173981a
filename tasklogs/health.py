"""Liveness and readiness for the orchestrator.

`/readyz` answers anyone with `{"ready": bool}` only, from checks made at most every
`READY_CHECK_SECONDS` (each check is a database round trip and a Kubernetes LIST: a flood of probes
must not turn into a flood of those). `/readyz?verbose=1` adds what each check said and this process's
figures, for callers who authenticate in the current `TASKLOGS_AUTH` mode.
"""

import os
import threading
import time

from flask import Blueprint, current_app, jsonify, request

from . import access
from .bootstrap import Services, services
from .errors import ClusterError, StoreUnavailable
from .store import repository

bp = Blueprint("health", __name__)

READY_CHECK_SECONDS = 3.0
READINESS = "tasklogs.readiness"


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    current = services()
    verbose = request.args.get("verbose", "").lower() in ("1", "true", "yes")
    if verbose:
        access.authenticate(current.settings.access)
    checks = current_app.extensions[READINESS].checks(current)
    ready = all(value == "ok" for value in checks.values())
    if not verbose:
        return jsonify({"ready": ready}), 200 if ready else 503
    engine = current.started_engine
    process = {"pid": os.getpid(), **(engine.stats() if engine else {})}
    return jsonify({"ready": ready, **checks, "process": process}), 200 if ready else 503


class Readiness:
    """The last checks' results, made again once they are `seconds` old (one caller at a time checks;
    the others wait for its answer instead of checking too)."""

    def __init__(self, seconds: float = READY_CHECK_SECONDS):
        self.seconds = seconds
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._results: dict[str, str] = {}

    def checks(self, current: Services) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._checked_at >= self.seconds:
                self._results = {
                    "database": _check_database(current),
                    "kubernetes": _check_cluster(current),
                }
                self._checked_at = time.monotonic()
            return dict(self._results)


def register(app) -> None:
    """The health blueprint and its readiness cache."""
    app.extensions[READINESS] = Readiness()
    app.register_blueprint(bp)


def _check_database(current: Services) -> str:
    try:
        with current.units() as uow:
            repository.check_database(uow.session)
        return "ok"
    except StoreUnavailable as error:
        return error.message


def _check_cluster(current: Services) -> str:
    try:
        current.kube.check()
        return "ok"
    except ClusterError as error:
        return error.message
