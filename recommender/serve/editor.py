"""The editors' API and page: pins and blocks, articles received and taken down, search, explanations, audit.

Every endpoint but the page itself needs the api_token (auth.py); the writes share one rate limit
per client (limits.limit_writes).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, request

from ..ingest.corpus import article_from_json
from ..payloads import item_json
from ..rank.explain import explain
from . import current, limits, params
from .auth import editor_only
from .errors import ApiError

editor = Blueprint("editor", __name__)


def _overrides(article_id: str) -> dict[str, Any]:
    store = current.engine().editorial
    return {"article_id": article_id, "overrides": store.overrides_for(article_id),
            "audit": store.audit(limit=50, article_id=article_id)}


def _known(article_id: str, status: int = 404) -> None:
    engine = current.engine()
    if article_id not in engine.snapshot.row_of or article_id in engine.rules().taken_down:
        raise ApiError(status, "unknown_article", f"unknown article id {article_id!r}: it is not in the index")


@editor.get("/v1/articles/<article_id>/overrides")
@editor_only
def get_overrides(article_id: str) -> Any:
    """An article's pins and blocks."""
    _known(article_id)
    return jsonify(_overrides(article_id))


@editor.put("/v1/articles/<article_id>/overrides")
@editor_only
def put_override(article_id: str) -> Any:
    """Pin or block a story in an article's list."""
    _known(article_id)
    data = params.json_object()
    action, target = data.get("action"), data.get("target")
    if action not in ("pin", "block", "block_everywhere"):
        raise ApiError(422, "invalid_override", "'action' must be 'pin', 'block' or 'block_everywhere'")
    if not isinstance(target, str):
        raise ApiError(422, "invalid_override", "'target' must be an article id")
    params.bounded("'target'", target, limits.MAX_ID_CHARS)
    _known(target, status=422)
    if target == article_id:
        raise ApiError(422, "invalid_override", "an article cannot be pinned to or blocked from its own list")
    max_k, position = current.settings().max_k, data.get("position")
    if action == "pin" and (not isinstance(position, int) or isinstance(position, bool)
                            or not 1 <= position <= max_k):
        raise ApiError(422, "invalid_override", f"a pin needs 'position' between 1 and {max_k}")
    current.engine().editorial.set_override(article_id, action, target, _who(data), params.text(data, "why", ""),
                                            position if action == "pin" else None)
    return jsonify(_overrides(article_id))


@editor.delete("/v1/articles/<article_id>/overrides")
@editor_only
def delete_override(article_id: str) -> Any:
    """Undo a pin or block."""
    data = params.json_object()
    action, target = data.get("action"), data.get("target")
    if action not in ("pin", "block", "block_everywhere") or not isinstance(target, str):
        raise ApiError(422, "invalid_override", "give 'action' (pin, block, block_everywhere) and 'target'")
    params.bounded("'target'", target, limits.MAX_ID_CHARS)
    if not current.engine().editorial.remove_override(article_id, action, target, _who(data),
                                                      params.text(data, "why", "")):
        raise ApiError(404, "unknown_override", f"no {action} of {target!r} for {article_id!r}")
    return jsonify(_overrides(article_id))


@editor.put("/v1/articles/<article_id>")
@editor_only
def put_article(article_id: str) -> Any:
    """Receive an article (201 new, 200 updated); a taken-down one only with ?restore=true."""
    data = params.json_object()
    who, why = _who(data), params.text(data, "why", "")
    if data.get("id", article_id) != article_id:
        raise ApiError(422, "invalid_article", "the body's id differs from the id in the URL")
    try:
        article = article_from_json({**{k: v for k, v in data.items() if k not in ("who", "why")}, "id": article_id})
    except ValueError as exc:
        raise ApiError(422, "invalid_article", str(exc)) from None
    engine = current.engine()
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


@editor.delete("/v1/articles/<article_id>")
@editor_only
def take_down(article_id: str) -> Any:
    """Take an article down from every list."""
    data = params.json_object() if request.content_length else {}
    engine = current.engine()
    engine.editorial.take_down(article_id, _who(data), params.text(data, "why", ""))
    return jsonify(article_id=article_id, taken_down=True, in_index=article_id in engine.snapshot.row_of)


@editor.get("/v1/articles")
@editor_only
def search_articles() -> Any:
    """Articles by id or title words."""
    query = params.bounded("q", request.args.get("q", ""), limits.MAX_SEARCH_CHARS)
    if not query.split():
        raise ApiError(400, "bad_parameter", "give q: an article id or words of its title")
    return jsonify(articles=[item_json(meta) for meta in current.engine().find(query)])


@editor.get("/v1/articles/<article_id>/explain")
@editor_only
def explain_related(article_id: str) -> Any:
    """A related list with the reasons for every item."""
    engine, settings = current.engine(), current.settings()
    _known(article_id)
    related = engine.related(article_id, params.k(request.args.get("k"), settings), params.query_filters())
    row = engine.snapshot.row_of[article_id]
    reasons = explain(engine.snapshot, engine.profile, row, related, settings.recency_weight)
    items = [{**item_json(engine.snapshot.articles[s.row]), **reason} for s, reason in zip(related.suggestions, reasons)]
    return jsonify(article=item_json(engine.snapshot.articles[row]), items=items, removed=related.removed,
                   considered=related.considered, overrides=engine.editorial.overrides_for(article_id),
                   index_version=engine.snapshot.version, profile=engine.profile.name)


@editor.get("/editor")
def editor_page() -> Any:
    """The editors' page; everything it shows comes from the token endpoints."""
    settings = current.settings()
    return render_template("editor.html", default_k=settings.default_k, max_k=settings.max_k)


@editor.get("/v1/audit")
@editor_only
def audit() -> Any:
    """The audit trail, newest first."""
    raw = request.args.get("limit", "100")
    if not params.DIGITS.fullmatch(raw) or not 1 <= int(raw) <= limits.AUDIT_LIMIT:
        raise ApiError(400, "bad_parameter", f"limit must be an integer between 1 and {limits.AUDIT_LIMIT}, "
                                             "in digits only")
    return jsonify(entries=current.engine().editorial.audit(limit=int(raw)))


def _who(data: Any) -> str:
    return params.text(data, "who", "api", limits.MAX_WHO_CHARS)
