"""What operators and programs ask a server: is it alive, is it ready, its metrics, its API description."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from . import current
from .errors import ApiError
from .openapi import openapi_spec

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz() -> Any:
    """Alive."""
    return jsonify(status="ok")


@ops.get("/readyz")
def readyz() -> Any:
    """Ready when an index with articles is loaded."""
    engine = current.engine()
    if engine is None or len(engine.snapshot) == 0:
        raise ApiError(503, "not_ready", "no index with articles is loaded")
    return jsonify(status="ready", index_version=engine.snapshot.version, articles=len(engine.snapshot),
                   profile=engine.profile.name)


@ops.get("/metrics")
def metrics_text() -> Any:
    """Prometheus text, merged over the workers."""
    body, content_type = current.metrics().render()
    return Response(body, content_type=content_type)


@ops.get("/openapi.json")
def openapi() -> Any:
    """The OpenAPI description."""
    return jsonify(openapi_spec(current.settings().max_k))
