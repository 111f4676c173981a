"""Secrets never appear in messages or logs: malformed database URLs, store and cluster errors, bearer
tokens, tracebacks, and the start-up of `flask --app wsgi` and gunicorn."""

import logging
import os
import subprocess
import sys

import pytest

from tasklogs.config import ConfigError, database_url, load_config
from tasklogs.errors import ClusterUnavailable, StoreUnavailable, Unauthorized
from tasklogs.redaction import RedactingFormatter, install, redact, redact_url
from testkit import ROOT

PASSWORD = "s3cret-Pw"
TOKEN = "tok-0123456789abcdef"

# Each of these made SQLAlchemy or psycopg2 raise (or stopped start-up with the value quoted) before.
MALFORMED_URLS = [
    f"u:{PASSWORD}@host/db",  # no scheme
    f"postgresql://u:{PASSWORD}@host:notaport/db",
    f"postgresql://u:{PASSWORD}@host:99999/db",
    f"postgresql://u:{PASSWORD}@[::1/db",
    f"mysql://u:{PASSWORD}@host/db",
    f"postgresql+nodriver://u:{PASSWORD}@host/db",
    f"postgresql://u:{PASSWORD}@host:-1/db",
]


@pytest.mark.parametrize(
    "text,expected",
    [
        (f"postgresql://u:{PASSWORD}@h:5432/d", "postgresql://u:***@h:5432/d"),
        (f"postgresql+psycopg2://u:{PASSWORD}@h/d", "postgresql+psycopg2://u:***@h/d"),
        (f"u:{PASSWORD}@h/d", "u:***@h/d"),
        ("postgresql://u:pa@ss/w#rd@h/d", "postgresql://u:***@h/d"),  # unencoded @ / # in it
        (f"postgresql://u@h/d?password={PASSWORD}&sslmode=require", None),
        (f"host=h user=u password={PASSWORD}", "host=h user=u password=***"),
        (f"ws://h/ws/tasks/t/logs?tail=5&access_token={TOKEN}", None),
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ***"),
        ("Authorization: bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", None),
    ],
)
def test_passwords_and_tokens_are_hidden(text, expected):
    redacted = redact(text)
    assert PASSWORD not in redacted and TOKEN not in redacted and "eyJ" not in redacted
    assert "***" in redacted
    if expected is not None:
        assert redacted == expected


@pytest.mark.parametrize(
    "text",
    [
        "a valid bearer token is required (Authorization: Bearer <token>)",
        "Bearer authentication",
        "postgresql://postgres@127.0.0.1:5432/tasklogs",
        'connection to server at "127.0.0.1", port 1 failed: Connection refused',
        "at 12:30 the pod p-1 restarted",
    ],
)
def test_text_without_secrets_is_left_as_it_is(text):
    assert redact(text) == text == redact_url(text)


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_a_malformed_database_url_stops_start_up_naming_it_without_its_password(url):
    with pytest.raises(ConfigError) as error:
        load_config({"DATABASE_URL": url})
    message = str(error.value)
    assert message.startswith("DATABASE_URL=") and PASSWORD not in message
    assert "u:***@" in message, "the rest of the URL stays, to show what is wrong"


def test_the_database_url_parser_never_quotes_its_value():
    for url in MALFORMED_URLS:
        with pytest.raises(ValueError) as error:
            database_url(url)
        assert PASSWORD not in str(error.value) and "u:" not in str(error.value)


def test_a_bad_api_token_would_never_be_quoted():
    from tasklogs.config import SETTINGS

    [token] = [s for s in SETTINGS if s.env == "TASKLOGS_API_TOKEN"]
    assert token.shown(TOKEN) == "***"


def test_project_errors_hide_secrets_in_their_message_and_json():
    from tasklogs.errors import error_body

    for error in (
        StoreUnavailable(f"could not open postgresql://u:{PASSWORD}@h/d"),
        ClusterUnavailable(f"exec plugin said: Authorization: Bearer {TOKEN}"),
        Unauthorized(f"?access_token={TOKEN} is not valid"),
    ):
        shown = f"{error} {error.message} {error_body(error)}"
        assert PASSWORD not in shown and TOKEN not in shown and "***" in shown


def record_with_traceback(message: str, *args) -> logging.LogRecord:
    try:
        raise RuntimeError(f"engine for postgresql://u:{PASSWORD}@h/d failed")
    except RuntimeError:
        return logging.LogRecord(
            "tasklogs.x", logging.ERROR, __file__, 1, message, args, sys.exc_info()
        )


def test_the_log_formatter_hides_secrets_in_messages_arguments_and_tracebacks():
    record = record_with_traceback("request with %s to %s", f"Bearer {TOKEN}", f"u:{PASSWORD}@h")
    text = RedactingFormatter("%(levelname)s %(message)s").format(record)
    assert "Traceback" in text and "RuntimeError" in text
    assert PASSWORD not in text and TOKEN not in text
    assert text.startswith("ERROR request with Bearer *** to u:***@h")


def test_install_keeps_the_handlers_format():
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s| %(message)s"))
    install([handler])
    install([handler])  # twice is once
    assert isinstance(handler.formatter, RedactingFormatter)
    formatted = handler.format(record_with_traceback("url %s", f"postgresql://u:{PASSWORD}@h"))
    assert (
        formatted.startswith("tasklogs.x| url postgresql://u:***@h") and PASSWORD not in formatted
    )


def flask_routes(url: str) -> subprocess.CompletedProcess:
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    env = {**os.environ, "DATABASE_URL": url, "TASKLOGS_AUTO_MIGRATE": "false"}
    return subprocess.run(
        [flask, "--app", "wsgi", "routes"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("url", MALFORMED_URLS[:3])
def test_flask_start_up_with_a_malformed_url_prints_no_password(url):
    done = flask_routes(url)
    assert done.returncode != 0
    assert "ConfigError: DATABASE_URL=" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout
