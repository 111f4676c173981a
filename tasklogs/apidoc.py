"""The API's documents: the OpenAPI 3.1 description of every REST route (`openapi.json`) and the
JSON Schema of every WebSocket frame (`websocket-frames.json`), both static files of this package.
They are public, like `/healthz`: they say what the API is, not what any task holds."""

import json
from functools import cache
from importlib import resources

from flask import Blueprint, Response

bp = Blueprint("apidoc", __name__)

OPENAPI = "openapi.json"
WEBSOCKET_FRAMES = "websocket-frames.json"


@bp.get("/api/v1/openapi.json")
def openapi():
    return Response(document_text(OPENAPI), mimetype="application/json")


@cache
def document_text(name: str) -> str:
    """One of the package's documents, as its file holds it (read once per process)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def document(name: str) -> dict:
    """One of the package's documents, parsed."""
    return json.loads(document_text(name))
