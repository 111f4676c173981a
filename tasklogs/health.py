"""Liveness and readiness for the orchestrator."""
import os

from flask import Blueprint, current_app, jsonify

from . import repository, service
from .errors import ClusterError, StoreUnavailable
from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    checks = {"database": _check_database(), "kubernetes": _check_cluster()}
    ready = all(value == "ok" for value in checks.values())
    engine = current_app.extensions.get("tasklogs.engine")
    process = {"pid": os.getpid(), **(engine.stats() if engine else {})}
    return jsonify({"ready": ready, **checks, "process": process}), 200 if ready else 503


def _check_database() -> str:
    try:
        with service.store_errors():
            repository.check_database(db.session)
            db.session.rollback()
        return "ok"
    except StoreUnavailable as error:
        return error.message


def _check_cluster() -> str:
    try:
        service.cluster().check()
        return "ok"
    except ClusterError as error:
        return error.message
