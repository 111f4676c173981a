"""Secrets never leave in a message: passwords in URLs, secret query parameters, bearer tokens.

`redact` is applied to every `TasklogsError` message (so to every JSON error body and every log line that
quotes one), to configuration errors, and by `RedactingFormatter` to whole log records, tracebacks
included. It errs on the side of hiding: a malformed URL whose password holds `@`, `/` or `#` is hidden
up to its last `@`. A setting that is a secret itself (`TASKLOGS_API_TOKEN`) is never quoted at all
(`config.Setting.shown`).
"""

import logging
import re

HIDDEN = "***"

# user:password@ with or without a scheme; the password runs to the last @ of the token (`scheme://user@`
# alone has none).
_URL_PASSWORD = re.compile(
    r"(?P<head>(?:[A-Za-z][A-Za-z0-9+.-]*://)?[^\s:/?#@'\"]*):(?P<password>(?!//)[^\s'\"]*)@"
)
# libpq and URL query parameters that carry secrets (`?password=`, `sslpassword=`, a WebSocket's
# `access_token=`).
_SECRET_PARAMETER = re.compile(
    r"(?i)\b(?P<name>password|sslpassword|access_token|token)=(?P<value>[^&\s'\"]+)"
)
# A credential after "Bearer": 8 characters or more with a digit or punctuation in them (hex, base64, JWT),
# or 20 letters, so that prose ("a bearer token is required", "Bearer authentication") stays as it is.
_BEARER = re.compile(
    r"(?i)\b(?P<scheme>bearer)\s+"
    r"(?P<token>(?=[A-Za-z0-9._~+/=-]{8})[A-Za-z]*[0-9._~+/=-][A-Za-z0-9._~+/=-]*|[A-Za-z]{20,})"
)


def redact_url(url: str) -> str:
    """The URL with its password and secret query parameters replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{HIDDEN}@", url)
    return _SECRET_PARAMETER.sub(lambda m: f"{m['name']}={HIDDEN}", text)


def redact(text: str) -> str:
    """`text` with URL passwords, secret parameters and bearer tokens hidden."""
    return _BEARER.sub(lambda m: f"{m['scheme']} {HIDDEN}", redact_url(text))


class RedactingFormatter(logging.Formatter):
    """A Formatter whose whole output (message, arguments, traceback) goes through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def install(handlers: list[logging.Handler] | None = None) -> None:
    """Make these handlers (default: the root logger's) redact, keeping each one's format."""
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            current = handler.formatter or logging.Formatter()
            formatter = RedactingFormatter(current._fmt, current.datefmt)
            handler.setFormatter(formatter)
