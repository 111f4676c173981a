"""Every request gets an `X-Request-Id`: the client's (or its proxy's) when it looks sane, else a new one.

`RequestId`, the outermost WSGI middleware, keeps it in the environ (`ENVIRON`) and in a context
variable for the log lines written while the request is under way (`logformat.RequestIdFilter`), and
answers it in the response's headers. A WebSocket's upgrade response is written by simple-websocket
straight to the socket, so `websocket.SerializedSocket` adds the header there.
"""

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-Id"
ENVIRON = "tasklogs.request_id"
# Bounded and plain: an id that could forge a log field, split a header or grow a log line is replaced.
SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}")

current: ContextVar[str | None] = ContextVar("tasklogs_request_id", default=None)


def request_id(given: str | None) -> str:
    """`given` when it is a sane id (at most 128 letters, digits and `._:=+/-`), else a new uuid4 hex."""
    if given and SANE.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestId:
    """WSGI middleware: the request's id in the environ, the log context and the response headers."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        rid = environ[ENVIRON] = request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = current.set(rid)

        def start(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if k.lower() != HEADER.lower()]
            return start_response(status, [*headers, (HEADER, rid)], exc_info)

        try:
            body = self.app(environ, start)
        except BaseException:  # flask-sock ends a WebSocket under gunicorn by raising StopIteration
            _forget(token)
            raise
        return Body(body, lambda: _forget(token))


def _forget(token) -> None:
    try:
        current.reset(token)
    except ValueError:  # closed from another context than the one that set it
        current.set(None)


class Body:
    """The response body; the request's id leaves the log context when the server closes it."""

    def __init__(self, body, done):
        self._body, self._done = body, done

    def __iter__(self):
        return iter(self._body)

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done()
