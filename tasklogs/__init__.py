"""tasklogs: logs of Argo Workflows' tasks over REST and WebSocket, kept in PostgreSQL."""

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .accesslog import AccessLog
from .cluster import Cluster
from .config import REMOVED, SETTING_NAMES, Settings, load_config
from .extensions import db, migrate, sock
from .proxies import TrustedProxies
from .requestid import RequestId

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
log = logging.getLogger(__name__)


def create_app(
    config: Mapping[str, Any] | None = None, kube: Cluster | None = None, *, for_help: bool = False
) -> Flask:
    """Build the app: settings from the environment, overridden by `config` (by variable name, e.g.
    `DATABASE_URL`, `TASKLOGS_POLL_INTERVAL`; other keys are Flask's own); `kube` replaces the Kubernetes
    adapter (tests pass one bound to a fake API server). `for_help` builds it only to list its commands
    (`flask --app wsgi ... --help`): no database is touched, no file created, nothing logged."""
    config = dict(config or {})
    settings = load_config(
        overrides={
            name: config.pop(name) for name in list(config) if name in SETTING_NAMES | set(REMOVED)
        }
    )
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(config)
    _configure_database(app, settings, create_folder=not for_help)
    app.config.setdefault(
        "SOCK_SERVER_OPTIONS",
        {
            "ping_interval": settings.tails.ping_interval,
            "max_message_size": settings.tails.max_message,
        },
    )
    # outermost first: the request's id before anything logs, the client address before the access log
    app.wsgi_app = RequestId(  # type: ignore[method-assign]
        TrustedProxies(AccessLog(app.wsgi_app), settings.access.trusted_proxies)
    )

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS)
    sock.init_app(app)

    from . import apidoc, bootstrap, cli, errors, health, logs, metrics, viewer

    errors.register_error_handlers(app)
    metrics.register(app)
    app.register_blueprint(logs.bp)
    app.register_blueprint(apidoc.bp)
    app.register_blueprint(viewer.bp)
    health.register(app)
    cli.register(app)
    current = bootstrap.wire(app, settings, kube)

    if for_help:
        return app
    if settings.database.auto_migrate:
        from .schema import upgrade_schema

        upgrade_schema(app)
        _create_partitions_ahead(current)
    _say_how_callers_get_in(settings)
    for level, line in bootstrap.describe_stores(current, app.config["SQLALCHEMY_DATABASE_URI"]):
        log.log(level, "%s", line)
    return app


def _create_partitions_ahead(current) -> None:
    """The coming days' page partitions, at once (the upkeep of an engine keeps them coming)."""
    from .errors import StoreUnavailable
    from .retention import create_partitions_ahead

    try:
        create_partitions_ahead(current.units, current.settings.database.partitions_ahead)
    except StoreUnavailable as error:
        log.warning("page partitions not checked at start-up: %s", error.message)


def _say_how_callers_get_in(settings: Settings) -> None:
    mode = settings.access.mode
    if mode == "none":
        log.warning("TASKLOGS_AUTH=none: anyone who reaches this service reads every task's logs")
    elif not mode:
        log.warning(
            "TASKLOGS_AUTH is not set: only clients on loopback are served (set it to kubernetes, "
            "proxy, token or none)"
        )
    else:
        log.info("access: TASKLOGS_AUTH=%s", mode)


def _configure_database(app: Flask, settings: Settings, create_folder: bool = True) -> None:
    url = settings.database.url
    if not url:
        if create_folder:
            os.makedirs(app.instance_path, exist_ok=True)
        url = "sqlite:///" + os.path.join(app.instance_path, "tasklogs.sqlite")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("postgresql"):
        pool = settings.database
        app.config.setdefault(
            "SQLALCHEMY_ENGINE_OPTIONS",
            {
                "pool_size": pool.pool_size,
                "max_overflow": pool.pool_size,
                "pool_timeout": pool.pool_timeout,
                "pool_pre_ping": True,
                "connect_args": {
                    "connect_timeout": max(1, int(pool.pool_timeout)),
                    "application_name": "tasklogs",
                    # a database that vanished without closing the connection (a partition) is
                    # noticed in seconds, not after the kernel's 15 minutes of retransmissions
                    "keepalives": 1,
                    "keepalives_idle": 10,
                    "keepalives_interval": 5,
                    "keepalives_count": 3,
                    "tcp_user_timeout": 15000,
                },
            },
        )
