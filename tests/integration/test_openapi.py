"""The OpenAPI document against the live app: Schemathesis generates requests for every operation
(from the document's examples, its boundaries, and at random, valid and invalid) and checks each
answer: never a 5xx, and the status, content type, headers and body as documented. The app runs on a
real server over PostgreSQL and the fake cluster, with a finished and a running workflow stored."""

import base64
import json
import os

import pytest
import requests
import schemathesis
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tasklogs import apidoc
from testkit import ROOT, scenarios
from testkit.apps import LiveServer, dispose, make_app
from testkit.fakekube import FakeKube

DOCUMENT = os.path.join(ROOT, "tasklogs", apidoc.OPENAPI)
# Examples per operation and phase: about 20 s for the whole run on this machine (CI stays fast).
MAX_EXAMPLES = int(os.environ.get("TASKLOGS_SCHEMATHESIS_EXAMPLES", "40"))
FINISHED, RUNNING = "hello-world-x7k2p", "still-running-q8w3e"  # FINISHED: the document's examples

schema = schemathesis.openapi.from_path(DOCUMENT)
schema.config.generation.update(max_examples=MAX_EXAMPLES, allow_x00=True)


def ndjson_conformance(ctx, response, case):
    """Each line of an `application/x-ndjson` body is one object of the documented schema
    (Schemathesis validates bodies it can parse whole; NDJSON it leaves to this check)."""
    media = response.headers.get("content-type", [""])[0].split(";")[0]
    if media != "application/x-ndjson":
        return None
    validator = line_validator(case.operation.path, str(response.status_code))
    for number, line in enumerate(response.content.decode().splitlines(), 1):
        errors = list(validator.iter_errors(json.loads(line)))
        if errors:
            raise AssertionError(f"NDJSON line {number} is not as documented: {errors[0].message}")
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ndjson_conformance,
]


def line_validator(path: str, status: str) -> Draft202012Validator:
    """The validator of one NDJSON line of a documented response (a `$ref` into the document)."""
    with open(DOCUMENT) as source:
        document = json.load(source)
    content = document["paths"][path]["get"]["responses"][status]["content"]
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(document))
    return Draft202012Validator(
        {"$ref": "urn:openapi" + content["application/x-ndjson"]["schema"]["$ref"]},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


class LiveApi:
    """The app on a live server, over the session's database and a fake cluster of its own."""

    def __init__(self, database_url: str):
        from tests.conftest import RBAC, WEB_ACCOUNT, adapter_for

        self.kube = FakeKube(namespace="argo")
        self.kube.load_rbac(RBAC, service_account=WEB_ACCOUNT)
        self.adapter = adapter_for(self.kube, self.kube.write_kubeconfig(self._kubeconfig()))
        self.app = make_app(database_url, self.adapter)
        self.server = LiveServer(self.app)
        self.base_url = self.server.http_url("")

    def _kubeconfig(self) -> str:
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        return os.path.join(self._dir.name, "kubeconfig")

    def routes(self, path: str) -> bool:
        """Whether the app routes the document's `path` (`{name}` is Flask's `<name>`)."""
        rule = path.replace("{", "<").replace("}", ">")
        return any(r.rule == rule for r in self.app.url_map.iter_rules())

    def seed(self) -> None:
        """A finished workflow, stored complete (two pods, lines to grep), and a running one."""
        finished = scenarios.workflow(self.kube, FINISHED, ["whalesay", "report"])
        for step in ("whalesay", "report"):
            lines = "".join(
                f"{step} line {i}: {'ERROR disk' if i % 7 == 0 else 'ok'}\n" for i in range(40)
            )
            self.kube.write_log(finished.pod(step), "main", lines)
        scenarios.finish(self.kube, finished)
        running = scenarios.workflow(self.kube, RUNNING)
        self.kube.write_log(running.pod(), "main", "starting\nworking ÿ ✓\n")
        for _ in range(50):
            body = requests.get(self.base_url + f"/api/v1/tasks/{FINISHED}/logs", timeout=10).json()
            if body["complete"]:
                break
        assert body["complete"] and body["source"] in ("database", "kubernetes")
        requests.get(self.base_url + f"/api/v1/tasks/{RUNNING}/logs", timeout=10).raise_for_status()

    def close(self) -> None:
        self.server.close()
        dispose(self.app)
        self.adapter.close()
        self.kube.close()
        self._dir.cleanup()


@pytest.fixture(scope="module")
def live_api(database_url):
    api = LiveApi(database_url)
    try:
        api.seed()
        yield api
    finally:
        api.close()


@schema.parametrize()
def test_every_operation_answers_as_documented(case, live_api):
    if not live_api.routes(case.operation.path):
        pytest.skip(f"{case.operation.label} is documented but not routed on this branch yet")
    case.call_and_validate(base_url=live_api.base_url, checks=CHECKS)


# --- what Schemathesis found, each fixed in the code and kept here ---


def test_a_listing_prefix_or_cursor_with_a_nul_is_a_400_not_a_500(client):
    cursor = base64.urlsafe_b64encode(
        json.dumps(["2026-01-02T03:04:05+00:00", "argo", "a\x00"]).encode()
    )
    for query in ("prefix=%00hello", f"cursor={cursor.decode().rstrip('=')}"):
        response = client.get(f"/api/v1/tasks?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"] == "invalid_request"
    assert "NUL" in client.get("/api/v1/tasks?prefix=a%00").get_json()["message"]


def test_whole_numbers_are_ascii_digits_only(client, task_id):
    """`"²".isdigit()` is true and `int("²")` raises (a 500 for `limit=²`); `int()` also took "1_0",
    " 5" and other scripts' digits, which the document's `integer` does not."""
    for query in ("limit=%C2%B2", "limit=%D9%A1%D9%A2", "limit=+5"):
        response = client.get(f"/api/v1/tasks?{query}")
        assert (response.status_code, response.get_json()["error"]) == (400, "invalid_request")
        assert "limit must be a whole number from 1 to 500" in response.get_json()["message"]
    for query in ("tail=1_0", "tail=%205", "tail=%C2%B2", "from_line=%D9%A1", "context=+1"):
        response = client.get(f"/api/v1/tasks/{task_id}/logs?grep=x&{query}")
        assert (response.status_code, response.get_json()["error"]) == (400, "invalid_request")


def test_a_line_number_past_any_log_selects_nothing(live_api):
    response = requests.get(
        live_api.base_url + f"/api/v1/tasks/{FINISHED}/logs?format=ndjson&from_line=" + "9" * 40,
        timeout=10,
    )
    assert (response.status_code, response.text) == (200, "")
