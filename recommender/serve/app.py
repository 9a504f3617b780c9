"""The HTTP service (Flask): related links by article id or by the text of a draft, errors always as JSON."""
from __future__ import annotations

import hmac
import math
import os
import re
import time
from functools import wraps
from typing import Any, Callable, Mapping

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from ..config import Settings, load_settings
from ..db import StateUnavailable
from ..embed.signals import RawText
from ..engine import Recommender, UnknownArticle
from ..ingest.corpus import article_from_json
from ..jsonsafe import BadJson, parse_json
from ..payloads import item_json, related_json
from ..rank.explain import explain
from ..rank.ranking import Filters
from . import limits
from .limits import retry_after_seconds, write_limiter
from .metrics import Metrics
from .openapi import openapi_spec


class ApiError(Exception):
    """An error answered as {"error": code, "message": text} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_parameter", message)


# ASCII digits only: int() and float() also take "5_0", "+5", " 5", "٥" and "inf", which no client means.
_DIGITS = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")


def _too_long(name: str, limit: int, unit: str = "characters") -> ApiError:
    return ApiError(422, "too_long", f"{name} is longer than {limit:,} {unit}")


def _bounded(name: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise _too_long(name, limit)
    return value


def _k(raw: Any, settings: Settings) -> int:
    if raw is None:
        return settings.default_k
    if isinstance(raw, str):
        if not _DIGITS.fullmatch(raw):
            raise _bad(f"k must be an integer between 1 and {settings.max_k}, in digits only")
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= settings.max_k:
        raise _bad(f"k must be an integer between 1 and {settings.max_k}")
    return raw


def _string_list(name: str, value: Any, item_limit: int) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{name} must be a string or a list of strings")
    if len(value) > limits.MAX_FILTER_VALUES:
        raise _too_long(name, limits.MAX_FILTER_VALUES, "values")
    return tuple(_bounded(f"a value of {name}", v, item_limit) for v in value)


def _max_age(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, str) and _DECIMAL.fullmatch(raw):
        raw = float(raw)
    if not isinstance(raw, (int, float)) or isinstance(raw, bool) or not math.isfinite(raw) \
            or not 0 < raw <= limits.MAX_AGE_DAYS:
        raise _bad(f"max_age_days must be a positive number of days, at most {limits.MAX_AGE_DAYS:,}")
    return float(raw)


def _filters(lang: Any, section: Any, max_age_days: Any, exclude: Any) -> Filters:
    return Filters(
        langs=tuple(v.lower() for v in _string_list("lang", lang or [], limits.MAX_LANG_CHARS)),
        sections=_string_list("section", section or [], limits.MAX_SECTION_CHARS),
        max_age_days=_max_age(max_age_days),
        exclude_ids=_string_list("exclude", exclude or [], limits.MAX_ID_CHARS),
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


TOKEN_ENV = "RECOMMENDER_API_TOKEN"


def _text(data: Mapping[str, Any], name: str, default: str, limit: int = limits.MAX_WHY_CHARS) -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise ApiError(422, "invalid_override", f"'{name}' must be a string of at most {limit} characters")
    return _bounded(f"'{name}'", value, limit).strip() or default


# Sent with every answer. The API's JSON never loads anything, so it may load nothing; the editors' page (it
# holds the token) runs only its own script and style files and may not be framed (clickjacking).
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer"}


def _secure(response: Response, page: bool) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP if page else API_CSP)
    return response


def _check_request_bounds() -> None:
    """Path ids and the number of query parameters, before any view spends time on them."""
    article_id = (request.view_args or {}).get("article_id")
    if article_id is not None:
        _bounded("the article id", article_id, limits.MAX_ID_CHARS)
    if sum(len(values) for values in request.args.listvalues()) > limits.MAX_QUERY_PARAMS:
        raise _too_long("the query string", limits.MAX_QUERY_PARAMS, "parameters")


def _json_object() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send JSON (Content-Type: application/json)")
    # Parsed here, not by request.get_json: that one lets a deeply nested body raise RecursionError (a 500).
    try:
        raw = request.get_data(cache=True)
    except (OSError, ClientDisconnected):  # the body did not arrive within request_read_timeout
        raise ApiError(408, "request_timeout", "the request body did not arrive in time") from None
    try:
        data = parse_json(raw)
    except BadJson as exc:
        raise ApiError(400, "bad_json", str(exc)) from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return data


def create_app(settings: Settings | None = None, engine: Recommender | None = None,
               api_token: str | None = None) -> Flask:
    """The Flask app serving one loaded index; settings default to the file/environment configuration.

    api_token : the bearer token of the write endpoints (default: RECOMMENDER_API_TOKEN); without one they
    are disabled, never open.
    """
    settings = settings or load_settings()
    token = api_token if api_token is not None else os.environ.get(TOKEN_ENV, "")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["RECOMMENDER"] = engine or Recommender.open(settings)
    metrics = Metrics()
    app.extensions["recommender_metrics"] = metrics
    loaded: Recommender = app.config["RECOMMENDER"]
    metrics.set_index(loaded.snapshot.version, loaded.profile.name, len(loaded.snapshot))
    if settings.cors_origin_list:
        from flask_cors import CORS

        # Only the public reads and drafts: editors' writes are never offered to other origins.
        CORS(app, origins=settings.cors_origin_list, methods=["GET", "POST"], max_age=3600)
    limited = write_limiter(app, settings.write_rate_limit)

    def current() -> Recommender:
        return app.config["RECOMMENDER"]

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()
        current().refresh()  # a new snapshot, or articles another worker received, are served from now on
        _check_request_bounds()

    @app.after_request
    def record(response: Response) -> Response:
        engine = current()
        if engine.snapshot.version != metrics.served_version:
            metrics.set_index(engine.snapshot.version, engine.profile.name, len(engine.snapshot))
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.observe(endpoint, request.method, response.status_code, time.perf_counter() - g.get("started", 0.0))
        return _secure(response, page=request.endpoint == "editor_page")

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        return jsonify(error=error.code, message=error.message), error.status, error.headers

    @app.errorhandler(StateUnavailable)
    def state_unavailable(error: StateUnavailable) -> Any:
        app.logger.error("%s", error)
        return jsonify(error="state_unavailable", message=f"{error}; reads keep working, retry the write later"), \
            503, {"Retry-After": "30"}

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        code = (error.name or "error").lower().replace(" ", "_")
        response = jsonify(error=code, message=error.description)
        response.status_code = error.code or 500
        if response.status_code == 429:
            response.headers["Retry-After"] = str(retry_after_seconds(app))
            response.set_data(jsonify(error="rate_limited", message=f"too many writes from this client "
                                      f"(limit {settings.write_rate_limit}); retry later").get_data())
            return response
        original = error.get_response()
        for name in ("Allow", "WWW-Authenticate"):
            if original.headers.get(name):
                response.headers[name] = original.headers[name]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        app.logger.exception("unexpected error")
        return jsonify(error="internal_error", message="the server failed to answer this request"), 500

    def editor_only(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not token:
                raise ApiError(403, "writes_disabled", f"write endpoints are disabled: set {TOKEN_ENV} on the server")
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'",
                               {"WWW-Authenticate": 'Bearer realm="recommender"'})
            # Constant-time comparison: response time must not reveal how much of a guess was right.
            if not hmac.compare_digest(header[len("Bearer "):].encode(), token.encode()):
                raise ApiError(403, "forbidden", "the token is not valid")
            if current().editorial is None:
                raise ApiError(503, "editorial_disabled", "no state_dir is configured for editors' decisions")
            return view(*args, **kwargs)

        return guarded

    def overrides_json(article_id: str) -> dict[str, Any]:
        store = current().editorial
        return {"article_id": article_id, "overrides": store.overrides_for(article_id),
                "audit": store.audit(limit=50, article_id=article_id)}

    def known(article_id: str, status: int = 404) -> None:
        engine = current()
        if article_id not in engine.snapshot.row_of or article_id in engine.rules().taken_down:
            raise ApiError(status, "unknown_article", f"unknown article id {article_id!r}: it is not in the index")

    @app.get("/v1/articles/<article_id>/overrides")
    @editor_only
    def get_overrides(article_id: str) -> Any:
        known(article_id)
        return jsonify(overrides_json(article_id))

    @app.put("/v1/articles/<article_id>/overrides")
    @limited
    @editor_only
    def put_override(article_id: str) -> Any:
        known(article_id)
        data = _json_object()
        action, target = data.get("action"), data.get("target")
        if action not in ("pin", "block", "block_everywhere"):
            raise ApiError(422, "invalid_override", "'action' must be 'pin', 'block' or 'block_everywhere'")
        if not isinstance(target, str):
            raise ApiError(422, "invalid_override", "'target' must be an article id")
        _bounded("'target'", target, limits.MAX_ID_CHARS)
        known(target, status=422)
        if target == article_id:
            raise ApiError(422, "invalid_override", "an article cannot be pinned to or blocked from its own list")
        position = data.get("position")
        if action == "pin" and (not isinstance(position, int) or isinstance(position, bool)
                                or not 1 <= position <= settings.max_k):
            raise ApiError(422, "invalid_override", f"a pin needs 'position' between 1 and {settings.max_k}")
        current().editorial.set_override(article_id, action, target, _text(data, "who", "api", limits.MAX_WHO_CHARS),
                                         _text(data, "why", ""), position if action == "pin" else None)
        return jsonify(overrides_json(article_id))

    @app.delete("/v1/articles/<article_id>/overrides")
    @limited
    @editor_only
    def delete_override(article_id: str) -> Any:
        data = _json_object()
        action, target = data.get("action"), data.get("target")
        if action not in ("pin", "block", "block_everywhere") or not isinstance(target, str):
            raise ApiError(422, "invalid_override", "give 'action' (pin, block, block_everywhere) and 'target'")
        _bounded("'target'", target, limits.MAX_ID_CHARS)
        removed = current().editorial.remove_override(article_id, action, target, _text(data, "who", "api", limits.MAX_WHO_CHARS),
                                                      _text(data, "why", ""))
        if not removed:
            raise ApiError(404, "unknown_override", f"no {action} of {target!r} for {article_id!r}")
        return jsonify(overrides_json(article_id))

    @app.put("/v1/articles/<article_id>")
    @limited
    @editor_only
    def put_article(article_id: str) -> Any:
        data = _json_object()
        who, why = _text(data, "who", "api", limits.MAX_WHO_CHARS), _text(data, "why", "")
        if data.get("id", article_id) != article_id:
            raise ApiError(422, "invalid_article", "the body's id differs from the id in the URL")
        try:
            article = article_from_json({**{k: v for k, v in data.items() if k not in ("who", "why")},
                                         "id": article_id})
        except ValueError as exc:
            raise ApiError(422, "invalid_article", str(exc)) from None
        engine = current()
        taken_down = article_id in engine.rules().taken_down
        restore = taken_down and request.args.get("restore") == "true"
        if taken_down and not restore:
            # A CMS that re-sends a story must not undo a (legal) takedown by accident: only on purpose.
            raise ApiError(409, "taken_down", f"article {article_id!r} is taken down; to publish it again, "
                                              "repeat this PUT with ?restore=true (audited)")
        created = engine.put_article(article)
        engine.editorial.article_written(article_id, created, who, why, restore=restore)
        return jsonify(article_id=article_id, created=created, index_version=engine.snapshot.version), \
            201 if created else 200

    @app.delete("/v1/articles/<article_id>")
    @limited
    @editor_only
    def take_down(article_id: str) -> Any:
        data = _json_object() if request.content_length else {}
        engine = current()
        engine.editorial.take_down(article_id, _text(data, "who", "api", limits.MAX_WHO_CHARS), _text(data, "why", ""))
        return jsonify(article_id=article_id, taken_down=True, in_index=article_id in engine.snapshot.row_of)

    @app.get("/v1/articles")
    @editor_only
    def search_articles() -> Any:
        query = _bounded("q", request.args.get("q", ""), limits.MAX_SEARCH_CHARS)
        if not query.split():
            raise _bad("give q: an article id or words of its title")
        return jsonify(articles=[item_json(meta) for meta in current().find(query)])

    @app.get("/v1/articles/<article_id>/explain")
    @editor_only
    def explain_related(article_id: str) -> Any:
        engine = current()
        known(article_id)
        related = engine.related(article_id, _k(request.args.get("k"), settings), _query_filters())
        row = engine.snapshot.row_of[article_id]
        reasons = explain(engine.snapshot, engine.profile, row, related, settings.recency_weight)
        items = [{**item_json(engine.snapshot.articles[s.row]), **reason}
                 for s, reason in zip(related.suggestions, reasons)]
        return jsonify(article=item_json(engine.snapshot.articles[row]), items=items, removed=related.removed,
                       considered=related.considered, overrides=engine.editorial.overrides_for(article_id),
                       index_version=engine.snapshot.version, profile=engine.profile.name)

    @app.get("/editor")
    def editor_page() -> Any:
        return render_template("editor.html", default_k=settings.default_k, max_k=settings.max_k)

    @app.get("/v1/audit")
    @editor_only
    def audit() -> Any:
        raw = request.args.get("limit", "100")
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= limits.AUDIT_LIMIT:
            raise _bad(f"limit must be an integer between 1 and {limits.AUDIT_LIMIT}, in digits only")
        return jsonify(entries=current().editorial.audit(limit=int(raw)))

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
        return jsonify(openapi_spec(settings.max_k))

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
        # Never past the moment a scheduled story becomes visible: it may belong in this list from then on.
        response.cache_control.max_age = engine.cache_seconds(settings.cache_max_age)
        response.add_etag()
        return response.make_conditional(request)

    @app.post("/v1/related")
    def related_by_text() -> Any:
        data = _json_object()
        title, body, teaser = data.get("title"), data.get("body"), data.get("teaser", "")
        if not all(isinstance(v, str) for v in (title, body, teaser)) or not (title.strip() or body.strip()):
            raise ApiError(422, "invalid_article", "give 'title' and 'body' as strings, not both empty")
        k = _k(data.get("k"), settings)
        try:  # optional, validated as in the corpus format; the date is the moment ages are measured from
            draft = article_from_json({"id": "draft", "title": title.strip() or "-", "body": body.strip() or "-",
                                       "teaser": teaser, "lang": data.get("lang", "und"),
                                       "published_at": data.get("published_at", "1970-01-01T00:00:00+00:00")})
        except ValueError as exc:
            raise ApiError(422, "invalid_article", str(exc)) from None
        engine = current()
        now = draft.published_at if "published_at" in data else None
        related = engine.related_to_text(RawText(title, body, teaser), k, _json_filters(data), now=now)
        return jsonify(related_json(engine, None, related))

    return app
