"""Who may get in, by TASKLOGS_AUTH: the static token (header, or ?access_token= on WebSockets), the
unset default (loopback clients only), `none`; the Origin check; the per-worker and per-client limits
on live tails. The Kubernetes and proxy modes are in test_rbac_access.py."""

import json
import logging

import pytest
import websocket

from testkit import scenarios
from testkit.waiting import wait_for
from testkit.wsclient import TailClient

TOKEN = "s3cret-token-\u00e9"[:12]


@pytest.fixture
def secured(serve):
    return serve(TASKLOGS_AUTH="token", TASKLOGS_API_TOKEN=TOKEN)


def handshake_status(url, **options):
    try:
        websocket.create_connection(url, timeout=5, **options).close()
        return 101
    except websocket.WebSocketBadStatusException as error:
        return error.status_code


def test_rest_needs_the_token(secured, kube, task_id):
    app, _ = secured
    client = app.test_client()
    scenarios.workflow(kube, task_id)
    response = client.get(f"/api/v1/tasks/{task_id}/logs")
    assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        client.get(
            f"/api/v1/tasks/{task_id}/logs", headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    assert client.get(f"/api/v1/tasks/{task_id}/logs?access_token={TOKEN}").status_code == 401, (
        "REST takes the token in the header only (query strings end up in logs and browser history)"
    )
    response = client.get(
        f"/api/v1/tasks/{task_id}/logs", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200 and response.get_json()["task_id"] == task_id


def test_a_proxy_user_header_does_not_replace_the_token(secured, kube, task_id):
    """The finding: `X-Forwarded-User: mallory` and no token was a 200 from any peer."""
    app, _ = secured
    scenarios.workflow(kube, task_id)
    response = app.test_client().get(
        f"/api/v1/tasks/{task_id}/logs", headers={"X-Forwarded-User": "mallory"}
    )
    assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"


def test_unset_mode_serves_loopback_clients_only(serve, kube, task_id):
    app, _ = serve()
    scenarios.workflow(kube, task_id)
    client = app.test_client()
    assert client.get(f"/api/v1/tasks/{task_id}/logs").status_code == 200, "127.0.0.1: served"
    response = client.get(
        f"/api/v1/tasks/{task_id}/logs", environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert response.status_code == 401 and "TASKLOGS_AUTH" in response.get_json()["message"]
    forged = client.get(
        f"/api/v1/tasks/{task_id}/logs",
        headers={"X-Forwarded-For": "127.0.0.1"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert forged.status_code == 401, "X-Forwarded-For from an untrusted peer proves nothing"


def test_unset_mode_behind_a_trusted_proxy_judges_the_forwarded_client(serve, kube, task_id):
    app, _ = serve(TASKLOGS_TRUSTED_PROXIES="127.0.0.1")
    scenarios.workflow(kube, task_id)
    response = app.test_client().get(
        f"/api/v1/tasks/{task_id}/logs", headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert response.status_code == 401, "a loopback proxy does not make the world local"


def test_none_mode_is_open_and_says_so_at_start_up(serve, kube, task_id, caplog):
    with caplog.at_level(logging.WARNING, logger="tasklogs"):
        app, _ = serve(TASKLOGS_AUTH="none")
    assert any("TASKLOGS_AUTH=none" in r.getMessage() for r in caplog.records)
    scenarios.workflow(kube, task_id)
    response = app.test_client().get(
        f"/api/v1/tasks/{task_id}/logs", environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert response.status_code == 200


def test_bad_settings_stop_start_up_naming_the_variable(database_url, kube_adapter):
    from tasklogs.config import ConfigError
    from testkit.apps import make_app

    with pytest.raises(ConfigError, match="TASKLOGS_API_TOKEN"):
        make_app(database_url, kube_adapter, TASKLOGS_AUTH="token")
    with pytest.raises(ConfigError, match="TASKLOGS_TRUSTED_PROXIES"):
        make_app(database_url, kube_adapter, TASKLOGS_AUTH="proxy")
    with pytest.raises(ConfigError, match="TASKLOGS_PROXY_FIX"):
        make_app(database_url, kube_adapter, TASKLOGS_PROXY_FIX="1")


def test_health_probes_need_no_token(secured):
    app, _ = secured
    assert app.test_client().get("/healthz").status_code == 200


def test_websocket_token_in_query_or_header(secured, kube, task_id):
    _, live = secured
    scenarios.workflow(kube, task_id)
    url = live.ws_url(f"/ws/tasks/{task_id}/logs")
    assert handshake_status(url) == 401
    assert handshake_status(url + "?access_token=nope") == 401
    assert TailClient(url + f"?access_token={TOKEN}").frame()["type"] == "snapshot"
    assert TailClient(url, header=[f"Authorization: Bearer {TOKEN}"]).frame()["type"] == "snapshot"


def test_websocket_origin_check(serve, kube, task_id):
    _, live = serve(TASKLOGS_ALLOWED_ORIGINS=("https://ui.example.com",))
    scenarios.workflow(kube, task_id)
    url = live.ws_url(f"/ws/tasks/{task_id}/logs")
    assert handshake_status(url, origin="https://evil.example.net") == 403
    assert TailClient(url, origin="https://ui.example.com").frame()["type"] == "snapshot"
    assert TailClient(url, suppress_origin=True).frame()["type"] == "snapshot", (
        "non-browser clients pass"
    )


def test_default_origin_policy_is_same_origin(live, kube, task_id):
    scenarios.workflow(kube, task_id)
    url = live.ws_url(f"/ws/tasks/{task_id}/logs")
    assert handshake_status(url, origin="https://evil.example.net") == 403
    assert TailClient(url, origin=f"http://127.0.0.1:{live.port}").frame()["type"] == "snapshot"
    assert handshake_status(url, origin=f"https://127.0.0.1:{live.port}") == 403, (
        "same host and port, other scheme: another origin"
    )
    assert handshake_status(url, origin="http://127.0.0.1") == 403, "port 80 is another origin"
    assert handshake_status(url, origin="null") == 403


def test_same_origin_takes_the_scheme_from_a_trusted_proxy_only(serve, kube, task_id):
    _, live = serve(TASKLOGS_TRUSTED_PROXIES="127.0.0.1")
    scenarios.workflow(kube, task_id)
    url = live.ws_url(f"/ws/tasks/{task_id}/logs")
    https = ["X-Forwarded-Proto: https"]
    origin = f"https://127.0.0.1:{live.port}"
    assert TailClient(url, origin=origin, header=https).frame()["type"] == "snapshot"
    assert handshake_status(url, origin=f"http://127.0.0.1:{live.port}", header=https) == 403, (
        "an https service refuses an http page"
    )
    _, untrusting = serve(TASKLOGS_TRUSTED_PROXIES="10.0.0.0/8")
    url = untrusting.ws_url(f"/ws/tasks/{task_id}/logs")
    assert (
        handshake_status(url, origin=f"https://127.0.0.1:{untrusting.port}", header=https) == 403
    ), "X-Forwarded-Proto from an untrusted peer does not make the service https"


def test_tail_limits_per_worker_and_per_client(serve, kube, task_id):
    _, live = serve(TASKLOGS_MAX_TAILS=3, TASKLOGS_MAX_TAILS_PER_CLIENT=2)
    scenarios.workflow(kube, task_id)
    url = live.ws_url(f"/ws/tasks/{task_id}/logs")
    first, second = TailClient(url), TailClient(url)
    first.frame(), second.frame()
    try:
        websocket.create_connection(url, timeout=5)
        raise AssertionError("a third tail from one client must be refused")
    except websocket.WebSocketBadStatusException as error:
        assert error.status_code == 429
        assert json.loads(error.resp_body)["error"] == "too_many_connections_from_client"
    first.close()
    assert wait_for(lambda: handshake_status(url) == 101), "a freed slot can be used again"


def test_oversized_client_message_closes_with_1009(serve, kube, task_id):
    _, live = serve(TASKLOGS_WS_MAX_MESSAGE=64)
    scenarios.workflow(kube, task_id)
    client = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
    client.frame()
    client.ws.send("x" * 1000)
    while client.frame() is not None:
        pass
    assert client.close_code == 1009


def test_idle_tail_is_closed_with_1001(serve, kube, task_id):
    _, live = serve(TASKLOGS_WS_IDLE_TIMEOUT=0.5)
    scenarios.workflow(kube, task_id)
    client = TailClient(live.ws_url(f"/ws/tasks/{task_id}/logs"))
    frames = client.rest()
    assert (
        frames[0]["type"] == "snapshot"
        and client.close_code == 1001
        and "cursor" in client.close_reason
    )
