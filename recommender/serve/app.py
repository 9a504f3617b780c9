"""The HTTP service (Flask): one loaded index answered through the public, editor and ops blueprints, errors
always as JSON (errors.py), every answer with security headers."""
from __future__ import annotations

import time

from flask import Flask, Response, g, request

from ..config import Settings, load_settings
from ..engine import Recommender
from . import current, errors, limits
from .demo import DEMO_CSP, WIDGET_DEMO_CSP, demo
from .editor import editor
from .events import events
from .limits import limit_rates
from .metrics import Metrics
from .models import ArticlePath, validate
from .ops import ops
from .public import public
from .tracking import Tracking

# Sent with every answer. The API's JSON never loads anything, so it may load nothing; the editors' page (it
# holds the token) runs only its own script and style files and may not be framed (clickjacking).
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# The pages a browser shows, and what each may load (every other answer: API_CSP).
PAGES = {"editor.editor_page": PAGE_CSP, "demo.demo_article": WIDGET_DEMO_CSP,
         "demo.demo_article_no_script": DEMO_CSP}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer"}


def create_app(settings: Settings | None = None, engine: Recommender | None = None) -> Flask:
    """The Flask app serving one loaded index.

    settings : the configuration, the editors' api_token among it (default: the file and the environment, read
        here once and passed down); without a token the editors' endpoints are disabled, never open.
    engine : the loaded index (default: the one settings.index_dir publishes).
    """
    settings = settings or load_settings()
    engine = engine or Recommender.open(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    metrics = Metrics()
    metrics.set_index(engine.snapshot.version, engine.profile.name, len(engine.snapshot))
    current.keep(app, settings, engine, metrics, Tracking.open(settings))
    if settings.cors_origin_list:
        from flask_cors import CORS

        # Reads and drafts only (GET, POST): editors' writes are never offered to other origins.
        CORS(app, origins=settings.cors_origin_list, methods=["GET", "POST"], max_age=3600)
    # Registered before the hooks below: a client over a limit is refused before anything else runs.
    limit_rates(app, {"write_rate_limit": (settings.write_rate_limit, editor),
                      "event_rate_limit": (settings.event_rate_limit, events)})
    app.before_request(_start)
    app.after_request(_finish)
    errors.init_app(app)
    for blueprint in (public, editor, events, ops, demo):
        app.register_blueprint(blueprint)
    return app


def _start() -> None:
    g.started = time.perf_counter()
    current.engine().refresh()  # a new snapshot, or articles another worker received, are served from now on
    # Path ids and the number of query parameters, before any view spends time on them.
    article_id = (request.view_args or {}).get("article_id")
    if article_id is not None:
        validate(ArticlePath, {"article_id": article_id})
    if sum(len(values) for values in request.args.listvalues()) > limits.MAX_QUERY_PARAMS:
        raise errors.too_long("the query string", limits.MAX_QUERY_PARAMS, "parameters")


def _finish(response: Response) -> Response:
    engine, metrics = current.engine(), current.metrics()
    if engine.snapshot.version != metrics.served_version:
        metrics.set_index(engine.snapshot.version, engine.profile.name, len(engine.snapshot))
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.observe(endpoint, request.method, response.status_code, time.perf_counter() - g.get("started", 0.0))
    return _secure(response, PAGES.get(request.endpoint or "", API_CSP))


def _secure(response: Response, policy: str) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy", policy)
    return response
