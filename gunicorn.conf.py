"""gunicorn settings: the gevent worker, with psycopg2 made cooperative in every worker.

Every value reads an environment variable; a `-b HOST:PORT` (or any flag) on the command line wins,
because gunicorn applies command-line options after this file.

Metrics: the workers are processes, so prometheus-client runs in multiprocess mode. The directory its
values live in (`PROMETHEUS_MULTIPROC_DIR`, else a new one under the temporary directory) is named in
the master before anything imports the client (the logger class's setup is the first code gunicorn
runs after reading this file), inherited by every worker, emptied when the server starts, removed at
exit if it was made here, and a dead worker's live gauges are dropped (`child_exit`).
Logs: `TASKLOGS_LOG_FORMAT` (text or json) for gunicorn's error and access logs too, through the
logger class below."""

import os
import shutil
import tempfile

from gunicorn.glogging import Logger as _GunicornLogger

_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_made_metrics_dir: list[str] = []

bind = os.environ.get("TASKLOGS_BIND", "0.0.0.0:8000")
worker_class = "gevent"
# Without DATABASE_URL (or with SQLite) the service keeps its logs in an SQLite file: one process only.
_sqlite = not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql"))
workers = int(os.environ.get("TASKLOGS_WORKERS") or ("1" if _sqlite else "2"))
# Each open WebSocket holds one connection slot of its worker.
worker_connections = int(os.environ.get("TASKLOGS_WORKER_CONNECTIONS", "2000"))
# A heartbeat, not a request limit: only CPU that blocks the gevent hub this long kills a worker.
timeout = int(os.environ.get("TASKLOGS_WORKER_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("TASKLOGS_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# gunicorn 25.1+ opens a control socket (for `gunicornc`) under $XDG_RUNTIME_DIR or ~/.gunicorn by default:
# a local management interface nobody here uses, and a write to a read-only root filesystem in a pod.
control_socket_disable = True

# The longest request line gunicorn takes (its default is 4094): a tail's ?cursor= of a workflow of 1000
# pods is about 5.5 KB (2 to 4 bytes per log, see tasklogs/cursor.py).
limit_request_line = 8190
accesslog = os.environ.get("TASKLOGS_ACCESS_LOG", "-") or None  # empty: no access log
# gunicorn believes no X-Forwarded-* of its own: the app does, from TASKLOGS_TRUSTED_PROXIES only
# (tasklogs/proxies.py), for the client address and the scheme alike.
forwarded_allow_ips = ""


def post_fork(server, worker):
    """psycopg2 blocks the gevent hub unless it waits through gevent (measured: 5 concurrent 1 s
    queries take 5.3 s on one worker without this, 1.1 s with it)."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


# No query strings in the access log: a WebSocket's ?access_token= must not land in logs. The request id
# is the one the app answered (X-Request-Id: the client's when sane, else a new one).
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s" %({x-request-id}o)s'


class _TasklogsLogger(_GunicornLogger):
    """gunicorn's logs in TASKLOGS_LOG_FORMAT, redacted like the app's (secrets out of tracebacks too)."""

    def setup(self, cfg):
        _name_metrics_directory()  # before the import below brings in prometheus-client
        super().setup(cfg)
        from tasklogs import logformat
        from tasklogs.config import setting_value

        logformat.format_gunicorn(
            self.error_log.handlers, self.access_log.handlers, setting_value("TASKLOGS_LOG_FORMAT")
        )


logger_class = _TasklogsLogger


def _name_metrics_directory() -> None:
    if not os.environ.get(_METRICS_DIR):
        os.environ[_METRICS_DIR] = tempfile.mkdtemp(prefix="tasklogs-metrics-")
        _made_metrics_dir.append(os.environ[_METRICS_DIR])
    os.makedirs(os.environ[_METRICS_DIR], exist_ok=True)


def on_starting(server):
    """Values of an earlier run must not be added to this one's."""
    directory = os.environ[_METRICS_DIR]
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def on_exit(server):
    for directory in _made_metrics_dir:
        shutil.rmtree(directory, ignore_errors=True)


def child_exit(server, worker):
    """A worker that exited stops counting in the live gauges (tails open, streams, unsaved text)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Keep full garbage collections off the hot path: with 1000 WebSockets a worker holds many
    long-lived objects, and each full collection stalled it for ~200 ms (measured with bench's
    --gc-probe: p99 line latency 311 ms with the defaults, 165 ms with these settings)."""
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def worker_exit(server, worker):
    """On a graceful stop, commit what the worker captured but had not yet written, and free its leases
    so another worker or replica takes its tasks over at once (its tails' clients resume with cursors)."""
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("tasklogs")
    if services is not None:
        services.close()
