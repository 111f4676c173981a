"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`, or `flask --app wsgi <command>`."""
import logging
import os

from tasklogs import create_app

logging.basicConfig(level=os.environ.get("TASKLOGS_LOG_LEVEL", "INFO"),
                    format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")

app = create_app()
