"""The viewer's pages and static files as the app serves them: no data in them, no access needed for
them, nothing from another origin, and no script that could turn log text into markup."""

import os
import re

import pytest

from tasklogs import create_app
from tasklogs.viewer import POLICY

STATIC = os.path.join(os.path.dirname(__file__), "..", "..", "tasklogs", "static", "viewer")


@pytest.fixture
def viewer_client(tmp_path):
    def make(**settings):
        app = create_app(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'viewer.sqlite'}", "TESTING": True, **settings}
        )
        return app.test_client()

    return make


def test_the_list_and_the_log_page_are_served_with_a_strict_policy(viewer_client):
    client = viewer_client()
    for path, script in [
        ("/", "/ui/static/list.js"),
        ("/ui/namespaces/argo/tasks/wf-1", "/ui/static/log.js"),
    ]:
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert f'src="{script}"' in response.get_data(as_text=True)
        assert response.headers["Content-Security-Policy"] == POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in POLICY and "unsafe-inline" not in POLICY


def test_static_files_and_what_is_not_one(viewer_client):
    client = viewer_client()
    script = client.get("/ui/static/log.js")
    assert script.status_code == 200 and script.mimetype in (
        "text/javascript",
        "application/javascript",
    )
    assert client.get("/ui/static/viewer.css").mimetype == "text/css"
    for missing in (
        "/ui/static/nothing.js",
        "/ui/static/../viewer.py",
        "/ui/static/%2e%2e/viewer.py",
    ):
        response = client.get(missing)
        assert response.status_code == 404 and response.get_json()["error"] == "not_found", missing
    response = client.post("/")
    assert response.status_code == 405 and response.get_json()["error"]


def test_the_pages_hold_no_data_so_they_need_no_credentials_but_the_api_does(viewer_client):
    client = viewer_client(TASKLOGS_AUTH="token", TASKLOGS_API_TOKEN="secret")
    assert client.get("/ui/namespaces/argo/tasks/wf-1").status_code == 200
    assert client.get("/").status_code == 200
    refused = client.get("/api/v1/tasks")
    assert refused.status_code == 401 and refused.get_json()["error"] == "unauthorized"


def static_sources():
    for name in sorted(os.listdir(STATIC)):
        with open(os.path.join(STATIC, name), encoding="utf-8") as source:
            yield name, source.read()


def test_nothing_comes_from_another_origin():
    for name, text in static_sources():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert "@import" not in text, name


def test_no_script_writes_markup_or_evaluates_text():
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    for name, text in static_sources():
        if name.endswith((".js", ".html")):
            assert not forbidden.search(text), name


def test_every_file_a_page_names_exists():
    for name, text in static_sources():
        for referenced in re.findall(r'(?:src|href)="/ui/static/([^"]+)"', text):
            assert os.path.exists(os.path.join(STATIC, referenced)), (name, referenced)
        for imported in re.findall(r'from "\./([^"]+)"', text):
            assert os.path.exists(os.path.join(STATIC, imported)), (name, imported)
