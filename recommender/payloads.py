"""JSON shapes of answers, shared by the API and the command line's --json."""
from __future__ import annotations

from typing import Any

from .engine import Recommender
from .ranking import Related


def related_json(engine: Recommender, article_id: str | None, related: Related) -> dict[str, Any]:
    """The JSON shape of a related list (shared by the CLI and the API)."""
    items = []
    for suggestion in related.suggestions:
        meta = engine.snapshot.articles[suggestion.row]
        items.append({
            "id": meta["id"], "title": meta["title"], "teaser": meta["teaser"], "url": meta["url"],
            "published_at": meta["published_at"], "section": meta["section"], "lang": meta["lang"],
            "score": round(suggestion.score, 4),
        })
    return {"article_id": article_id, "items": items, "index_version": engine.snapshot.version}
