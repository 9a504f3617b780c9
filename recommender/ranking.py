"""Related stories: fused similarity, filters, freshness, near-duplicate collapse. Pure functions over arrays."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse

from .index import Snapshot
from .profiles import Profile

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Filters:
    """Which articles may be suggested at all."""

    langs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    max_age_days: float | None = None
    exclude_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RankOptions:
    """How the list is put together.

    recency_weight : share of the final score that is freshness, 0.5 ** (age_days / half_life_days)
    duplicate_threshold : lexical cosine at or above which two articles are versions of one text
    now : the moment ages are measured from (default: the present)
    """

    k: int = 5
    recency_weight: float = 0.1
    half_life_days: float = 30.0
    duplicate_threshold: float = 0.8
    now: datetime | None = None


@dataclass(frozen=True)
class QueryVectors:
    """The query in every signal of a profile: dense unit vectors and sparse (1, n_terms) rows."""

    dense: dict[str, np.ndarray]
    sparse: dict[str, sparse.csr_matrix]


@dataclass(frozen=True)
class Suggestion:
    """One related story and why it is there."""

    id: str
    row: int
    score: float
    similarity: float
    freshness: float
    signals: dict[str, float]
    hidden_versions: tuple[str, ...] = ()
    pinned: bool = False


@dataclass(frozen=True)
class Related:
    """The ranked suggestions plus what the filters removed, for explanations."""

    suggestions: list[Suggestion]
    considered: int
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """Suggested article ids, best first."""
        return [s.id for s in self.suggestions]


def query_from_row(snapshot: Snapshot, row: int) -> QueryVectors:
    """The stored vectors of an indexed article, as a query."""
    return QueryVectors(
        {name: np.asarray(v[row]) for name, v in snapshot.dense.items()},
        {name: m[row] for name, m in snapshot.sparse.items()},
    )


def signal_similarities(
    snapshot: Snapshot, query: QueryVectors, names: Iterable[str] | None = None, rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Cosine similarity of the query with the articles (all, or those in rows), per signal (all, or those in
    names): name -> (n,) float32. A full scan reads every vector, so callers ask only for what they weigh."""
    sims: dict[str, np.ndarray] = {}
    if names is None:
        names = [*snapshot.dense, *snapshot.sparse]
    for name in names:
        if name in snapshot.dense:
            vectors = snapshot.dense[name] if rows is None else snapshot.dense[name][rows]
            sims[name] = np.asarray(vectors @ query.dense[name], dtype=np.float32)
        else:
            matrix = snapshot.sparse[name] if rows is None else snapshot.sparse[name][rows]
            # A dense query vector makes this one pass over the matrix's non-zeros.
            sims[name] = np.asarray(matrix @ query.sparse[name].toarray().ravel(), dtype=np.float32)
    return sims


def weighted_signals(profile: Profile) -> list[str]:
    """Names of the signals that count in the fused score."""
    return [s.name for s in profile.signals if s.weight]


def fuse(profile: Profile, sims: dict[str, np.ndarray]) -> np.ndarray:
    """Weighted mean of the profile's signal similarities (only weighted signals need to be present)."""
    total = sum(s.weight for s in profile.signals)
    fused = np.zeros_like(sims[weighted_signals(profile)[0]])
    for signal in profile.signals:
        if signal.weight:
            fused += (signal.weight / total) * sims[signal.name]
    return fused


def freshness(published_at: np.ndarray, now: datetime, half_life_days: float) -> np.ndarray:
    """0.5 ** (age / half-life) for each timestamp; future dates count as age 0."""
    age_days = np.maximum(now.timestamp() - published_at.astype(np.float64), 0.0) / SECONDS_PER_DAY
    return np.power(0.5, age_days / half_life_days).astype(np.float32)


def _allowed(snapshot: Snapshot, filters: Filters, now: datetime, removed: dict[str, int]) -> np.ndarray:
    n = len(snapshot)
    mask = np.ones(n, dtype=bool)

    def apply(name: str, keep: np.ndarray) -> None:
        removed[name] = int(np.count_nonzero(mask & ~keep))
        mask[:] &= keep

    if snapshot.shadowed is not None:
        mask &= ~snapshot.shadowed  # an older version of an article updated through the API

    if filters.langs:
        apply("lang", np.isin(snapshot.langs, list(filters.langs)))
    if filters.sections:
        apply("section", np.isin(snapshot.sections, [s.casefold() for s in filters.sections]))
    if filters.max_age_days is not None:
        oldest = now.timestamp() - filters.max_age_days * SECONDS_PER_DAY
        apply("max_age", snapshot.published_at >= oldest)
    if filters.exclude_ids:
        keep = np.ones(n, dtype=bool)
        for article_id in filters.exclude_ids:
            row = snapshot.row_of.get(article_id)
            if row is not None:
                keep[row] = False
        apply("exclude", keep)
    return mask


def rank(
    snapshot: Snapshot,
    profile: Profile,
    query: QueryVectors,
    filters: Filters = Filters(),
    options: RankOptions = RankOptions(),
    self_row: int | None = None,
    pins: Sequence[tuple[int, str]] = (),
) -> Related:
    """The top options.k related articles for a query; never the query article itself (self_row) nor any
    version of it, and never two versions of one text: near-duplicates collapse to their newest member.

    pins : (1-based position, article id) an editor fixed in this list; pinned articles skip the filters
    (the editor chose them) but not exclude_ids, which carries blocks and takedowns.
    """
    now = options.now or datetime.now(timezone.utc)
    removed: dict[str, int] = {}
    n = len(snapshot)
    if n == 0:
        return Related([], 0, removed)
    sims = signal_similarities(snapshot, query, weighted_signals(profile))
    similarity = fuse(profile, sims)
    fresh = freshness(snapshot.published_at, now, options.half_life_days)
    final = (1.0 - options.recency_weight) * similarity + options.recency_weight * fresh
    mask = _allowed(snapshot, filters, now, removed)
    excluded = set(filters.exclude_ids)
    pinned_rows = [(position, snapshot.row_of[i]) for position, i in sorted(pins)
                   if i in snapshot.row_of and i not in excluded and snapshot.row_of[i] != self_row]
    for _position, row in pinned_rows:
        mask[row] = False  # placed by hand below, never twice
    if self_row is not None:
        removed["self_and_versions"] = int(mask[self_row])
        mask[self_row] = False
    candidates = np.flatnonzero(mask)
    suggestions = _collapsed(snapshot, query, candidates, final, similarity, fresh, sims, options, removed)
    for position, row in pinned_rows:
        pinned = Suggestion(snapshot.articles[row]["id"], row, float(final[row]), float(similarity[row]),
                            float(fresh[row]), {name: float(values[row]) for name, values in sims.items()},
                            pinned=True)
        suggestions.insert(min(max(position, 1), len(suggestions) + 1) - 1, pinned)
    suggestions = suggestions[: options.k]
    return Related(suggestions, int(candidates.size), removed)


def _collapsed(
    snapshot: Snapshot,
    query: QueryVectors,
    candidates: np.ndarray,
    final: np.ndarray,
    similarity: np.ndarray,
    fresh: np.ndarray,
    sims: dict[str, np.ndarray],
    options: RankOptions,
    removed: dict[str, int],
) -> list[Suggestion]:
    """The best candidates as suggestions, versions of the query dropped and versions of one text merged."""
    if candidates.size == 0:
        return []
    # Collapsing needs more candidates than k: versions of one text, and of the query itself, eat places.
    # Versions are near-identical texts, so they rank next to each other and inside this pool.
    pool = min(candidates.size, options.k * 4 + 20)
    top = candidates[np.argpartition(-final[candidates], pool - 1)[:pool]]
    top = top[np.lexsort((top, -final[top]))]
    lexical = signal_similarities(snapshot, query, ["tfidf"], rows=top)["tfidf"]
    versions_of_query = lexical >= options.duplicate_threshold
    removed["self_and_versions"] = removed.get("self_and_versions", 0) + int(np.count_nonzero(versions_of_query))
    top, lexical = top[~versions_of_query], lexical[~versions_of_query]
    groups = _group_versions(snapshot.tfidf[top], options.duplicate_threshold)
    suggestions: list[Suggestion] = []
    for members in groups[: options.k]:
        rows = top[members]
        shown = int(rows[np.argmax(snapshot.published_at[rows])])  # newest version
        best = int(rows[0])
        suggestions.append(
            Suggestion(
                id=snapshot.articles[shown]["id"],
                row=shown,
                score=float(final[best]),
                similarity=float(similarity[best]),
                freshness=float(fresh[shown]),
                signals={**{name: float(values[best]) for name, values in sims.items()},
                         "tfidf": float(lexical[members[0]])},
                hidden_versions=tuple(snapshot.articles[int(r)]["id"] for r in rows if int(r) != shown),
            )
        )
    removed["duplicate_versions"] = sum(len(s.hidden_versions) for s in suggestions)
    return suggestions


def _group_versions(tfidf_rows: sparse.csr_matrix, threshold: float) -> list[list[int]]:
    """Greedy grouping of candidates (in score order) into sets of near-duplicate versions."""
    pairwise = (tfidf_rows @ tfidf_rows.T).toarray()
    groups: list[list[int]] = []
    leader_of: list[int] = []
    for i in range(pairwise.shape[0]):
        for g, leader in enumerate(leader_of):
            if pairwise[i, leader] >= threshold:
                groups[g].append(i)
                break
        else:
            groups.append([i])
            leader_of.append(i)
    return groups
