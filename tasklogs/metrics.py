"""The service's Prometheus metrics: every metric object, and the places that show them.

The modules that know an event call the objects here (the journal writer its commits, the follow captures
their streams, the adapter its requests, the tails, the service its degraded answers, `prune`); nothing
else defines a metric. Labels are of bounded cardinality: a route is its URL rule, never a task's name;
methods, statuses, close codes and Kubernetes verbs and resources are closed sets.

Under gunicorn the workers are separate processes: `gunicorn.conf.py` points `PROMETHEUS_MULTIPROC_DIR`
at an emptied directory before any worker imports this module, so every worker writes its values there
and `/metrics`, whichever worker answers it, adds them up (gauges of live processes only, `livesum`).
Outside gunicorn (the collector, `flask run`, the tests) the values live in the process.
"""

import os
import time

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "tasklogs_http_requests_total",
    "HTTP requests answered, WebSocket tails included (status 101), by URL rule, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "tasklogs_http_request_duration_seconds",
    "Seconds from a REST request's arrival to its body's last byte, by URL rule (WebSockets not).",
    ["route"],
)
TAILS_OPEN = Gauge("tasklogs_tails_open", "WebSocket tails open now.", multiprocess_mode="livesum")
TAIL_CLOSES = Counter(
    "tasklogs_tail_closes_total",
    "WebSocket tails ended, by close code (the service's, or the client's when it closed first).",
    ["code"],
)
CAPTURE_STREAMS_OPEN = Gauge(
    "tasklogs_capture_streams_open",
    "Pod log streams the captures hold open to the Kubernetes API now.",
    multiprocess_mode="livesum",
)
CAPTURE_LAG = Histogram(
    "tasklogs_capture_lag_seconds",
    "Seconds from the kubelet's timestamp of a committed batch's oldest line to its commit, one "
    "observation per log per commit.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
)
JOURNAL_COMMIT = Histogram(
    "tasklogs_journal_commit_seconds",
    "Seconds one journal commit (every feed's unsaved text in one transaction) took.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
KUBE_REQUESTS = Counter(
    "tasklogs_kube_requests_total",
    "Requests to the Kubernetes API by verb, resource and HTTP status (`error`: no answer).",
    ["verb", "resource", "code"],
)
DEGRADED_RESPONSES = Counter(
    "tasklogs_degraded_responses_total",
    "Answers made without one of the stores (`database`: from Kubernetes alone; `kubernetes`: stored "
    "logs only).",
    ["store"],
)
UNSAVED_BYTES = Gauge(
    "tasklogs_unsaved_bytes",
    "Captured text not yet committed, in characters (bytes for ASCII logs).",
    multiprocess_mode="livesum",
)
STORED_BYTES = Counter(
    "tasklogs_stored_bytes_total",
    "Bytes of log text (UTF-8) the captures committed to the journal (a REST read's own "
    "refresh of a task nobody captures is not counted).",
)
PRUNED_TASKS = Counter("tasklogs_pruned_tasks_total", "Tasks whose logs `prune` removed.")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route of a request no URL rule matched (a 404 or 405)
ROUTE = "tasklogs.route"  # where the WSGI environ keeps the request's URL rule


def request_done(environ: dict, status: int | None, seconds: float, websocket: bool) -> None:
    """Count one answered request; a REST request's duration too."""
    route = environ.get(ROUTE) or UNMATCHED
    method = environ.get("REQUEST_METHOD", "")
    HTTP_REQUESTS.labels(
        route, method if method in METHODS else "other", str(status or "none")
    ).inc()
    if not websocket:
        HTTP_DURATION.labels(route).observe(seconds)


def tail_closed(code: int) -> None:
    """Count a tail's end by close code: the standard ones (1000-1015) and the service's 4xxx by
    number, any other a client chose as `other`."""
    TAIL_CLOSES.labels(str(code) if 1000 <= code <= 1015 or code == 4008 else "other").inc()


def kube_request(verb: str, resource: str, code: int | str) -> None:
    KUBE_REQUESTS.labels(verb, resource, str(code)).inc()


def degraded(store: str) -> None:
    DEGRADED_RESPONSES.labels(store).inc()


def committed(stamps: list[int], stored_bytes: int, now: float | None = None) -> None:
    """A log's run of pages was committed: its bytes, and the lag of its oldest line (kubelet
    timestamps, nanoseconds since the epoch)."""
    STORED_BYTES.inc(stored_bytes)
    if stamps:
        now = time.time() if now is None else now
        CAPTURE_LAG.observe(max(0.0, now - min(stamps) / 1e9))


def registry() -> CollectorRegistry:
    """What a scrape shows: every worker's values under gunicorn, else this process's."""
    if not os.environ.get(MULTIPROCESS_DIR):
        return REGISTRY
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated)
    return aggregated


def exposition() -> bytes:
    return generate_latest(registry())


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    return Response(exposition(), mimetype=CONTENT_TYPE_LATEST)


def register(app) -> None:
    """Serve `/metrics` and label every request with its URL rule."""
    from flask import request

    @app.before_request
    def note_route():
        request.environ[ROUTE] = request.url_rule.rule if request.url_rule else UNMATCHED

    app.register_blueprint(bp)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """The collector's own `/metrics` on `port` (a thread; a greenlet under gevent)."""
    start_http_server(port, addr=address, registry=registry())
