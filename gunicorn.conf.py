"""gunicorn settings: the gevent worker, with psycopg2 made cooperative in every worker.

Every value reads an environment variable; a `-b HOST:PORT` (or any flag) on the command line wins,
because gunicorn applies command-line options after this file."""

import os

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
accesslog = os.environ.get("TASKLOGS_ACCESS_LOG", "-") or None  # empty: no access log
# gunicorn believes no X-Forwarded-* of its own: the app does, from TASKLOGS_TRUSTED_PROXIES only
# (tasklogs/proxies.py), for the client address and the scheme alike.
forwarded_allow_ips = ""


def post_fork(server, worker):
    """psycopg2 blocks the gevent hub unless it waits through gevent (measured: 5 concurrent 1 s
    queries take 5.3 s on one worker without this, 1.1 s with it)."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


# No query strings in the access log: a WebSocket's ?access_token= must not land in logs.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"'


def post_worker_init(worker):
    """Keep full garbage collections off the hot path: with 1000 WebSockets a worker holds many
    long-lived objects, and each full collection stalled it for ~200 ms (measured with bench's
    --gc-probe: p99 line latency 311 ms with the defaults, 165 ms with these settings)."""
    import gc
    import logging

    from tasklogs.redaction import install

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # gunicorn's own error log (e.g. "Error handling request" tracebacks) hides secrets as the app's does
    install(logging.getLogger("gunicorn.error").handlers)


def worker_exit(server, worker):
    """On a graceful stop, commit what the worker captured but had not yet written, and free its leases
    so another worker or replica takes its tasks over at once (its tails' clients resume with cursors)."""
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("tasklogs")
    if services is not None:
        services.close()
