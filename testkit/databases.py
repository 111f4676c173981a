"""Throw-away PostgreSQL databases for the tests and the benchmarks, made through the admin URL."""

import os

from sqlalchemy import create_engine, text

ADMIN_URL = os.environ.get(
    "TASKLOGS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# The test session's database; a parallel run picks another name (and so other derived names).
TEST_DATABASE = os.environ.get("TASKLOGS_TEST_DATABASE", "tasklogs_test")


def psycopg2_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _admin(statement: str) -> None:
    admin = create_engine(psycopg2_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(statement))
    admin.dispose()


def safe_admin_url() -> str:
    """The admin URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(ADMIN_URL).render_as_string(hide_password=True)


def recreate_database(name: str) -> str:
    """Drop and create a database; return its URL (the seed's bare postgresql:// form)."""
    drop_database(name)
    _admin(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_password(
    url: str, password: str, port: int | None = None, database: str | None = None
) -> str:
    """`url` (the tests' trust auth needs no password) with a password, another port or database: how
    the tests check that a password never shows."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    changed = parsed.set(
        password=password, port=port or parsed.port, database=database or parsed.database
    )
    return changed.render_as_string(hide_password=False)
