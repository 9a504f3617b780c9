"""The HTTP service (Flask): related links by article id or by the text of a draft, errors always as JSON."""
from __future__ import annotations

import time
from typing import Any, Mapping

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .config import Settings, load_settings
from .engine import Recommender, UnknownArticle
from .metrics import Metrics
from .openapi import openapi_spec
from .payloads import related_json
from .ranking import Filters
from .signals import RawText


class ApiError(Exception):
    """An error answered as {"error": code, "message": text} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_parameter", message)


def _k(raw: Any, settings: Settings) -> int:
    if raw is None:
        return settings.default_k
    if isinstance(raw, str):
        try:
            raw = int(raw)
        except ValueError:
            raise _bad("k must be an integer") from None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= settings.max_k:
        raise _bad(f"k must be an integer between 1 and {settings.max_k}")
    return raw


def _string_list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{name} must be a string or a list of strings")
    return tuple(value)


def _filters(lang: Any, section: Any, max_age_days: Any, exclude: Any) -> Filters:
    if max_age_days is not None:
        try:
            max_age_days = float(max_age_days)
        except (TypeError, ValueError):
            raise _bad("max_age_days must be a number") from None
        if not max_age_days > 0:
            raise _bad("max_age_days must be positive")
    return Filters(
        langs=tuple(v.lower() for v in _string_list("lang", lang or [])),
        sections=_string_list("section", section or []),
        max_age_days=max_age_days,
        exclude_ids=_string_list("exclude", exclude or []),
    )


def _query_filters() -> Filters:
    args = request.args
    return _filters(args.getlist("lang"), args.getlist("section"), args.get("max_age_days"), args.getlist("exclude"))


def _json_filters(data: Mapping[str, Any]) -> Filters:
    filters = data.get("filters") or {}
    if not isinstance(filters, dict):
        raise _bad("filters must be an object")
    unknown = set(filters) - {"lang", "section", "max_age_days", "exclude"}
    if unknown:
        raise _bad(f"unknown filter(s): {', '.join(sorted(unknown))}")
    return _filters(filters.get("lang"), filters.get("section"), filters.get("max_age_days"), filters.get("exclude"))


def create_app(settings: Settings | None = None, engine: Recommender | None = None) -> Flask:
    """The Flask app serving one loaded index; settings default to the file/environment configuration."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["RECOMMENDER"] = engine or Recommender.open(settings)
    metrics = Metrics()
    app.extensions["recommender_metrics"] = metrics
    loaded: Recommender = app.config["RECOMMENDER"]
    metrics.set_index(loaded.snapshot.version, loaded.profile.name, len(loaded.snapshot))
    if settings.cors_origin_list:
        from flask_cors import CORS

        CORS(app, origins=settings.cors_origin_list, methods=["GET", "POST"], max_age=3600)

    def current() -> Recommender:
        return app.config["RECOMMENDER"]

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.observe(endpoint, request.method, response.status_code, time.perf_counter() - g.get("started", 0.0))
        return response

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        return jsonify(error=error.code, message=error.message), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        code = (error.name or "error").lower().replace(" ", "_")
        response = jsonify(error=code, message=error.description)
        response.status_code = error.code or 500
        for name in ("Allow", "WWW-Authenticate"):
            if error.get_response().headers.get(name):
                response.headers[name] = error.get_response().headers[name]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        app.logger.exception("unexpected error")
        return jsonify(error="internal_error", message="the server failed to answer this request"), 500

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Any:
        engine = current()
        if engine is None or len(engine.snapshot) == 0:
            raise ApiError(503, "not_ready", "no index with articles is loaded")
        return jsonify(status="ready", index_version=engine.snapshot.version, articles=len(engine.snapshot),
                       profile=engine.profile.name)

    @app.get("/metrics")
    def metrics_text() -> Any:
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    @app.get("/openapi.json")
    def openapi() -> Any:
        return jsonify(openapi_spec())

    @app.get("/v1/articles/<article_id>/related")
    def related_by_id(article_id: str) -> Any:
        engine = current()
        k = _k(request.args.get("k"), settings)
        try:
            related = engine.related(article_id, k, _query_filters())
        except UnknownArticle as exc:
            raise ApiError(404, "unknown_article", str(exc)) from None
        response = jsonify(related_json(engine, article_id, related))
        # The answer changes only with the index (and freshness, within the cache lifetime): an ETag of the
        # body lets browsers and CDNs revalidate cheaply.
        response.cache_control.public = True
        response.cache_control.max_age = settings.cache_max_age
        response.add_etag()
        return response.make_conditional(request)

    @app.post("/v1/related")
    def related_by_text() -> Any:
        if not request.is_json:
            raise ApiError(415, "unsupported_media_type", "send the article as JSON (Content-Type: application/json)")
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError(400, "bad_json", "the body must be a JSON object")
        title, body, teaser = data.get("title"), data.get("body"), data.get("teaser", "")
        if not all(isinstance(v, str) for v in (title, body, teaser)) or not (title.strip() or body.strip()):
            raise ApiError(422, "invalid_article", "give 'title' and 'body' as strings, not both empty")
        k = _k(data.get("k"), settings)
        engine = current()
        related = engine.related_to_text(RawText(title, body, teaser), k, _json_filters(data))
        return jsonify(related_json(engine, None, related))

    return app
