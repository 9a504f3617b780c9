"""What the reader's block shows of a related list (the server-rendered fragment; the widget renders the same
markup from the JSON): a heading in the article's language and, per story, only what is safe to put in a page."""
from __future__ import annotations

import re
from typing import Any

from ..engine import Recommender
from ..rank.ranking import Related

# The block's heading in the article's language; other languages get the English one.
HEADINGS = {"de": "Das könnte Sie auch interessieren", "en": "You might also like"}
# A story's address becomes a link, and a picture's is shown, only when it is a web address: a javascript: or
# data: url is never one. The corpus reader refuses other picture addresses already; the rule here is the
# widget's too (widget.js), so both renderers show the same block whatever an index holds.
_WEB_ADDRESS = re.compile(r"https?://[^\s\x00-\x1f\x7f\"'<>\\]+", re.IGNORECASE)


def web_address(url: str) -> bool:
    """Whether url is an http(s) address a link may lead to (no javascript:, data:, quote or space)."""
    return _WEB_ADDRESS.fullmatch(url) is not None


def heading(engine: Recommender, article_id: str | None, lang: str | None = None) -> dict[str, str]:
    """The block's language and heading: the article's language (or lang, for a draft) when there is a heading
    in it, else English."""
    snapshot = engine.snapshot
    if lang is None and article_id is not None and article_id in snapshot.row_of:
        lang = snapshot.articles[snapshot.row_of[article_id]]["lang"]
    lang = lang if lang in HEADINGS else "en"
    return {"lang": lang, "heading": HEADINGS[lang]}


def block(engine: Recommender, article_id: str | None, related: Related, lang: str | None = None) -> dict[str, Any]:
    """The template values of the block: lang, heading and items (title, teaser, section, link, image, relation)."""
    snapshot = engine.snapshot
    items = []
    for suggestion in related.suggestions:
        meta = snapshot.articles[suggestion.row]
        url, image = meta.get("url") or "", meta.get("image")
        items.append({"title": meta["title"], "teaser": meta["teaser"], "section": meta["section"],
                      "link": url if web_address(url) else None,
                      "image": image if image and web_address(image["url"]) else None,
                      "relation": suggestion.relation})
    return {**heading(engine, article_id, lang), "items": items}
