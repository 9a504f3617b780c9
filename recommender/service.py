"""The HTTP service (Flask): related links by article id or by the text of a draft, errors always as JSON."""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from .config import Settings, load_settings
from .engine import Recommender, UnknownArticle
from .payloads import related_json
from .ranking import Filters
from .signals import RawText


class ApiError(Exception):
    """An error answered as {"error": code, "message": text} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be between {low} and {high}")
    return value


def _filters_from_args() -> Filters:
    max_age = request.args.get("max_age_days")
    try:
        max_age_days = float(max_age) if max_age is not None else None
    except ValueError:
        raise ApiError(400, "bad_parameter", "max_age_days must be a number") from None
    if max_age_days is not None and max_age_days <= 0:
        raise ApiError(400, "bad_parameter", "max_age_days must be positive")
    return Filters(
        langs=tuple(v.lower() for v in request.args.getlist("lang")),
        sections=tuple(request.args.getlist("section")),
        max_age_days=max_age_days,
        exclude_ids=tuple(request.args.getlist("exclude")),
    )


def create_app(settings: Settings | None = None, engine: Recommender | None = None) -> Flask:
    """The Flask app serving one loaded index; settings default to the file/environment configuration."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["RECOMMENDER"] = engine or Recommender.open(settings)

    def current() -> Recommender:
        return app.config["RECOMMENDER"]

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        return jsonify(error=error.code, message=error.message), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify(error=code, message=error.description), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        app.logger.exception("unexpected error")
        return jsonify(error="internal_error", message="the server failed to answer this request"), 500

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.get("/v1/articles/<article_id>/related")
    def related_by_id(article_id: str) -> Any:
        engine = current()
        k = _int_arg("k", settings.default_k, 1, settings.max_k)
        try:
            related = engine.related(article_id, k, _filters_from_args())
        except UnknownArticle as exc:
            raise ApiError(404, "unknown_article", str(exc)) from None
        return jsonify(related_json(engine, article_id, related))

    @app.post("/v1/related")
    def related_by_text() -> Any:
        if not request.is_json:
            raise ApiError(415, "unsupported_media_type", "send the article as JSON (Content-Type: application/json)")
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError(400, "bad_json", "the body must be a JSON object")
        title, body = data.get("title"), data.get("body")
        if not isinstance(title, str) or not isinstance(body, str) or not (title.strip() or body.strip()):
            raise ApiError(422, "invalid_article", "give 'title' and 'body' as strings, not both empty")
        k = data.get("k", settings.default_k)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= settings.max_k:
            raise ApiError(400, "bad_parameter", f"k must be an integer between 1 and {settings.max_k}")
        engine = current()
        related = engine.related_to_text(RawText(title, body), k, _filters_from_args())
        return jsonify(related_json(engine, None, related))

    return app
