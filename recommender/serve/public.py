"""The public API: related stories of an indexed article, or of a draft. No token; browsers may call it from
the cors_origins."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    jsonify,
    render_template,
    request,
    send_from_directory,
)

from ..embed.signals import RawText
from ..feedback.rids import seed_of
from ..ingest.corpus import article_from_json
from ..payloads import related_json
from ..rank.placements import Arm
from ..rank.ranking import Related as RankedList
from . import current
from .answers import Related
from .block import block, heading
from .errors import ApiError, reader_errors
from .models import Draft, RelatedQuery
from .operations import operation
from .tracking import base_url, seen_url, stamped

public = Blueprint("public", __name__)


@public.get("/v1/articles/<article_id>/related")
@operation("Related stories of an indexed article (never the article itself)", query=RelatedQuery,
           answers={200: (Related, "related stories with the answer's rid and each item's click_url; with ETag "
                                   "and Cache-Control (max-age ends before the next scheduled story is published)"),
                    304: (None, "not modified (If-None-Match matched the ETag)")},
           errors=(400, 404, 422, 503))
def related_by_id(article_id: str, query: RelatedQuery) -> Any:
    """The related list of an indexed article, cacheable until the index or the schedule changes it."""
    answer, _ = _answer(article_id, query)
    return _cacheable(jsonify(answer), answer)


@public.get("/v1/articles/<article_id>/related.html")
@operation("The same related stories as an HTML fragment to include in a page (server-side includes, edge "
           "includes, server rendering): a heading in the article's language, a list with pictures, titles, "
           "teasers, sections and links (through the click link, which counts the click); style it with "
           "related.css", query=RelatedQuery,
           answers={200: ("text/html", "the fragment (empty when no story passes); ETag and Cache-Control as "
                                       "for the JSON list"),
                    304: (None, "not modified (If-None-Match matched the ETag)")},
           errors=(400, 404, 422, 503))
def related_block(article_id: str, query: RelatedQuery) -> Any:
    """The related list of an indexed article as the reader's block, rendered on the server."""
    answer, values = block_values(article_id, query)
    html = render_template("related_block.html", **values)
    return _cacheable(Response(html, content_type="text/html; charset=utf-8"), answer)


def block_values(article_id: str, query: RelatedQuery) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON answer of a related request and the template values of its block: links through the click
    links, and the impression pixel's address (seen_url)."""
    answer, related = _answer(article_id, query)
    values = block(current.engine(), article_id, related)
    for item, listed in zip(values["items"], answer["items"]):
        item["link"] = listed["click_url"] if item["link"] else None  # a story without a web address: no link
    seen = seen_url(base_url(current.settings()), answer["rid"], article_id, query.placement, len(values["items"]))
    return answer, {**values, "seen_url": seen}


@public.get("/related.css")
@operation("The stylesheet of the related-stories block (rs- classes, custom properties to override)",
           answers={200: ("text/css", "CSS")})
def related_css() -> Any:
    """The block's stylesheet, cacheable for a day."""
    return _public_file("related.css", 86400)


@public.get("/widget.js")
@operation("The <related-stories> element: a script a publisher's page loads to show the block (it fetches the "
           "JSON list when the element comes near the screen; see the README for the snippet)",
           answers={200: ("application/javascript", "JavaScript, public, cacheable for an hour")})
def widget_js() -> Any:
    """The widget's script; an hour in caches, so a fix reaches readers the same day."""
    return _public_file("widget.js", 3600, "application/javascript")


def _public_file(name: str, max_age: int, mimetype: str | None = None) -> Response:
    """A file of static/ that every cache may keep for max_age seconds (ETag and Last-Modified for revalidation)."""
    response = send_from_directory(public.root_path + "/static", name, max_age=max_age, mimetype=mimetype)
    response.cache_control.public = True
    return response


def _answer(article_id: str, query: RelatedQuery) -> tuple[dict[str, Any], RankedList]:
    """The JSON answer of a related request (with a new rid, the A/B arm it draws, click links) and its list."""
    engine = current.engine()
    rid = current.tracking().rids.draw(article_id, query.placement)
    with reader_errors():
        arm = _arm(query.placement, rid)
        related = engine.related(article_id, query.k, query.filters(), query.placement, query.options(), arm)
    answer = {**related_json(engine, article_id, related), **heading(engine, article_id)}
    return stamped(answer, rid, query.placement, arm, base_url(current.settings())), related


def _arm(placement: str | None, rid: str) -> Arm | None:
    """The A/B arm of the placement this rid draws; UnknownPlacement for a name not configured."""
    engine = current.engine()
    engine.check_placement(placement)
    return engine.arm_for(placement, seed_of(rid))


def _cacheable(response: Response, answer: dict[str, Any]) -> Response:
    """response with an ETag of answer's list and a public cache lifetime that ends before the next scheduled
    story is published (it may belong in this list from then on); 304 for a matching If-None-Match.

    The ETag leaves out the rid and the click links, which are new in every answer: a client holding the same
    list keeps it (with its rid, still valid), and another arm's list is another ETag."""
    response.cache_control.public = True
    response.cache_control.max_age = current.engine().cache_seconds(current.settings().cache_max_age)
    listed = {**answer, "rid": None, "items": [{**item, "click_url": None} for item in answer["items"]]}
    response.set_etag(hashlib.sha1(json.dumps(listed, sort_keys=True, default=str).encode()).hexdigest())
    return response.make_conditional(request)


@public.post("/v1/related")
@operation("Related stories of an article that is not in the index (a draft)", body=Draft,
           answers={200: (Related, "related stories")}, errors=(400, 408, 413, 415, 422, 503))
def related_by_text(body: Draft) -> Any:
    """The related list of a draft; ages count from its published_at when it gives one."""
    try:  # validated as in the corpus format; the date is the moment ages are measured from
        draft = article_from_json({"id": "draft", "title": body.title.strip() or "-", "body": body.body.strip() or "-",
                                   "teaser": body.teaser, "lang": body.lang, "published_at": body.published_at})
    except ValueError as exc:
        raise ApiError(422, "invalid_article", str(exc)) from None
    engine = current.engine()
    now = draft.published_at if "published_at" in body.model_fields_set else None
    rid = current.tracking().rids.draw(None, body.placement)
    with reader_errors():
        arm = _arm(body.placement, rid)
        related = engine.related_to_text(RawText(body.title, body.body, body.teaser), body.k, body.filters.filters(),
                                         now=now, placement=body.placement, request=body.options(), arm=arm)
    answer = {**related_json(engine, None, related), **heading(engine, None, draft.lang)}
    return jsonify(stamped(answer, rid, body.placement, arm, base_url(current.settings())))
