"""Liveness and readiness for the orchestrator."""

import os

from flask import Blueprint, jsonify

from .bootstrap import Services, services
from .errors import ClusterError, StoreUnavailable
from .store import repository

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    current = services()
    checks = {"database": _check_database(current), "kubernetes": _check_cluster(current)}
    ready = all(value == "ok" for value in checks.values())
    engine = current.started_engine
    process = {"pid": os.getpid(), **(engine.stats() if engine else {})}
    return jsonify({"ready": ready, **checks, "process": process}), 200 if ready else 503


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
