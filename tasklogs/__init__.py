"""tasklogs: logs of Argo Workflows' tasks over REST and WebSocket, kept in PostgreSQL."""
import logging
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import database_url, load_config
from .extensions import db, migrate, sock

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
log = logging.getLogger(__name__)


def create_app(config: dict | None = None, kube=None) -> Flask:
    """Build the app: settings from the environment, overridden by `config`; `kube` replaces the
    Kubernetes adapter (tests pass one bound to a fake API server)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_config())
    app.config.update(config or {})
    _configure_database(app)
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": app.config["TASKLOGS_WS_PING_INTERVAL"],
                                                  "max_message_size": app.config["TASKLOGS_WS_MAX_MESSAGE"]})
    if app.config["TASKLOGS_PROXY_FIX"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, **app.config["TASKLOGS_PROXY_FIX"])

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS)
    sock.init_app(app)

    from . import cli, errors, health, logs, service
    errors.register_error_handlers(app)
    app.register_blueprint(logs.bp)
    app.register_blueprint(health.bp)
    cli.register(app)
    service.init_app(app, kube)

    if app.config["TASKLOGS_AUTO_MIGRATE"]:
        from .schema import upgrade_schema
        upgrade_schema(app)
    return app


def _configure_database(app: Flask) -> None:
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "tasklogs.sqlite")
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {
            "pool_size": app.config["TASKLOGS_DB_POOL_SIZE"],
            "max_overflow": app.config["TASKLOGS_DB_POOL_SIZE"],
            "pool_timeout": app.config["TASKLOGS_DB_POOL_TIMEOUT"],
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": max(1, int(app.config["TASKLOGS_DB_POOL_TIMEOUT"])),
                             "application_name": "tasklogs",
                             # a database that vanished without closing the connection (a partition) is
                             # noticed in seconds, not after the kernel's 15 minutes of retransmissions
                             "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                             "keepalives_count": 3, "tcp_user_timeout": 15000},
        })
