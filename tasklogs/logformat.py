"""How log lines are written: `TASKLOGS_LOG_FORMAT=text` (the default) or `json`, one object per line.

Both formats carry the id of the request under way (`requestid.current`, or a record's own
`request_id`) and both are redacted (`redaction.redact`): the text formatter redacts its whole line, the
JSON one every string it is about to serialize, so that hiding a secret can never break the JSON. The
app and the collector configure their handlers with `configure` (wsgi.py); gunicorn's error and access
logs get the same formatters through `format_gunicorn` (gunicorn.conf.py's logger class).
"""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from . import requestid
from .redaction import RedactingFormatter, redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
ACCESS_LOGGER = "tasklogs.access"
# gunicorn's access atoms (`access_log_format`) as the JSON access line's fields
GUNICORN_ATOMS = {
    "client": "h",
    "method": "m",
    "path": "U",
    "protocol": "H",
    "status": "s",
    "bytes": "b",
    "duration_s": "L",
    "user_agent": "a",
    "request_id": "{x-request-id}o",
}


def request_id_of(record: logging.LogRecord) -> str | None:
    return getattr(record, "request_id", None) or requestid.current.get()


class TextFormatter(RedactingFormatter):
    """Redacted text lines, ending in `request_id=...` while a request is under way (the access line
    holds it among its own fields)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = request_id_of(record)
        if rid and record.name != ACCESS_LOGGER and "\n" not in line:
            return f"{line} request_id={rid}"
        if rid and record.name != ACCESS_LOGGER:  # a traceback: the id goes on the first line
            first, rest = line.split("\n", 1)
            return f"{first} request_id={rid}\n{rest}"
        return line


class JsonFormatter(_JsonFormatter):
    """One redacted JSON object per record: time, level, process, logger, message, `request_id`,
    `exc_info`, and whatever the record carries in `extra`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", JSON_NAMES)
        super().__init__(JSON_FIELDS, *args, **kwargs)

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        rid = request_id_of(record)
        if rid:
            log_data["request_id"] = rid

    def process_log_record(self, log_data):
        return _redacted(log_data)


class GunicornAccessFormatter(JsonFormatter):
    """gunicorn's access lines as JSON: its atoms (client, method, path, status, ...) as fields."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args
        if isinstance(atoms, Mapping):
            fields = {name: atoms[atom] for name, atom in GUNICORN_ATOMS.items()}
            record.msg, record.args = f"{fields['method']} {fields['path']} {fields['status']}", ()
            for name, value in fields.items():
                setattr(record, name, value)
        return super().format(record)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of `TASKLOGS_LOG_FORMAT`."""
    return JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT)


def configure(level: str, log_format: str) -> None:
    """The root logger writes to stderr in the chosen format at `level` (replacing any handler)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def format_gunicorn(
    error_handlers: Iterable[logging.Handler],
    access_handlers: Iterable[logging.Handler],
    log_format: str,
) -> None:
    """Give gunicorn's handlers this format: its error lines like the app's, its access lines as JSON
    objects (`json`) or kept in `access_log_format` (`text`) and redacted."""
    for handler in error_handlers:
        current = handler.formatter
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(
                TextFormatter(getattr(current, "_fmt", None), getattr(current, "datefmt", None))
            )
    for handler in access_handlers:
        if log_format == "json":
            handler.setFormatter(GunicornAccessFormatter())
        else:
            handler.setFormatter(RedactingFormatter("%(message)s"))
