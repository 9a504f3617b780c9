"""Choosing k stories from a ranked pool: the reader's language first, at most so many pieces of one story,
maximal marginal relevance. Pure functions over small arrays (a pool is a few dozen candidates)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Selection:
    """How a list is chosen from its pool (all off: the k best by score).

    prefer_lang : stories in this language first, then the others by score ('' = no preference)
    max_per_story : at most this many suggestions of one story (same-story pairs, relations.py); 0 = no cap
    mmr_lambda : maximal marginal relevance, lambda * score - (1 - lambda) * the largest similarity to a story
        already chosen; 1.0 = by score alone
    """

    prefer_lang: str = ""
    max_per_story: int = 0
    mmr_lambda: float = 1.0

    @property
    def needs_pairs(self) -> bool:
        """Whether choosing compares candidates with each other (costs a small pairwise product)."""
        return self.max_per_story > 0 or self.mmr_lambda < 1.0

    @property
    def reorders(self) -> bool:
        """Whether the list may differ from the k best by score, so the pool must be larger than k."""
        return self.needs_pairs or bool(self.prefer_lang)


def select(scores: np.ndarray, k: int, selection: Selection, preferred: np.ndarray | None = None,
           similarity: np.ndarray | None = None, same_story: np.ndarray | None = None) -> list[int]:
    """Positions of the chosen candidates, in the order shown.

    scores : (n,) the candidates' final scores, best first
    preferred : (n,) bool, candidates in the preferred language (or None)
    similarity : (n, n) fused similarity between candidates, for MMR
    same_story : (n, n) bool, candidates of one story, for the cap
    """
    n = len(scores)
    if not selection.reorders:
        return list(range(min(k, n)))
    first = np.ones(n, dtype=bool) if preferred is None or not selection.prefer_lang else np.asarray(preferred)
    chosen: list[int] = []
    left = np.ones(n, dtype=bool)
    while len(chosen) < k and left.any():
        # Preferred-language candidates while any is left, the others after them.
        pool = left & first if (left & first).any() else left
        value = np.asarray(scores, dtype=np.float64).copy()
        if selection.mmr_lambda < 1.0 and chosen and similarity is not None:
            redundancy = similarity[:, chosen].max(axis=1)
            value = selection.mmr_lambda * value - (1.0 - selection.mmr_lambda) * redundancy
        if selection.max_per_story > 0 and chosen and same_story is not None:
            full = same_story[:, chosen].sum(axis=1) >= selection.max_per_story
            left &= ~full
            pool &= ~full
            if not pool.any():
                continue
        best = int(np.flatnonzero(pool)[np.argmax(value[pool])])
        chosen.append(best)
        left[best] = False
    return chosen
