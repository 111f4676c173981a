"""The `logs` blueprint: REST for a whole log, WebSocket for a live tail. Routes only parse, call the
service and shape the response."""

import json
import logging

from flask import Blueprint, Response, request, stream_with_context
from simple_websocket import ConnectionClosed

from . import access, service, websocket
from .bootstrap import services
from .errors import InvalidRequest, TasklogsError
from .extensions import sock

bp = Blueprint("logs", __name__)
log = logging.getLogger(__name__)

REST_PARAMETERS = {"format", "pod", "container"}
WS_PARAMETERS = {"cursor", "access_token"}


@bp.before_request
def admit():
    """Authentication for every route; for WebSockets also the Origin, a free slot, and safe writes."""
    settings = services().settings
    access.authenticate(settings.access)
    if access.is_websocket():
        access.check_origin(settings.access)
        access.take_tail_slot(services().slots)
        websocket.serialize_writes(request.environ, settings.tails.send_timeout)


@bp.teardown_request
def give_back(exception=None):
    access.give_back_tail_slot(services().slots)


@bp.get("/api/v1/tasks/<task_id>/logs")
def task_logs(task_id: str):
    _check_parameters(REST_PARAMETERS)
    output = request.args.get("format", "json")
    if output not in ("json", "text"):
        raise InvalidRequest("format must be 'json' or 'text'")
    view = service.get_task_logs(services(), task_id)
    if "pod" in request.args or "container" in request.args:
        view = service.narrowed(view, request.args.get("pod"), request.args.get("container"))
    if output == "text":
        response = Response(stream_with_context(_text_body(view)), mimetype="text/plain")
        response.headers["Content-Disposition"] = f'attachment; filename="{view.task_id}.log"'
    else:
        response = Response(stream_with_context(_json_body(view)), mimetype="application/json")
    if view.degraded:
        response.headers[service.DEGRADED_HEADER] = view.degraded
    return response


@sock.route("/ws/tasks/<task_id>/logs", bp=bp)
def tail_task_logs(ws, task_id: str):
    try:
        _check_parameters(WS_PARAMETERS)
        with service.open_tail(services(), task_id, request.args.get("cursor")) as tail:
            websocket.on_disconnect(ws, tail.stop)
            for frame in tail.frames():
                websocket.send_frame(ws, frame)
            websocket.close(ws, tail.close_code, tail.close_reason)
    except TasklogsError as error:
        websocket.send_error(ws, error)
    except ConnectionClosed:
        pass
    except Exception:  # noqa: BLE001 - the client gets a close code, the log gets the traceback
        log.exception("tail of %s failed", task_id)
        websocket.send_error(ws, TasklogsError("internal error"))


def _check_parameters(allowed: set[str]) -> None:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise InvalidRequest(
            f"unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _json_body(view: service.TaskView):
    head = {
        "task_id": view.task_id,
        "phase": view.phase,
        "source": view.source,
        "complete": view.complete,
    }
    yield json.dumps(head)[:-1] + ', "logs": ['
    for index, entry in enumerate(view.entries):
        fields = {**entry.log.fields(), "phase": entry.phase}
        if entry.note:
            fields["note"] = entry.note
        yield ("," if index else "") + json.dumps(fields)[:-1] + ', "logs": "'
        for piece in entry.read(0):
            yield json.dumps(piece, ensure_ascii=False)[1:-1]
        yield '"}'
    yield "]}"


def _text_body(view: service.TaskView):
    several = len(view.entries) > 1
    for entry in view.entries:
        if several:
            yield f"==> {entry.log.pod} ({entry.log.node}) <==\n"
        yield from entry.read(0)
        if several:
            yield "\n"
