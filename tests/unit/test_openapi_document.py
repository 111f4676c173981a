"""The OpenAPI document itself: valid OpenAPI 3.1, and the same routes and parameters as the app
(every API rule of the app is in it and every path of it is a rule, once routed; each operation's
parameters are exactly what its route accepts)."""

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tasklogs import apidoc, create_app, logs

DOCUMENTED_ELSEWHERE = ("/ws/",)  # WebSockets: docs/websocket.md and websocket-frames.json
NOT_YET_ROUTED = {
    "/api/v1/search"
}  # another branch adds it; once merged it is checked like the rest


@pytest.fixture(scope="module")
def document():
    return apidoc.document(apidoc.OPENAPI)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "tasklogs.sqlite"
    return create_app({"DATABASE_URL": f"sqlite:///{path}", "TASKLOGS_AUTO_MIGRATE": "false"})


def api_rules(app) -> dict[str, set[str]]:
    """The app's HTTP rules in the document's spelling (`{name}`), with their methods."""
    rules: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if (
            rule.endpoint == "static"
            or rule.endpoint.startswith("viewer.")  # HTML pages, described in docs/viewer.md
            or rule.rule.startswith(DOCUMENTED_ELSEWHERE)
        ):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        rules.setdefault(path, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    return rules


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"].startswith("3.1.")


def test_the_validator_would_catch_a_broken_document(document):
    broken = {**document, "paths": {"/api/v1/tasks": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_api_route_is_documented_and_every_documented_path_is_routed(app, document):
    rules = api_rules(app)
    documented = {path: set(map(str.upper, item)) for path, item in document["paths"].items()}
    assert set(rules) - set(documented) == set(), "routes missing from the document"
    missing = set(documented) - set(rules) - NOT_YET_ROUTED
    assert missing == set(), "documented paths the app does not route"
    for path, methods in rules.items():
        assert methods == documented[path], path


def parameter_names(document, path: str) -> tuple[set[str], set[str]]:
    """(query, path) parameter names of the GET operation on `path`, $refs resolved."""
    found: dict[str, set[str]] = {"query": set(), "path": set()}
    for parameter in document["paths"][path]["get"].get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        found[parameter["in"]].add(parameter["name"])
    return found["query"], found["path"]


ROUTE_PARAMETERS = [
    ("/api/v1/tasks/{task_id}/logs", logs.REST_PARAMETERS),
    ("/api/v1/namespaces/{namespace}/tasks/{task_id}/logs", logs.REST_PARAMETERS),
    ("/api/v1/tasks", logs.LIST_PARAMETERS),
    ("/api/v1/namespaces/{namespace}/tasks", logs.LIST_PARAMETERS),
    ("/readyz", {"verbose"}),
    ("/healthz", set()),
    ("/api/v1/openapi.json", set()),
]


@pytest.mark.parametrize("path,allowed", ROUTE_PARAMETERS)
def test_query_parameters_are_what_the_route_allows(document, path, allowed):
    query, in_path = parameter_names(document, path)
    assert query == set(allowed)
    assert in_path == {part[1:-1] for part in path.split("/") if part.startswith("{")}


def test_search_parameters_once_the_route_has_them(document):
    query, _ = parameter_names(document, "/api/v1/search")
    allowed = getattr(logs, "SEARCH_PARAMETERS", None)
    if allowed is None:
        assert query == {"q", "ignore_case", "namespace", "since", "until", "limit"}
        pytest.skip("logs.SEARCH_PARAMETERS arrives with the search route")
    assert query == set(allowed)


def test_line_parameter_bounds_are_the_parser_s(document):
    from tasklogs.linequery import MAX_CONTEXT, MAX_LIMIT, MAX_TAIL

    parameters = document["components"]["parameters"]
    assert parameters["tail"]["schema"]["maximum"] == MAX_TAIL
    assert parameters["line_limit"]["schema"]["maximum"] == MAX_LIMIT
    assert parameters["context"]["schema"]["maximum"] == MAX_CONTEXT
    assert parameters["format"]["schema"]["enum"] == list(logs.FORMATS)


def test_the_listing_phases_are_the_service_s(document):
    from tasklogs.service import LIST_PHASES

    assert document["components"]["parameters"]["phase"]["schema"]["enum"] == ["", *LIST_PHASES]


def test_every_error_response_is_the_error_shape(document):
    for name, response in document["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, name
    assert set(document["components"]["schemas"]["Error"]["required"]) == {"error", "message"}
