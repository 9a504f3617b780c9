"""The demo page: an article of the index as a reader would see it, with the related-stories block under it,
so a newcomer sees the product in one click from what `recommender serve` prints."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..engine import UnknownArticle
from ..payloads import item_json
from . import current
from .block import block
from .errors import ApiError
from .models import RelatedQuery
from .operations import operation

demo = Blueprint("demo", __name__)
# Pictures come from the publisher's servers, styles from this one; nothing runs.
DEMO_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")


@demo.get("/demo/articles/<article_id>")
@operation("A plain article page with the related-stories block under it (server-rendered, no script)",
           query=RelatedQuery, answers={200: ("text/html", "HTML page")}, errors=(400, 404, 422, 503))
def demo_article(article_id: str, query: RelatedQuery) -> Any:
    """The article (title, teaser, picture) and its related stories, as the block renders them."""
    engine = current.engine()
    try:
        related = engine.related(article_id, query.k, query.filters(), query.placement or "article_bottom",
                                 query.options())
    except UnknownArticle as exc:
        raise ApiError(404, "unknown_article", str(exc)) from None
    meta = engine.snapshot.articles[engine.snapshot.row_of[article_id]]
    return render_template("demo_article.html", article={**item_json(meta), "author": meta.get("author", "")},
                           **block(engine, article_id, related))
