"""Creating and upgrading the schema at start-up, once, even when many workers start together."""

import logging

import flask_migrate
from sqlalchemy.exc import OperationalError

from .extensions import db
from .store import postgres

log = logging.getLogger(__name__)


def upgrade_schema(app) -> None:
    """Run the Alembic migrations; on PostgreSQL under an advisory lock so concurrent starts queue up.

    If the database cannot be reached the app still starts, in Kubernetes-only mode, and says so."""
    with app.app_context():
        try:
            if db.engine.dialect.name == "postgresql":
                _upgrade_locked(app)
            else:
                flask_migrate.upgrade(directory=app.extensions["migrate"].directory)
        except OperationalError as error:
            log.warning(
                "database unreachable at start-up, serving from Kubernetes only until it is back: %s",
                error.orig.__class__.__name__ if error.orig else error,
            )


def _upgrade_locked(app) -> None:
    with db.engine.connect() as connection:
        postgres.lock_migrations(connection)
        connection.commit()  # the lock is the session's: the transaction need not stay open
        try:
            flask_migrate.upgrade(directory=app.extensions["migrate"].directory)
        finally:
            postgres.unlock_migrations(connection)
            connection.commit()
