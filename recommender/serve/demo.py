"""The demo pages: an article of the index as a reader would see it, with the related-stories block under it,
so a newcomer sees the product in one click from what `recommender serve` prints. Two variants: the block as
the <related-stories> widget renders it in the browser, and as the server renders it without any script."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..payloads import item_json
from . import current
from .errors import reader_errors
from .models import RelatedQuery, WidgetQuery
from .operations import operation
from .public import block_values

demo = Blueprint("demo", __name__)
# Pictures come from the publisher's servers, styles from this one; nothing runs.
DEMO_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")
# The widget's page: its script file and the API on this origin, no inline script or style at all (the
# policy a publisher's page may have, so the demo shows the widget works under it).
WIDGET_DEMO_CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; img-src https: http: data:; "
                   "style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


@demo.get("/demo/articles/<article_id>")
@operation("A plain article page with the related-stories block under it, rendered by the <related-stories> "
           "widget (/widget.js)", query=WidgetQuery, answers={200: ("text/html", "HTML page")},
           errors=(400, 404, 422, 503))
def demo_article(article_id: str, query: WidgetQuery) -> Any:
    """The article (title, teaser, picture) with a <related-stories> element and the widget's script."""
    engine = current.engine()
    with reader_errors():
        engine.check_placement(query.placement)
        meta = engine.article(article_id)
    # Without a placement the page asks for the no-script variant's, so both show the same list.
    return render_template("demo_widget.html", article=_article(meta), passed=_passed(query),
                           placement=query.placement or "article_bottom", k=query.k)


@demo.get("/demo/articles/<article_id>/no-script")
@operation("A plain article page with the related-stories block under it (server-rendered, no script)",
           query=RelatedQuery, answers={200: ("text/html", "HTML page")}, errors=(400, 404, 422, 503))
def demo_article_no_script(article_id: str, query: RelatedQuery) -> Any:
    """The article (title, teaser, picture) and its related stories, as the block renders them."""
    # The same block as GET .../related.html (click links, impression pixel), under the article_bottom placement
    # unless the link names another.
    placed = query.model_copy(update={"placement": query.placement or "article_bottom"})
    _, values = block_values(article_id, placed)
    with reader_errors():
        meta = current.engine().article(article_id)
    return render_template("demo_no_script.html", article=_article(meta), passed=_passed(query), **values)


def _article(meta: dict[str, Any]) -> dict[str, Any]:
    return {**item_json(meta), "author": meta.get("author", "")}


def _passed(query: WidgetQuery | RelatedQuery) -> dict[str, Any]:
    """The query parameters both variants take (placement, k), passed on to the other variant's link."""
    return {name: getattr(query, name) for name in ("placement", "k") if getattr(query, name) is not None}
