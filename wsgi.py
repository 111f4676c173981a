"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`, or `flask --app wsgi <command>`.

`flask --app wsgi collect` runs cooperatively under gevent, as the web workers do: its hundreds of
follow streams are greenlets on one thread instead of OS threads taking turns at the interpreter lock."""

import sys

if "collect" in sys.argv[1:]:
    from gevent import monkey

    monkey.patch_all()
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

from tasklogs import create_app, logformat  # noqa: E402 - after the patching above
from tasklogs.config import setting_value  # noqa: E402

# TASKLOGS_LOG_FORMAT text or json; no password or token in any log line, tracebacks included
logformat.configure(setting_value("TASKLOGS_LOG_LEVEL"), setting_value("TASKLOGS_LOG_FORMAT"))

# `flask --app wsgi [command] --help` only lists: no database touched, no file created
app = create_app(for_help=bool({"--help", "-h"} & set(sys.argv[1:])))
