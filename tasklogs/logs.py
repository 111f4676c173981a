"""The `logs` blueprint: REST for a whole log, WebSocket for a live tail. Routes only parse, call the
service and shape the response."""

import logging

from flask import Blueprint, Response, jsonify, request, stream_with_context
from simple_websocket import ConnectionClosed

from . import access, accesslog, render, service, websocket
from .bootstrap import services
from .errors import InvalidRequest, TasklogsError
from .extensions import sock
from .linequery import LINE_PARAMETERS, parse_line_query
from .search import SEARCH_PARAMETERS, parse_search_query

bp = Blueprint("logs", __name__)
log = logging.getLogger(__name__)

FORMATS = ("json", "text", "ndjson")
REST_PARAMETERS = {"format", "pod", "container", "merge", *LINE_PARAMETERS}
WS_PARAMETERS = {"cursor", "access_token", "tail", "format"}
WS_FORMATS = ("append", "lines")
LIST_PARAMETERS = {"phase", "prefix", "limit", "cursor"}


@bp.before_request
def admit():
    """Authentication for every route (each leaves an access line); for WebSockets also the Origin,
    a free slot, and safe writes. Authorization needs the namespace: each route calls
    `access.authorize` once its parameters are checked."""
    settings = services().settings
    accesslog.note(request.environ, task=(request.view_args or {}).get("task_id", "-"))
    access.authenticate(settings.access)
    if access.is_websocket():
        access.check_origin(settings.access)
        access.take_tail_slot(services().slots)
        websocket.serialize_writes(request.environ, settings.tails.send_timeout)


@bp.teardown_request
def give_back(exception=None):
    access.give_back_tail_slot(services().slots)


@bp.get("/api/v1/tasks/<task_id>/logs", defaults={"namespace": None})
@bp.get("/api/v1/namespaces/<namespace>/tasks/<task_id>/logs")
def task_logs(task_id: str, namespace: str | None):
    _check_parameters(REST_PARAMETERS)
    output = request.args.get("format", "json")
    if output not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}, got {output[:40]!r}")
    merge = request.args.get("merge")
    if merge is not None and (merge != "time" or output != "ndjson"):
        raise InvalidRequest("merge=time is the only merge, and it needs format=ndjson")
    query = parse_line_query(request.args)
    task = service.task_ref(services(), namespace, task_id)
    access.authorize(task.namespace)
    view = service.get_task_logs(services(), task)
    if "pod" in request.args or "container" in request.args:
        view = service.narrowed(view, request.args.get("pod"), request.args.get("container"))
    length = render.text_length(view, query) if output == "text" else None
    body, mimetype = {
        "json": (lambda: render.json_body(view, query), "application/json"),
        "text": (lambda: render.text_body(view, query, length), "text/plain"),
        "ndjson": (
            lambda: render.ndjson_body(view, query, merge == "time"),
            "application/x-ndjson",
        ),
    }[output]
    response = Response(stream_with_context(body()), mimetype=mimetype)
    if length is not None:  # a download's progress and size, before a byte of it is read
        response.headers["Content-Length"] = str(length)
    if output == "text":
        response.headers["Content-Disposition"] = f'attachment; filename="{view.task_id}.log"'
    if view.degraded:
        response.headers[service.DEGRADED_HEADER] = view.degraded
    return response


@bp.get("/api/v1/tasks", defaults={"namespace": None})
@bp.get("/api/v1/namespaces/<namespace>/tasks")
def list_tasks(namespace: str | None):
    _check_parameters(LIST_PARAMETERS)
    if namespace is not None:
        access.authorize(service.served_namespace(services(), namespace))
    page = service.list_tasks(
        services(),
        namespace,
        phase=request.args.get("phase") or None,
        prefix=request.args.get("prefix") or None,
        limit=_bounded_int("limit", 1, 500, 50),
        cursor=request.args.get("cursor") or None,
        readable=access.readable,
    )
    return jsonify(page)


@bp.get("/api/v1/search")
def search_lines():
    _check_parameters(SEARCH_PARAMETERS)
    found = service.search_lines(
        services(), parse_search_query(request.args), readable=access.readable
    )
    return Response(render.search_body(found), mimetype="application/x-ndjson")


def tail_task_logs(ws, task_id: str, namespace: str | None):
    try:
        _check_parameters(WS_PARAMETERS)
        output = request.args.get("format", "append")
        if output not in WS_FORMATS:
            raise InvalidRequest(
                f"format must be one of {', '.join(WS_FORMATS)}, got {output[:40]!r}"
            )
        tail_lines = (
            parse_line_query({"tail": request.args["tail"]}).tail
            if "tail" in request.args
            else None
        )
        task = service.task_ref(services(), namespace, task_id)
        access.authorize(task.namespace)
        with service.open_tail(
            services(), task, request.args.get("cursor"), tail_lines, output == "lines"
        ) as tail:
            websocket.on_disconnect(ws, tail.stop)
            for frame in tail.frames():
                websocket.send_frame(ws, frame)
            websocket.close(ws, tail.close_code, tail.close_reason)
    except TasklogsError as error:
        websocket.send_error(ws, error)
    except ConnectionClosed:
        websocket.note_close(ws)
    except Exception:  # noqa: BLE001 - the client gets a close code, the log gets the traceback
        log.exception("tail of %s failed", task_id)
        websocket.send_error(ws, TasklogsError("internal error"))


sock.route("/ws/tasks/<task_id>/logs", bp=bp, defaults={"namespace": None})(tail_task_logs)
sock.route(
    "/ws/namespaces/<namespace>/tasks/<task_id>/logs", bp=bp, endpoint="tail_namespaced_logs"
)(tail_task_logs)


def _bounded_int(name: str, low: int, high: int, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:  # "²".isdigit()
        raise InvalidRequest(
            f"{name} must be a whole number from {low} to {high}, got {raw[:40]!r}"
        )
    return int(raw)


def _check_parameters(allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise InvalidRequest(
            f"unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
