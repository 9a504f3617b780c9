"""The editors' API and page: pins and blocks, articles received and taken down, search, explanations, audit.

Every endpoint but the page itself needs the api_token (operations.authorize); the writes share one rate limit
per client (limits.limit_rates).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template

from ..engine import UnknownPlacement
from ..ingest.corpus import article_from_json
from ..payloads import item_json
from ..rank.explain import explain
from . import current
from .answers import AuditTrail, Explained, Found, Overrides, TakenDown, Written
from .errors import ApiError
from .models import (
    Article,
    AuditQuery,
    NewArticlePath,
    Override,
    Reason,
    RelatedQuery,
    Restore,
    Search,
)
from .operations import operation

editor = Blueprint("editor", __name__)
WRITE_ERRORS = (400, 401, 403, 404, 408, 413, 415, 422, 429, 503)


def _overrides(article_id: str) -> dict[str, Any]:
    store = current.engine().editorial
    return {"article_id": article_id, "overrides": store.overrides_for(article_id),
            "audit": store.audit(limit=50, article_id=article_id)}


def _known(article_id: str, status: int = 404) -> None:
    engine = current.engine()
    if article_id not in engine.snapshot.row_of or article_id in engine.rules().taken_down:
        raise ApiError(status, "unknown_article", f"unknown article id {article_id!r}: it is not in the index")


@editor.get("/v1/articles/<article_id>/overrides")
@operation("The editors' pins and blocks for this article's list, with their audit trail", editor=True,
           answers={200: (Overrides, "the article's decisions")}, errors=(401, 403, 404, 422, 503))
def get_overrides(article_id: str) -> Any:
    """An article's pins and blocks."""
    _known(article_id)
    return jsonify(_overrides(article_id))


@editor.put("/v1/articles/<article_id>/overrides")
@operation("Pin a story at a position, block it from this list, or block it everywhere", editor=True,
           body=Override, answers={200: (Overrides, "the article's decisions")}, errors=WRITE_ERRORS)
def put_override(article_id: str, body: Override) -> Any:
    """Pin or block a story in an article's list."""
    _known(article_id)
    _known(body.target, status=422)
    if body.target == article_id:
        raise ApiError(422, "invalid_override", "an article cannot be pinned to or blocked from its own list")
    max_k, position = current.settings().max_k, body.position
    if body.action == "pin" and (not isinstance(position, int) or isinstance(position, bool)
                                 or not 1 <= position <= max_k):
        raise ApiError(422, "invalid_override", f"a pin needs 'position' between 1 and {max_k}")
    current.engine().editorial.set_override(article_id, body.action, body.target, body.who, body.why,
                                            position if body.action == "pin" else None)
    return jsonify(_overrides(article_id))


@editor.delete("/v1/articles/<article_id>/overrides")
@operation("Undo a pin or block", editor=True, body=Override,
           answers={200: (Overrides, "the article's decisions")}, errors=WRITE_ERRORS)
def delete_override(article_id: str, body: Override) -> Any:
    """Undo a pin or block."""
    if not current.engine().editorial.remove_override(article_id, body.action, body.target, body.who, body.why):
        raise ApiError(404, "unknown_override", f"no {body.action} of {body.target!r} for {article_id!r}")
    return jsonify(_overrides(article_id))


@editor.put("/v1/articles/<article_id>")
@operation("Insert or update an article: embedded (by the embedding process) and served at once, without a rebuild",
           editor=True,
           path=NewArticlePath, query=Restore, body=Article, answers={201: (Written, "created"), 200: (Written, "updated")},
           errors=(400, 401, 403, 404, 409, 408, 413, 415, 422, 429, 503))
def put_article(article_id: str, query: Restore, body: Article) -> Any:
    """Receive an article (201 new, 200 updated); a taken-down one only with ?restore=true."""
    if "id" in body.model_fields_set and body.id != article_id:
        raise ApiError(422, "invalid_article", "the body's id differs from the id in the URL")
    try:
        article = article_from_json(body.record(article_id))
    except ValueError as exc:
        raise ApiError(422, "invalid_article", str(exc)) from None
    engine = current.engine()
    taken_down = article_id in engine.rules().taken_down
    restore = taken_down and query.restore == "true"
    if taken_down and not restore:
        # A CMS that re-sends a story must not undo a (legal) takedown by accident: only on purpose.
        raise ApiError(409, "taken_down", f"article {article_id!r} is taken down; to publish it again, "
                                          "repeat this PUT with ?restore=true (audited)")
    created = engine.put_article(article)
    engine.editorial.article_written(article_id, created, body.who, body.why, restore=restore)
    return jsonify(article_id=article_id, created=created, index_version=engine.snapshot.version), \
        201 if created else 200


@editor.delete("/v1/articles/<article_id>")
@operation("Take an article down: from the next request on it appears in no list", editor=True,
           body=Reason, body_required=False, answers={200: (TakenDown, "taken down")}, errors=WRITE_ERRORS)
def take_down(article_id: str, body: Reason) -> Any:
    """Take an article down from every list."""
    engine = current.engine()
    engine.editorial.take_down(article_id, body.who, body.why)
    return jsonify(article_id=article_id, taken_down=True, in_index=article_id in engine.snapshot.row_of)


@editor.get("/v1/articles")
@operation("Find articles by id or title words (for the editors' page)", editor=True, query=Search,
           answers={200: (Found, "up to 20 matching articles, newest first")}, errors=(400, 401, 403, 422, 503))
def search_articles(query: Search) -> Any:
    """Articles by id or title words."""
    return jsonify(articles=[item_json(meta) for meta in current.engine().find(query.q)])


@editor.get("/v1/articles/<article_id>/explain")
@operation("The related list as readers see it, with the reasons for every item", editor=True, query=RelatedQuery,
           answers={200: (Explained, "items with score parts, shared terms and names, age, pins; filter and "
                                     "override effects")},
           errors=(400, 401, 403, 404, 422, 503))
def explain_related(article_id: str, query: RelatedQuery) -> Any:
    """A related list with the reasons for every item."""
    engine = current.engine()
    _known(article_id)
    try:
        related = engine.related(article_id, query.k, query.filters(), query.placement, query.options())
        # The freshness share the list was ranked with: the placement's or the request's, else the setting's.
        ranked_with, _ = engine.ranking(query.k, query.filters(), query.placement, query.options(), None)
    except UnknownPlacement as exc:
        raise ApiError(400, "unknown_placement", str(exc)) from None
    row = engine.snapshot.row_of[article_id]
    reasons = explain(engine.snapshot, engine.profile, row, related, ranked_with.recency_weight)
    items = [{**item_json(engine.snapshot.articles[s.row]), **reason} for s, reason in zip(related.suggestions, reasons)]
    return jsonify(article=item_json(engine.snapshot.articles[row]), items=items, removed=related.removed,
                   considered=related.considered, overrides=engine.editorial.overrides_for(article_id),
                   index_version=engine.snapshot.version, profile=engine.profile.name)


@editor.get("/editor")
@operation("The editors' page (HTML; asks for the token once)", answers={200: ("text/html", "HTML page")})
def editor_page() -> Any:
    """The editors' page; everything it shows comes from the token endpoints."""
    settings = current.settings()
    return render_template("editor.html", default_k=settings.default_k, max_k=settings.max_k)


@editor.get("/v1/audit")
@operation("Who changed what and why, newest first", editor=True, query=AuditQuery,
           answers={200: (AuditTrail, "audit entries")}, errors=(400, 401, 403, 503))
def audit(query: AuditQuery) -> Any:
    """The audit trail, newest first."""
    return jsonify(entries=current.engine().editorial.audit(limit=query.limit))
