"""The app under test: bound to a test database and a Kubernetes adapter, and served on a live port."""

import threading

from tasklogs import create_app
from tasklogs.extensions import db

TEST_SETTINGS = {
    "TESTING": True,
    "TASKLOGS_POLL_INTERVAL": 0.1,
    "TASKLOGS_DB_POOL_SIZE": 5,
    "TASKLOGS_DB_POOL_TIMEOUT": 2,
    "TASKLOGS_CAPTURE_LINGER": 0.3,
    "TASKLOGS_JOURNAL_INTERVAL": 0.05,
}


def make_app(database_url, kube_adapter=None, **settings):
    """The app with the tests' quick settings, overridden by `settings`."""
    return create_app(
        {"DATABASE_URL": database_url, **TEST_SETTINGS, **settings}, kube=kube_adapter
    )


def dispose(app) -> None:
    """Stop the app's engine (its threads) and close its database connections."""
    app.extensions["tasklogs"].close()
    with app.app_context():
        db.engine.dispose()


class LiveServer:
    """The app served by werkzeug's threaded server (flask-sock's 'werkzeug' mode) on a free port."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
