"""Why a story was suggested: the parts of its score, shared terms and names, age. Pure functions."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..index.snapshot import Snapshot
from ..ingest.profiles import Profile
from .ranking import SECONDS_PER_DAY, Related


def shared_terms(snapshot: Snapshot, signal: str, row_a: int, row_b: int, top: int = 6,
                 max_doc_share: float = 0.5) -> list[str]:
    """The vocabulary entries that add most to the lexical similarity of two indexed articles, leaving out
    terms found in more than max_doc_share of all articles (function words, in any language)."""
    if signal not in snapshot.sparse:
        return []
    matrix, model = snapshot.sparse[signal], snapshot.sparse_models[signal]
    product = matrix[row_a].multiply(matrix[row_b]).tocoo()
    # scikit-learn's smoothed idf = ln((1 + n) / (1 + df)) + 1, solved for the document frequency df.
    n = matrix.shape[0]
    doc_share = ((1 + n) / np.exp(model.idf_[product.col] - 1.0) - 1.0) / n
    keep = doc_share <= max_doc_share + 1e-6
    order = np.argsort(-product.data[keep])[:top]
    return [model.vocabulary_[int(column)] for column in product.col[keep][order]]


def explain(snapshot: Snapshot, profile: Profile, article_row: int, related: Related, recency_weight: float,
            now: datetime | None = None) -> list[dict[str, Any]]:
    """One dict per suggestion: score parts, shared terms and names, age, pin and hidden versions."""
    now = now or datetime.now(timezone.utc)
    weights = {s.name: s.weight for s in profile.signals}
    items = []
    for position, suggestion in enumerate(related.suggestions, start=1):
        age_days = max(now.timestamp() - float(snapshot.published_at[suggestion.row]), 0.0) / SECONDS_PER_DAY
        items.append({
            "position": position,
            "id": suggestion.id,
            "pinned": suggestion.pinned,
            "score": round(suggestion.score, 4),
            "similarity": round(suggestion.similarity, 4),
            "relatedness": round(suggestion.relatedness, 4),
            "relation": suggestion.relation,
            "signals": {name: {"similarity": round(value, 4), "weight": weights.get(name, 0.0)}
                        for name, value in sorted(suggestion.signals.items())},
            "freshness": round(suggestion.freshness, 4),
            "recency_weight": recency_weight,
            "age_days": round(age_days, 1),
            "shared_terms": shared_terms(snapshot, "tfidf", article_row, suggestion.row),
            "shared_names": shared_terms(snapshot, "names", article_row, suggestion.row),
            "hidden_versions": list(suggestion.hidden_versions),
        })
    return items
