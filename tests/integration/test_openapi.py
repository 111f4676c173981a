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
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
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
from tests.conftest import RBAC, WEB_ACCOUNT, adapter_for

DOCUMENT = os.path.join(ROOT, "tasklogs", apidoc.OPENAPI)
# Examples per operation and phase: about 30 s for the whole run on this machine (CI stays fast).
MAX_EXAMPLES = int(os.environ.get("TASKLOGS_SCHEMATHESIS_EXAMPLES", "100"))
FINISHED, RUNNING = "hello-world-x7k2p", "still-running-q8w3e"  # FINISHED: the document's examples

schema = schemathesis.openapi.from_path(DOCUMENT)
schema.config.generation.update(max_examples=MAX_EXAMPLES, allow_x00=True)


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the cases name a stored task (random names are almost never one): the other half keep
    what was generated, valid or not."""
    if not path_parameters or "task_id" not in path_parameters:
        return st.just(path_parameters)
    stored = [{**path_parameters, "task_id": name} for name in (FINISHED, RUNNING)]
    if "namespace" in path_parameters:
        stored = [{**named, "namespace": "argo"} for named in stored]
    return st.sampled_from([path_parameters, path_parameters, *stored])


@schema.hook
def flatmap_query(context, query):
    """Half the cases of the logs routes send a `format` and two of the generated parameters at
    most: the line parameters exclude each other in ways a schema cannot say (`tail` or
    `from_line`, `merge` only with `ndjson`), so with all of them nearly every valid case is a 400,
    and the formats other than the default would be rare."""
    if not context.operation.path.endswith("/logs"):
        return st.just(query)
    query = query or {}
    fewer = st.tuples(
        st.lists(st.sampled_from(sorted(query)), max_size=2, unique=True) if query else st.just([]),
        st.sampled_from(["json", "text", "ndjson"]),
    ).map(lambda chosen: {**{name: query[name] for name in chosen[0]}, "format": chosen[1]})
    return st.one_of(st.just(query), fewer)


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
    registry = Registry().with_resource("urn:openapi", DRAFT202012.create_resource(document))
    return Draft202012Validator(
        {"$ref": "urn:openapi" + content["application/x-ndjson"]["schema"]["$ref"]},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


class LiveApi:
    """The app on a live server, over the session's database and a fake cluster of its own."""

    def __init__(self, database_url: str, kubeconfig: str):
        self.kube = FakeKube(namespace="argo")
        self.kube.load_rbac(RBAC, service_account=WEB_ACCOUNT)
        self.adapter = adapter_for(self.kube, self.kube.write_kubeconfig(kubeconfig))
        self.app = make_app(database_url, self.adapter)
        self.server = LiveServer(self.app)
        self.base_url = self.server.http_url("")

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


@pytest.fixture(scope="module")
def live_api(database_url, tmp_path_factory):
    api = LiveApi(database_url, str(tmp_path_factory.mktemp("openapi") / "kubeconfig"))
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


def test_the_served_document_is_the_package_file_and_needs_no_credentials(live_api, serve):
    response = requests.get(live_api.base_url + "/api/v1/openapi.json", timeout=10)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "application/json")
    assert response.json() == apidoc.document(apidoc.OPENAPI)
    _, guarded = serve(TASKLOGS_AUTH="token", TASKLOGS_API_TOKEN="a-long-enough-secret-token-0123")
    assert requests.get(guarded.http_url("/api/v1/tasks"), timeout=10).status_code == 401
    assert requests.get(guarded.http_url("/api/v1/openapi.json"), timeout=10).status_code == 200


DOCUMENTED_READS = [
    ("/api/v1/tasks/{task_id}/logs", ""),
    ("/api/v1/tasks/{task_id}/logs", "?format=text&grep=ERROR&context=1&timestamps=true"),
    ("/api/v1/tasks/{task_id}/logs", "?format=ndjson&merge=time&grep=error&ignore_case=true"),
    ("/api/v1/tasks/{task_id}/logs", "?format=ndjson&tail=3&pod=hello-world-x7k2p-echo-841307739"),
    ("/api/v1/namespaces/{namespace}/tasks/{task_id}/logs", "?from_line=5&limit=2&container=main"),
    ("/api/v1/tasks", "?limit=1"),
    ("/api/v1/namespaces/{namespace}/tasks", "?phase=Succeeded&prefix=hello-"),
    ("/healthz", ""),
    ("/readyz", "?verbose=1"),
]


@pytest.mark.parametrize("path,query", DOCUMENTED_READS)
def test_reads_of_the_stored_tasks_answer_200_as_documented(live_api, path, query):
    url = path.format(namespace="argo", task_id=FINISHED) + query
    response = requests.get(live_api.base_url + url, timeout=10)
    assert response.status_code == 200, response.text
    operation = schema[path]["GET"]
    operation.validate_response(response)
    if "ndjson" in query:
        validator = line_validator(path, "200")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert lines and all(validator.is_valid(line) for line in lines)


def test_a_listing_page_links_to_the_next(live_api):
    first = requests.get(live_api.base_url + "/api/v1/tasks?limit=1&prefix=", timeout=10).json()
    assert len(first["tasks"]) == 1 and first["next"]
    second = requests.get(
        live_api.base_url + f"/api/v1/tasks?limit=1&cursor={first['next']}", timeout=10
    ).json()
    assert second["tasks"] and second["tasks"][0] != first["tasks"][0]
