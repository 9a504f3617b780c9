"""JSON shapes of answers, shared by the API and the command line's --json."""
from __future__ import annotations

from typing import Any

from .engine import Recommender
from .rank.ranking import Related


def related_json(engine: Recommender, article_id: str | None, related: Related) -> dict[str, Any]:
    """The JSON shape of a related list (shared by the CLI and the API)."""
    items = [{**item_json(engine.snapshot.articles[s.row]), "score": round(s.score, 4),
              "relatedness": round(s.relatedness, 4), "relation": s.relation} for s in related.suggestions]
    return {"article_id": article_id, "items": items, "index_version": engine.snapshot.version}


def item_json(meta: dict[str, Any]) -> dict[str, Any]:
    """What a reader's page shows of one story (from a snapshot's metadata)."""
    return {**{key: meta[key] for key in ("id", "title", "teaser", "url", "published_at", "section", "lang")},
            "image": meta.get("image")}  # null without one: every item has the same keys
