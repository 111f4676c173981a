"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`, or `flask --app wsgi <command>`.

`flask --app wsgi collect` runs cooperatively under gevent, as the web workers do: its hundreds of
follow streams are greenlets on one thread instead of OS threads taking turns at the interpreter lock."""

import logging
import os
import sys

if "collect" in sys.argv[1:]:
    from gevent import monkey

    monkey.patch_all()
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

from tasklogs import create_app  # noqa: E402 - after the patching above
from tasklogs.redaction import install as redact_logs  # noqa: E402

logging.basicConfig(
    level=os.environ.get("TASKLOGS_LOG_LEVEL", "INFO"),
    format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
)
redact_logs()  # no password or token in any log line, tracebacks included

app = create_app()
