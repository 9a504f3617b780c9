"""What operators and programs ask a server: is it alive, is it ready, its metrics, its API description."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from . import current
from .answers import Health, Ready
from .errors import ApiError
from .openapi import openapi_spec
from .operations import operation

ops = Blueprint("ops", __name__)
OPENAPI = "recommender_openapi"


@ops.get("/healthz")
@operation("The process is alive", answers={200: (Health, "alive")})
def healthz() -> Any:
    """Alive."""
    return jsonify(status="ok")


@ops.get("/readyz")
@operation("An index is loaded and answers", answers={200: (Ready, "ready")}, errors=(503,))
def readyz() -> Any:
    """Ready when an index with articles is loaded."""
    engine = current.engine()
    if engine is None or len(engine.snapshot) == 0:
        raise ApiError(503, "not_ready", "no index with articles is loaded")
    return jsonify(status="ready", index_version=engine.snapshot.version, articles=len(engine.snapshot),
                   profile=engine.profile.name)


@ops.get("/metrics")
@operation("Prometheus metrics", answers={200: ("text/plain", "text exposition format")})
def metrics_text() -> Any:
    """Prometheus text, merged over the workers."""
    body, content_type = current.metrics().render()
    return Response(body, content_type=content_type)


@ops.get("/openapi.json")
@operation("This description", answers={200: ({"type": "object"}, "OpenAPI 3 document")})
def openapi() -> Any:
    """The OpenAPI description, assembled once per app."""
    if OPENAPI not in current_app.extensions:
        current_app.extensions[OPENAPI] = openapi_spec(current_app, current.settings())
    return jsonify(current_app.extensions[OPENAPI])
