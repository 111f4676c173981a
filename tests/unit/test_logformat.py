"""Log lines as text or JSON: one object per line that parses, the request's id, and no secrets."""

import io
import json
import logging

import pytest

from tasklogs import logformat, requestid
from tasklogs.requestid import RequestId, request_id

SECRET_URL = "postgresql://tasklogs:s3cr%22et@db:5432/tasklogs"
TOKEN = "abc.DEF-123_xyz"


def logger_writing(formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"tasklogs.test.{id(stream)}")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.DEBUG)
    return logger, stream


@pytest.fixture(autouse=True)
def outside_any_request():
    """Each test starts outside a request: a test client elsewhere in this thread may have left a
    request's id in the context (its response body never closed, as a real server always does)."""
    token = requestid.current.set(None)
    yield
    requestid.current.reset(token)


def in_request(rid: str):
    token = requestid.current.set(rid)
    return lambda: requestid.current.reset(token)


def test_json_lines_parse_carry_the_request_id_and_hide_secrets():
    logger, stream = logger_writing(logformat.JsonFormatter())
    done = in_request("req-1")
    try:
        logger.warning("cannot reach %s with token=%s", SECRET_URL, TOKEN)
        try:
            raise RuntimeError(f"Authorization: Bearer {TOKEN} for {SECRET_URL}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        done()
    logger.info("between requests")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, "a traceback stays inside its one JSON object"
    first, second, third = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"].startswith("tasklogs.test")
    assert first["request_id"] == second["request_id"] == "req-1"
    assert "request_id" not in third
    assert "time" in first and "process" in first
    assert "RuntimeError" in second["exc_info"]
    assert "s3cr" not in stream.getvalue() and TOKEN not in stream.getvalue()
    assert "***" in first["message"] and "***" in second["exc_info"]


def test_json_extra_fields_are_kept_and_redacted():
    logger, stream = logger_writing(logformat.JsonFormatter())
    logger.info("access", extra={"access": {"path": "/x", "note": f"token={TOKEN}"}})
    logger.info('password=hunter2\\"tail')  # redacting the serialized line would cut this string
    access, quoted = (json.loads(line) for line in stream.getvalue().splitlines())
    assert access["access"] == {"path": "/x", "note": "token=***"}
    assert quoted["message"] == 'password=***"tail'


def test_text_lines_end_with_the_request_id_and_are_redacted():
    logger, stream = logger_writing(logformat.TextFormatter(logformat.TEXT_FORMAT))
    done = in_request("req-2")
    try:
        logger.error("down: %s", SECRET_URL)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        done()
    logger.error("no request")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("request_id=req-2") and "s3cr" not in lines[0]
    assert lines[1].endswith("failed request_id=req-2") and "Traceback" in lines[2]
    assert lines[-1].endswith(": no request")


def test_gunicorns_access_atoms_become_fields():
    logger, stream = logger_writing(logformat.GunicornAccessFormatter())
    atoms = {
        "h": "127.0.0.1",
        "m": "GET",
        "U": "/ws/tasks/wf/logs",
        "H": "HTTP/1.1",
        "s": "200",
        "b": "12",
        "L": "0.003",
        "a": "curl",
        "{x-request-id}o": "req-3",
    }
    logger.info('%(h)s "%(m)s %(U)s"', atoms)
    line = json.loads(stream.getvalue())
    assert line["message"] == "GET /ws/tasks/wf/logs 200"
    assert (line["client"], line["status"], line["request_id"]) == ("127.0.0.1", "200", "req-3")


@pytest.mark.parametrize(
    "given, kept",
    [
        ("abc-123", True),
        ("0f0e3c4a-91b2-4a57-9d1f-6a1e5a2b3c4d", True),
        ("Root=1-67891233-abcdef012345678912345678", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("has space", False),
        ("line\nbreak", False),
        ('quote"d', False),
        ("-leading-dash", False),
        ("caf\u00e9", False),
    ],
)
def test_a_sane_request_id_is_kept_any_other_replaced(given, kept):
    made = request_id(given)
    assert (made == given) is kept
    if not kept:
        assert len(made) == 32 and int(made, 16) >= 0


def test_the_middleware_answers_the_id_once_and_forgets_it_after_the_body():
    seen = {}

    def app(environ, start_response):
        seen["during"] = requestid.current.get()
        start_response("200 OK", [("X-Request-Id", "from-the-app"), ("Content-Type", "text/plain")])
        return [b"ok"]

    headers = {}

    def start_response(status, response_headers, exc_info=None):
        headers["all"] = response_headers

    body = RequestId(app)({"HTTP_X_REQUEST_ID": "client-id"}, start_response)
    assert b"".join(body) == b"ok"
    body.close()
    assert [v for k, v in headers["all"] if k == "X-Request-Id"] == ["client-id"]
    assert seen["during"] == "client-id" and requestid.current.get() is None
