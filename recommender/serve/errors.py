"""Every error the API answers, always as JSON {"error": code, "message": text} with its HTTP status."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..db import StateUnavailable
from ..engine import UnknownArticle, UnknownPlacement
from . import current
from .embedder import EmbedderUnavailable, EmbeddingFailed
from .limits import retry_after_seconds


class ApiError(Exception):
    """An error answered as {"error": code, "message": text} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def bad_parameter(message: str) -> ApiError:
    """400 bad_parameter: a query parameter or a JSON number is not what the endpoint takes."""
    return ApiError(400, "bad_parameter", message)


def too_long(name: str, limit: int, unit: str = "characters") -> ApiError:
    """422 too_long: a field over its bound (limits.py), refused before anything spends time on it."""
    return ApiError(422, "too_long", f"{name} is longer than {limit:,} {unit}")


@contextmanager
def reader_errors() -> Iterator[None]:
    """An unknown article (404 unknown_article) or placement (400 unknown_placement) of a reader's request."""
    try:
        yield
    except UnknownArticle as exc:
        raise ApiError(404, "unknown_article", str(exc)) from None
    except UnknownPlacement as exc:
        raise ApiError(400, "unknown_placement", str(exc)) from None


def init_app(app: Flask) -> None:
    """Answer ApiError, unavailable editors' state, HTTP errors and anything unexpected as JSON."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(StateUnavailable, _state_unavailable)
    app.register_error_handler(EmbedderUnavailable, _embedder_unavailable)
    app.register_error_handler(EmbeddingFailed, _embedding_failed)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _api_error(error: ApiError) -> Any:
    return jsonify(error=error.code, message=error.message), error.status, error.headers


def _state_unavailable(error: StateUnavailable) -> Any:
    current_app.logger.error("%s", error)
    return jsonify(error="state_unavailable", message=f"{error}; reads keep working, retry the write later"), \
        503, {"Retry-After": "30"}


def _embedder_unavailable(error: EmbedderUnavailable) -> Any:
    current_app.logger.error("%s", error)
    return jsonify(error="embedder_unavailable", message=str(error)), 503, {"Retry-After": "10"}


def _embedding_failed(error: EmbeddingFailed) -> Any:
    current_app.logger.error("embedding failed: %s", error)
    return jsonify(error="embedding_failed", message="the article could not be embedded; nothing was stored"), 500


def _http_error(error: HTTPException) -> Any:
    code = (error.name or "error").lower().replace(" ", "_")
    response = jsonify(error=code, message=error.description)
    response.status_code = error.code or 500
    if response.status_code == 429:
        response.headers["Retry-After"] = str(retry_after_seconds(current_app))
        settings, reader = current.settings(), request.blueprint == "events"
        what, limit = ("reader events", settings.event_rate_limit) if reader else ("writes", settings.write_rate_limit)
        response.set_data(jsonify(error="rate_limited", message=f"too many {what} from this client (limit "
                                  f"{limit}); retry later").get_data())
        return response
    original = error.get_response()
    for name in ("Allow", "WWW-Authenticate"):
        if original.headers.get(name):
            response.headers[name] = original.headers[name]
    return response


def _unexpected(error: Exception) -> Any:
    # The traceback goes to the log (without request headers: they may hold the token), never to the client.
    current_app.logger.exception("unexpected error")
    return jsonify(error="internal_error", message="the server failed to answer this request"), 500
