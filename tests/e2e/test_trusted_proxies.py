"""The X-Forwarded-For rotation finding, through gunicorn with the gevent worker: one client that
writes a new X-Forwarded-For on every WebSocket cannot take more than its per-client tail slots, and
honest clients still get in."""

import json
import socket
import uuid

import pytest
import websocket

from testkit import scenarios

pytestmark = pytest.mark.e2e


def handshake(url, forwarded_for=None, source=None, token=None):
    """The handshake's status (101, or the refusal's code) and the open connection, if any."""
    sock = None
    if source is not None:  # another loopback address: another client, as far as the socket goes
        sock = socket.create_connection(
            ("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])), 5, (source, 0)
        )
    header = [f"X-Forwarded-For: {forwarded_for}"] if forwarded_for else []
    header += [f"Authorization: Bearer {token}"] if token else []
    try:
        ws = websocket.create_connection(
            url, timeout=5, header=header, socket=sock, suppress_origin=True
        )
        return 101, ws
    except websocket.WebSocketBadStatusException as error:
        return error.status_code, json.loads(error.resp_body)["error"]


def rotated():
    return f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def test_a_direct_client_rotating_x_forwarded_for_is_still_one_client(gunicorn, kube, task_id):
    server = gunicorn(TASKLOGS_MAX_TAILS_PER_CLIENT=2, TASKLOGS_TRUSTED_PROXIES="10.0.0.0/8")
    scenarios.workflow(kube, task_id)
    url = server.url(f"/ws/tasks/{task_id}/logs", "ws")
    held = [handshake(url, rotated()) for _ in range(2)]
    assert [status for status, _ in held] == [101, 101]
    assert handshake(url, rotated()) == (429, "too_many_connections_from_client"), (
        "the header of a peer that is not a trusted proxy does not make a new client"
    )
    status, honest = handshake(url, source="127.0.0.2")
    assert status == 101, "a client from another address still gets in"
    for _, ws in [*held, (status, honest)]:
        ws.close()


def test_behind_a_trusted_proxy_the_forged_part_of_the_header_is_ignored(gunicorn, kube, task_id):
    """The proxy (here: the test, from 127.0.0.1) appends the address it saw; what the client wrote
    before that is the client's own and changes nothing."""
    server = gunicorn(
        TASKLOGS_MAX_TAILS_PER_CLIENT=2,
        TASKLOGS_TRUSTED_PROXIES="127.0.0.1",
        TASKLOGS_AUTH="token",  # one shared token: the slots go by address
        TASKLOGS_API_TOKEN="shared",
    )
    scenarios.workflow(kube, task_id)
    url = server.url(f"/ws/tasks/{task_id}/logs", "ws")
    held = [handshake(url, f"{rotated()}, 203.0.113.66", token="shared") for _ in range(2)]
    assert [status for status, _ in held] == [101, 101]
    assert handshake(url, f"{rotated()}, 203.0.113.66", token="shared") == (
        429,
        "too_many_connections_from_client",
    )
    status, honest = handshake(url, "203.0.113.5", token="shared")
    assert status == 101, "another client behind the same proxy still gets in"
    for _, ws in [*held, (status, honest)]:
        ws.close()
