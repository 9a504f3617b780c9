"""The public API: related stories of an indexed article, or of a draft. No token; browsers may call it from
the cors_origins."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from ..embed.signals import RawText
from ..engine import UnknownArticle
from ..ingest.corpus import article_from_json
from ..payloads import related_json
from . import current, params
from .errors import ApiError

public = Blueprint("public", __name__)


@public.get("/v1/articles/<article_id>/related")
def related_by_id(article_id: str) -> Any:
    """The related list of an indexed article, cacheable until the index or the schedule changes it."""
    engine, settings = current.engine(), current.settings()
    k = params.k(request.args.get("k"), settings)
    try:
        related = engine.related(article_id, k, params.query_filters())
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


@public.post("/v1/related")
def related_by_text() -> Any:
    """The related list of a draft; ages count from its published_at when it gives one."""
    data = params.json_object()
    title, body, teaser = data.get("title"), data.get("body"), data.get("teaser", "")
    if not all(isinstance(v, str) for v in (title, body, teaser)) or not (title.strip() or body.strip()):
        raise ApiError(422, "invalid_article", "give 'title' and 'body' as strings, not both empty")
    k = params.k(data.get("k"), current.settings())
    try:  # optional, validated as in the corpus format; the date is the moment ages are measured from
        draft = article_from_json({"id": "draft", "title": title.strip() or "-", "body": body.strip() or "-",
                                   "teaser": teaser, "lang": data.get("lang", "und"),
                                   "published_at": data.get("published_at", "1970-01-01T00:00:00+00:00")})
    except ValueError as exc:
        raise ApiError(422, "invalid_article", str(exc)) from None
    engine = current.engine()
    now = draft.published_at if "published_at" in data else None
    related = engine.related_to_text(RawText(title, body, teaser), k, params.json_filters(data), now=now)
    return jsonify(related_json(engine, None, related))
