"""The built-in log viewer: two static pages and their scripts, served by the same app.

The pages hold no data: their scripts read everything through the public API (listing, search, the line
API and the WebSocket line frames), as any other frontend would, so the viewer is also the reference
client. Nothing is fetched from elsewhere (a cluster without internet access serves it whole), and the
Content-Security-Policy lets the pages run only their own scripts: log text can never become markup.
"""

from flask import Blueprint, Response, send_from_directory

bp = Blueprint("viewer", __name__, static_folder="static/viewer", static_url_path="/ui/static")

# Scripts and styles from this origin only; fetch and WebSocket to this origin only; no frames, no
# plugins, no inline script. `img-src data:` is the favicon.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@bp.get("/")
def task_list() -> Response:
    return _page("list.html")


@bp.get("/ui/namespaces/<namespace>/tasks/<task_id>")
def task_view(namespace: str, task_id: str) -> Response:
    # The page reads its namespace and task from its own address; the API checks them and the page
    # shows the API's answer (an invalid id, an unknown task, a namespace not served).
    return _page("log.html")


@bp.after_request
def protect(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _page(name: str) -> Response:
    response = send_from_directory(bp.static_folder or "", name, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response
