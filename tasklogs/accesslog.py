"""One access line per REST read and per tail, on the logger `tasklogs.access`.

The logs blueprint marks its requests (`note`) with what it learns: the caller's identity, the
namespace and task, a tail's close code. `AccessLog`, a WSGI middleware, writes the line when the
response is over: when a streamed REST body has been sent (or the client went away) and when a
WebSocket's handler returns. Paths are written without their query string, so a WebSocket's
`?access_token=` never lands in a log, and nothing else here ever sees a token.
"""

import json
import logging
import re
import time

log = logging.getLogger("tasklogs.access")

ENTRY = "tasklogs.access"
FIELDS = ("user", "namespace", "task", "close")


def note(environ: dict, **fields) -> None:
    """Record what the line should say about this request (and mark it for the access log)."""
    environ.setdefault(ENTRY, {}).update(fields)


class AccessLog:
    """WSGI middleware writing the access line of each noted request once its response is over."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started, seen = time.monotonic(), {}

        def start(status, headers, exc_info=None):
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, start)
        except BaseException:  # flask-sock ends a WebSocket under gunicorn by raising StopIteration
            write_line(environ, seen.get("status", 500), None, started)
            raise
        if ENTRY not in environ:
            return body
        return CountedBody(
            body, lambda sent: write_line(environ, seen.get("status"), sent, started)
        )


class CountedBody:
    """A response body that counts the bytes handed to the server and reports them when closed."""

    def __init__(self, body, done):
        self._body, self._done, self.sent = body, done, 0

    def __iter__(self):
        for chunk in self._body:
            self.sent += len(chunk)
            yield chunk

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self.sent)


def write_line(environ: dict, status: int | None, sent: int | None, started: float) -> None:
    entry = environ.get(ENTRY)
    if entry is None:
        return
    websocket = _websocket_socket(environ)
    if websocket is not None and "close" in entry:
        status, sent = 101, getattr(websocket, "sent", sent)
    fields = {
        "user": entry.get("user", "-"),
        "client": environ.get("REMOTE_ADDR", "-"),
        "method": environ.get("REQUEST_METHOD", "-"),
        "path": environ.get("PATH_INFO", "-"),
        "namespace": entry.get("namespace", "-"),
        "task": entry.get("task", "-"),
        "status": status if status is not None else "-",
        "bytes": sent if sent is not None else "-",
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if "close" in entry:
        fields["close"] = entry["close"]
    line = " ".join(f"{key}={_value(value)}" for key, value in fields.items())
    log.info(line, extra={"access": fields})


def _value(value) -> str:
    """Plain when it can be, else JSON-quoted: a user name from a header cannot forge a field or a line."""
    text = str(value)
    return text if re.fullmatch(r"[\w.:/@()+-]+", text) else json.dumps(text)


def _websocket_socket(environ: dict):
    return environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
