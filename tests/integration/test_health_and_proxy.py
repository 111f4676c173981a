"""Probes, forwarded headers, and errors that must not leak internals."""

from testkit.apps import dispose, make_app


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    body = client.get("/readyz").get_json()
    assert (body["ready"], body["database"], body["kubernetes"]) == (True, "ok", "ok")


def test_readyz_is_503_naming_what_is_down(proxied_app, db_proxy):
    db_proxy.stop()
    response = proxied_app.test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 503 and body["ready"] is False and body["kubernetes"] == "ok"
    assert body["database"].startswith(
        "database unavailable"
    ) and "postgresql" not in response.get_data(as_text=True)


def test_proxy_fix_takes_the_client_address_from_x_forwarded_for(
    database_url, kube_adapter, task_id
):
    app = make_app(database_url, kube_adapter, TASKLOGS_PROXY_FIX={"x_for": 1, "x_proto": 1})
    try:
        seen = {}

        @app.get("/_test/remote")
        def remote():
            from flask import request

            seen["addr"], seen["scheme"] = request.remote_addr, request.scheme
            return "ok"

        app.test_client().get(
            "/_test/remote",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        )
        assert seen == {"addr": "203.0.113.9", "scheme": "https"}
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
