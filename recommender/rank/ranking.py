"""Related stories: fused similarity, filters, freshness, near-duplicate collapse. Pure functions over arrays."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..embed.vectors import QueryVectors
from ..index import sparserows
from ..index.snapshot import Snapshot
from ..ingest.profiles import Profile

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Filters:
    """Which articles may be suggested at all."""

    langs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    max_age_days: float | None = None
    exclude_ids: tuple[str, ...] = ()
    # The embargo: only articles published at or before this moment (seconds since the epoch); the engine
    # sets it to the wall clock whenever a scheduled article is waiting, and leaves it None otherwise.
    published_by: float | None = None


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
        {name: np.asarray(v[row], dtype=np.float32) for name, v in snapshot.dense.items()},
        {name: sparserows.row(m, row) for name, m in snapshot.sparse.items()},
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
        if name in snapshot.dense and rows is None:
            sims[name] = np.asarray(snapshot.dense[name] @ query.dense[name], dtype=np.float32)
        elif name in snapshot.dense:
            sims[name] = dense_similarities(snapshot.dense[name], rows, query.dense[name])
        elif rows is None:
            # A dense query vector makes this one pass over the matrix's non-zeros.
            sims[name] = np.asarray(snapshot.sparse[name] @ query.sparse[name].toarray().ravel(), dtype=np.float32)
        else:
            sims[name] = sparserows.similarities_to(snapshot.sparse[name], rows, query.sparse[name])
    return sims


def dense_similarities(matrix: Any, rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Dot products of matrix[rows] with vector: (len(rows),) float32."""
    if len(rows) == 0:
        # A round of candidates can be empty (filters that allow no row at all); numkong refuses empty blocks.
        return np.zeros(0, dtype=np.float32)
    if isinstance(matrix, np.ndarray) and matrix.dtype == np.float16:
        import numkong

        # numpy widens float16 element by element (~90 us for 100 x 384); numkong's SIMD kernels read
        # float16 directly (~10 us). The query is rounded to float16 like the stored vectors.
        block = np.take(matrix.view(np.ndarray), rows, axis=0)
        return np.asarray(numkong.inner(block, vector.astype(np.float16)[None, :]), dtype=np.float32).ravel()
    return np.asarray(np.asarray(matrix[rows], dtype=np.float32) @ vector, dtype=np.float32)


def freshness(published_at: np.ndarray, now: datetime, half_life_days: float) -> np.ndarray:
    """0.5 ** (age / half-life) for each timestamp; an article after now (newer than a dated draft) is as
    fresh as one as far before it: a future date is distance, never "perfectly fresh"."""
    age_days = np.abs(now.timestamp() - published_at.astype(np.float64)) / SECONDS_PER_DAY
    return np.power(0.5, age_days / half_life_days).astype(np.float32)


def allowed_rows(snapshot: Snapshot, filters: Filters, now: datetime, rows: np.ndarray | None = None,
                 removed: dict[str, int] | None = None) -> np.ndarray:
    """Which of rows (default: all) pass the filters and are not shadowed: bool array aligned with rows.
    removed, if given, receives how many each filter took out."""
    rows = np.arange(len(snapshot)) if rows is None else rows
    mask = np.ones(rows.shape[0], dtype=bool)
    counts = removed if removed is not None else {}

    def apply(name: str, keep: np.ndarray) -> None:
        counts[name] = int(np.count_nonzero(mask & ~keep))
        mask[:] &= keep

    if snapshot.shadowed is not None:
        mask &= ~snapshot.shadowed[rows]  # an older version of an article updated through the API
    if filters.langs:
        apply("lang", snapshot.lang_mask(rows, filters.langs))
    if filters.sections:
        apply("section", snapshot.section_mask(rows, filters.sections))
    if filters.max_age_days is not None:
        oldest = now.timestamp() - filters.max_age_days * SECONDS_PER_DAY
        apply("max_age", snapshot.published_at[rows] >= oldest)
    if filters.published_by is not None:
        apply("embargo", snapshot.published_at[rows] <= filters.published_by)
    if filters.exclude_ids:
        excluded = [snapshot.row_of.get(i) for i in filters.exclude_ids]
        apply("exclude", ~np.isin(rows, [r for r in excluded if r is not None]))
    return mask


def rank(
    snapshot: Snapshot,
    profile: Profile,
    query: QueryVectors,
    filters: Filters = Filters(),
    options: RankOptions = RankOptions(),
    self_row: int | None = None,
    pins: Sequence[tuple[int, str]] = (),
    candidates: np.ndarray | None = None,
) -> Related:
    """The top options.k related articles for a query; never the query article itself (self_row) nor any
    version of it, and never two versions of one text: near-duplicates collapse to their newest member.

    pins : (1-based position, article id) an editor fixed in this list; pinned articles skip the filters
    (the editor chose them) but not exclude_ids, which carries blocks and takedowns.
    candidates : the rows to consider (-1 entries ignored); None scans every row
    """
    now = options.now or datetime.now(timezone.utc)
    removed: dict[str, int] = {}
    if len(snapshot) == 0:
        return Related([], 0, removed)
    rows = np.arange(len(snapshot)) if candidates is None else np.unique(candidates[candidates >= 0])
    scores = _Scores.of(snapshot, profile, query, now, options, None if candidates is None else rows)
    mask = allowed_rows(snapshot, filters, now, rows, removed)
    excluded = set(filters.exclude_ids)
    pinned_rows = [(position, snapshot.row_of[i]) for position, i in sorted(pins)
                   if i in snapshot.row_of and i not in excluded and snapshot.row_of[i] != self_row
                   and not _embargoed(snapshot, snapshot.row_of[i], filters)]
    mask &= ~np.isin(rows, [row for _position, row in pinned_rows])  # placed by hand below, never twice
    if self_row is not None:
        is_self = rows == self_row
        removed["self_and_versions"] = int(np.count_nonzero(mask & is_self))
        mask &= ~is_self
    positions = np.flatnonzero(mask)
    suggestions = _collapsed(snapshot, query, rows, positions, scores, options, removed)
    if pinned_rows:
        pinned = np.array([row for _position, row in pinned_rows])
        pinned_scores = _Scores.of(snapshot, profile, query, now, options, pinned)
        for i, (position, row) in enumerate(pinned_rows):
            suggestion = replace(pinned_scores.suggestion(snapshot, i, row, i), pinned=True)
            suggestions.insert(min(max(position, 1), len(suggestions) + 1) - 1, suggestion)
    return Related(suggestions[: options.k], int(positions.size), removed)


def rank_rounds(
    snapshot: Snapshot,
    profile: Profile,
    query: QueryVectors,
    rounds: Iterator[np.ndarray | None],
    filters: Filters = Filters(),
    options: RankOptions = RankOptions(),
    self_row: int | None = None,
    pins: Sequence[tuple[int, str]] = (),
) -> Related:
    """rank() over each round of candidates (a search's `rounds`, at least one) until one leaves options.k
    suggestions; else the last round's list. Later rounds are only computed when asked for."""
    for candidates in rounds:
        related = rank(snapshot, profile, query, filters, options, self_row, pins, candidates)
        if len(related.suggestions) >= options.k:
            break
    return related


def _embargoed(snapshot: Snapshot, row: int, filters: Filters) -> bool:
    # Pins skip the filters (the editor chose them), never the embargo: a pin must not leak a story early.
    return filters.published_by is not None and int(snapshot.published_at[row]) > filters.published_by


@dataclass(frozen=True)
class _Scores:
    """Similarities and scores of a set of rows, aligned with them."""

    sims: dict[str, np.ndarray]
    similarity: np.ndarray
    fresh: np.ndarray
    final: np.ndarray

    @classmethod
    def of(cls, snapshot: Snapshot, profile: Profile, query: QueryVectors, now: datetime, options: RankOptions,
           rows: np.ndarray | None) -> "_Scores":
        sims = signal_similarities(snapshot, query, [s.name for s in profile.weighted], rows)
        similarity = profile.fuse(sims)
        stamps = snapshot.published_at if rows is None else snapshot.published_at[rows]
        fresh = freshness(stamps, now, options.half_life_days)
        final = (1.0 - options.recency_weight) * similarity + options.recency_weight * fresh
        return cls(sims, similarity, fresh, final)

    def suggestion(self, snapshot: Snapshot, best: int, shown_row: int, shown: int, **extra: Any) -> Suggestion:
        """The suggestion for the row at position shown, scored by the version at position best."""
        return Suggestion(
            id=snapshot.articles[shown_row]["id"], row=shown_row, score=float(self.final[best]),
            similarity=float(self.similarity[best]), freshness=float(self.fresh[shown]),
            signals={name: float(values[best]) for name, values in self.sims.items()}, **extra,
        )


def _collapsed(
    snapshot: Snapshot,
    query: QueryVectors,
    rows: np.ndarray,
    positions: np.ndarray,
    scores: _Scores,
    options: RankOptions,
    removed: dict[str, int],
) -> list[Suggestion]:
    """The best candidates as suggestions, versions of the query dropped and versions of one text merged.
    rows : the scored rows (scores are aligned with them); positions : those of them still allowed."""
    if positions.size == 0:
        return []
    # Collapsing needs more candidates than k: versions of one text, and of the query itself, eat places.
    # Versions are near-identical texts, so they rank next to each other and inside a pool a little larger
    # than k; a pool that collapses to fewer than k texts is doubled.
    final = scores.final
    pool = min(positions.size, options.k * 2 + 6)
    while True:
        top = positions[np.argpartition(-final[positions], pool - 1)[:pool]]
        top = top[np.lexsort((rows[top], -final[top]))]
        # One product gives both the query's lexical similarity with the pool and the pool's among itself.
        products = sparserows.gram(snapshot.tfidf, rows[top], query.sparse["tfidf"])
        lexical = products[0, 1:]
        kept = lexical < options.duplicate_threshold  # the rest are versions of the query
        groups = _group_versions(products[1:, 1:][np.ix_(kept, kept)], options.duplicate_threshold)
        if len(groups) > options.k or pool == positions.size:
            break
        pool = min(positions.size, pool * 2)
    removed["self_and_versions"] = removed.get("self_and_versions", 0) + int(np.count_nonzero(~kept))
    top, lexical = top[kept], lexical[kept]
    suggestions: list[Suggestion] = []
    for members in groups[: options.k]:
        group = top[members]
        shown = int(group[np.argmax(snapshot.published_at[rows[group]])])  # newest version
        best = int(group[0])
        suggestion = scores.suggestion(
            snapshot, best, int(rows[shown]), shown,
            hidden_versions=tuple(snapshot.articles[int(rows[g])]["id"] for g in group if int(g) != shown),
        )
        suggestion.signals["tfidf"] = float(lexical[members[0]])
        suggestions.append(suggestion)
    removed["duplicate_versions"] = sum(len(s.hidden_versions) for s in suggestions)
    return suggestions


def _group_versions(pairwise: np.ndarray, threshold: float) -> list[list[int]]:
    """Greedy grouping of candidates (in score order, pairwise lexical similarities) into sets of
    near-duplicate versions."""
    if not np.triu(pairwise >= threshold, 1).any():
        return [[i] for i in range(pairwise.shape[0])]  # the usual case: no two versions of one text
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
