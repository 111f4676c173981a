"""TASKLOGS_AUTH=kubernetes and proxy against the fake API server's TokenReview and SubjectAccessReview
(decided from RBAC objects), and the access lines every read leaves."""

import json
import logging
import time

import pytest
import websocket

from testkit import scenarios
from testkit.wsclient import TailClient

ALICE, BOB, CAROL = "alice-token-0001", "bob-token-0002", "carol-token-0003"


@pytest.fixture
def callers(kube):
    """alice may read logs in argo (a RoleBinding), bob is known but may not, carol through a group."""
    kube.add_token(ALICE, "alice", ["devs"])
    kube.add_token(BOB, "bob")
    kube.add_token(CAROL, "carol", ["log-readers"])
    kube.grant_log_reading("User", "alice", "argo")
    kube.grant_log_reading("Group", "log-readers", "argo")
    kube.grant_log_reading("User", "bob", "elsewhere")
    return kube


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_kubernetes_mode_authenticates_and_authorizes(serve, callers, task_id):
    app, _ = serve(TASKLOGS_AUTH="kubernetes")
    scenarios.workflow(callers, task_id)
    client, url = app.test_client(), f"/api/v1/tasks/{task_id}/logs"
    missing = client.get(url)
    assert missing.status_code == 401 and missing.get_json()["error"] == "unauthorized"
    unknown = client.get(url, headers=bearer("not-a-token"))
    assert unknown.status_code == 401 and "TokenReview" in unknown.get_json()["message"]
    assert client.get(url, headers=bearer(ALICE)).status_code == 200
    assert client.get(url, headers=bearer(CAROL)).status_code == 200, "granted through a group"
    denied = client.get(url, headers=bearer(BOB))
    assert denied.status_code == 403 and denied.get_json()["error"] == "forbidden"
    assert "'argo'" in denied.get_json()["message"], "the message names the namespace"


def test_the_reviews_the_fake_saw_are_real_ones(serve, callers, task_id):
    app, _ = serve(TASKLOGS_AUTH="kubernetes")
    scenarios.workflow(callers, task_id)
    callers.reset_requests()
    app.test_client().get(f"/api/v1/tasks/{task_id}/logs", headers=bearer(ALICE))
    [review] = [r for r in callers.requests if r.resource == "subjectaccessreviews"]
    spec = json.loads(review.body)["spec"]
    assert spec["resourceAttributes"] == {
        "namespace": "argo",
        "verb": "get",
        "group": "",
        "resource": "pods",
        "subresource": "log",
    }
    assert spec["user"] == "alice" and "system:authenticated" in spec["groups"]
    assert review.status == 201


def test_answers_are_cached_and_denials_expire_sooner(serve, callers, task_id):
    app, _ = serve(TASKLOGS_AUTH="kubernetes", TASKLOGS_AUTH_CACHE_SECONDS=4)
    scenarios.workflow(callers, task_id)
    client, url = app.test_client(), f"/api/v1/tasks/{task_id}/logs"
    callers.reset_requests()
    for _ in range(3):
        assert client.get(url, headers=bearer(ALICE)).status_code == 200
    assert callers.count("create", "tokenreviews") == 1
    assert callers.count("create", "subjectaccessreviews") == 1
    denied = time.monotonic()  # the denial is stamped after this, and lives a quarter of the 4 s
    assert client.get(url, headers=bearer(BOB)).status_code == 403
    callers.grant_log_reading("User", "bob", "argo")
    status = client.get(url, headers=bearer(BOB)).status_code
    assert time.monotonic() - denied < 1, "the machine was too slow to ask again within the 1 s"
    assert status == 403, "the denial is remembered"
    time.sleep(1.1)
    assert client.get(url, headers=bearer(BOB)).status_code == 200, "...for a short time only"
    assert callers.count("create", "subjectaccessreviews") == 3, "alice's grant still cached"


def test_review_api_down_is_a_503_never_a_grant(serve, callers, task_id):
    app, _ = serve(TASKLOGS_AUTH="kubernetes")
    scenarios.workflow(callers, task_id)
    client, url = app.test_client(), f"/api/v1/tasks/{task_id}/logs"
    callers.fail("subjectaccessreviews", status=503, times=None)
    response = client.get(url, headers=bearer(ALICE))
    assert response.status_code == 503 and response.get_json()["error"] == "cluster_unavailable"
    assert "cannot check access" in response.get_json()["message"]
    callers.clear_faults()
    callers.stop()
    response = client.get(url, headers=bearer(CAROL))
    assert response.status_code == 503 and "unreachable" in response.get_json()["message"]


def test_a_service_account_without_auth_delegation_is_told_what_it_lacks(serve, callers, task_id):
    app, _ = serve(TASKLOGS_AUTH="kubernetes")
    scenarios.workflow(callers, task_id)
    callers.rbac_rules = [r for r in callers.rbac_rules if "tokenreviews" not in r["resources"]]
    response = app.test_client().get(f"/api/v1/tasks/{task_id}/logs", headers=bearer(ALICE))
    assert response.status_code == 502 and "tokenreviews" in response.get_json()["message"]


def test_websocket_takes_the_token_in_the_query_and_is_authorized(serve, callers, task_id):
    _, live = serve(TASKLOGS_AUTH="kubernetes")
    scenarios.workflow(callers, task_id)
    url = live.ws_url(f"/ws/tasks/{task_id}/logs")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=5)
    assert refused.value.status_code == 401
    assert TailClient(f"{url}?access_token={ALICE}").frame()["type"] == "snapshot"
    denied = TailClient(f"{url}?access_token={BOB}")
    frame = denied.frame()
    assert (frame["type"], frame["status"], frame["error"]) == ("error", 403, "forbidden")
    assert denied.frame() is None and denied.close_code == 1008


def test_proxy_mode_believes_the_headers_from_trusted_proxies_only(serve, callers, task_id):
    app, _ = serve(TASKLOGS_AUTH="proxy", TASKLOGS_TRUSTED_PROXIES="10.0.0.5")
    scenarios.workflow(callers, task_id)
    client, url = app.test_client(), f"/api/v1/tasks/{task_id}/logs"
    proxy = {"REMOTE_ADDR": "10.0.0.5"}
    mallory = client.get(url, headers={"X-Forwarded-User": "alice"})
    assert (
        mallory.status_code == 401 and "TASKLOGS_TRUSTED_PROXIES" in mallory.get_json()["message"]
    )
    assert client.get(url).status_code == 401
    assert client.get(url, environ_base=proxy).status_code == 401, "the proxy must name a user"
    assert (
        client.get(url, headers={"X-Forwarded-User": "alice"}, environ_base=proxy).status_code
        == 200
    )
    grouped = {"X-Forwarded-User": "dave", "X-Forwarded-Groups": "staff, log-readers"}
    assert client.get(url, headers=grouped, environ_base=proxy).status_code == 200
    denied = client.get(url, headers={"X-Forwarded-User": "bob"}, environ_base=proxy)
    assert denied.status_code == 403 and "'argo'" in denied.get_json()["message"]


def test_header_names_are_configurable(serve, callers, task_id):
    app, _ = serve(
        TASKLOGS_AUTH="proxy",
        TASKLOGS_TRUSTED_PROXIES="127.0.0.0/8",
        TASKLOGS_AUTH_USER_HEADER="X-Auth-Request-User",
        TASKLOGS_AUTH_GROUPS_HEADER="X-Auth-Request-Groups",
    )
    scenarios.workflow(callers, task_id)
    client, url = app.test_client(), f"/api/v1/tasks/{task_id}/logs"
    assert client.get(url, headers={"X-Forwarded-User": "alice"}).status_code == 401
    headers = {"X-Auth-Request-User": "erin", "X-Auth-Request-Groups": "log-readers"}
    assert client.get(url, headers=headers).status_code == 200


def access_lines(caplog):
    return [r for r in caplog.records if r.name == "tasklogs.access"]


def test_every_read_leaves_one_token_free_access_line(serve, callers, task_id, caplog):
    app, _ = serve(TASKLOGS_AUTH="kubernetes")
    wf = scenarios.workflow(callers, task_id)
    callers.write_log(wf.pod(), "main", "hello\n")
    scenarios.finish(callers, wf)
    caplog.set_level(logging.INFO, logger="tasklogs.access")
    client = app.test_client()
    response = client.get(f"/api/v1/tasks/{task_id}/logs?format=text", headers=bearer(ALICE))
    body = response.get_data()
    response.close()
    client.get(f"/api/v1/tasks/{task_id}/logs", headers=bearer(BOB)).close()
    # a tail's line (status 101, its close code) is checked through gunicorn, which always ends the
    # request when the socket closes (tests/e2e/test_metrics_gunicorn.py); werkzeug's development
    # server sometimes never does
    deadline = time.monotonic() + 5
    while len(access_lines(caplog)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(access_lines(caplog)) == 2, [r.getMessage() for r in access_lines(caplog)]
    rest, denied = (r.access for r in access_lines(caplog))
    assert (rest["user"], rest["namespace"], rest["task"], rest["status"]) == (
        "alice",
        "argo",
        task_id,
        200,
    )
    assert rest["bytes"] == len(body) and rest["duration_ms"] >= 0
    assert (denied["user"], denied["status"]) == ("bob", 403)
    # werkzeug's development server logs query strings itself; gunicorn's access format does not
    ours = " ".join(
        f"{r.getMessage()} {getattr(r, 'access', '')}"
        for r in caplog.records
        if r.name.startswith("tasklogs")
    )
    assert ALICE not in ours and BOB not in ours, "no token in any of the service's log lines"
    assert "access_token" not in ours


def test_authorize_and_readable_for_the_lead_routes(serve, callers):
    """The interface of namespaced routes, listing and search: `authorize(ns)` raises, `readable`
    filters; modes without RBAC let everyone they admitted read every namespace."""
    from flask import g

    from tasklogs import access
    from tasklogs.errors import Forbidden, Unauthorized
    from tasklogs.reviews import Identity

    app, _ = serve(TASKLOGS_AUTH="kubernetes")
    with app.test_request_context("/api/v1/tasks"):
        with pytest.raises(Unauthorized):
            access.readable(["argo"])
        g.identity = Identity("bob", (), "kubernetes")
        assert access.readable(["argo", "elsewhere", "third"]) == ["elsewhere"]
        with pytest.raises(Forbidden, match="'third'"):
            access.authorize("third")
        access.authorize("elsewhere")
    open_app, _ = serve(TASKLOGS_AUTH="none")
    with open_app.test_request_context("/api/v1/tasks"):
        access.authenticate(open_app.extensions["tasklogs"].settings.access)
        assert access.readable(["argo", "third"]) == ["argo", "third"]
        access.authorize("third")
