"""Probes, forwarded headers, and errors that must not leak internals."""

from testkit.apps import dispose, make_app


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"ready": True}, "anyone gets the verdict only"
    body = client.get("/readyz?verbose=1").get_json()
    assert (body["ready"], body["database"], body["kubernetes"]) == (True, "ok", "ok")
    assert body["process"]["pid"] > 0


def test_readyz_is_503_naming_what_is_down(proxied_app, db_proxy):
    db_proxy.stop()
    client = proxied_app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json() == {"ready": False}
    response = client.get("/readyz?verbose=1")
    body = response.get_json()
    assert response.status_code == 503 and body["ready"] is False and body["kubernetes"] == "ok"
    assert body["database"].startswith(
        "database unavailable"
    ) and "postgresql" not in response.get_data(as_text=True)


def test_readyz_checks_at_most_every_few_seconds(client, kube):
    kube.reset_requests()
    for _ in range(5):
        assert client.get("/readyz").status_code == 200
    assert kube.count("list", "pods") == 1, "one Kubernetes LIST for five probes"


def test_verbose_readiness_needs_the_callers_credentials(serve):
    app, _ = serve(TASKLOGS_AUTH="token", TASKLOGS_API_TOKEN="t0ken")
    client = app.test_client()
    assert client.get("/readyz").get_json() == {"ready": True}
    response = client.get("/readyz?verbose=1")
    assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
    detailed = client.get("/readyz?verbose=1", headers={"Authorization": "Bearer t0ken"})
    assert detailed.status_code == 200 and detailed.get_json()["database"] == "ok"


def remote_probe(app):
    """`probe(**request)`: the client address and scheme a route of `app` sees for that request."""
    seen = {}

    @app.get("/_test/remote")
    def remote():
        from flask import request

        seen.update(addr=request.remote_addr, scheme=request.scheme)
        return "ok"

    def probe(**request):
        seen.clear()
        app.test_client().get("/_test/remote", **request)
        return dict(seen)

    return probe


FORWARDED = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Forwarded-Proto": "https"}


def test_forwarded_headers_count_from_trusted_proxies_only(database_url, kube_adapter):
    app = make_app(database_url, kube_adapter, TASKLOGS_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8")
    remote_seen = remote_probe(app)
    try:
        assert remote_seen(headers=FORWARDED) == {"addr": "203.0.113.9", "scheme": "https"}, (
            "the rightmost address the trusted proxy saw; what the client wrote left of it is ignored"
        )
        chained = {**FORWARDED, "X-Forwarded-For": "203.0.113.9, 10.1.2.3"}
        assert remote_seen(headers=chained)["addr"] == "203.0.113.9", "two trusted hops"
        untrusted = remote_seen(headers=FORWARDED, environ_base={"REMOTE_ADDR": "192.0.2.50"})
        assert untrusted == {"addr": "192.0.2.50", "scheme": "http"}
    finally:
        dispose(app)


def test_unexpected_errors_are_a_bare_json_500(database_url, kube_adapter):
    app = make_app(database_url, kube_adapter)
    try:

        @app.get("/_test/boom")
        def boom():
            raise RuntimeError("secret detail: postgresql://user:hunter2@db/x")

        response = app.test_client().get("/_test/boom")
        assert response.status_code == 500
        assert response.get_json() == {"error": "internal_error", "message": "internal error"}
        assert "hunter2" not in response.get_data(
            as_text=True
        ) and "Traceback" not in response.get_data(as_text=True)
    finally:
        dispose(app)


def test_method_not_allowed_is_json(client, task_id):
    response = client.post(f"/api/v1/tasks/{task_id}/logs")
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"
