"""Related stories: fused similarity, filters, freshness, near-duplicate collapse. Pure functions over arrays."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..embed.vectors import QueryVectors
from ..index import sparserows
from ..index.snapshot import Snapshot
from ..ingest.profiles import Profile
from .relations import relation as relation_of
from .relations import same_story
from .selection import Selection, select

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
    # only_before: only articles published strictly before this moment (the article's own publication: the
    # background-linking case); set by the engine from the request, None otherwise.
    published_before: float | None = None


FALLBACKS = ("none", "recent_same_section", "recent")


@dataclass(frozen=True)
class RankOptions:
    """How the list is put together.

    recency_weight : share of the final score that is freshness, 0.5 ** (age_days / half_life_days)
    half_life_days : the half-life of freshness; section_half_life_days overrides it per (casefolded) section,
        and evergreen articles do not decay at all
    duplicate_threshold : lexical cosine at or above which two articles are versions of one text
    now : the moment ages are measured from (default: the present)
    min_relatedness : calibrated relatedness (ingest/calibration.py) below which a story is not suggested
    fallback : what fills a list that has fewer than k after the threshold: 'none', 'recent_same_section'
        (the newest stories of the article's section that pass the filters) or 'recent'
    selection : language preference, cap per story and MMR (selection.py)
    reference_time : the article's publication time (seconds since the epoch), which tells follow-ups from
        background in the labels; None for a text without a date
    story_window_days : same-story links published within this many days of the article are `same_story`
    """

    k: int = 5
    recency_weight: float = 0.1
    half_life_days: float = 30.0
    duplicate_threshold: float = 0.8
    now: datetime | None = None
    min_relatedness: float = 0.0
    fallback: str = "none"
    section_half_life_days: tuple[tuple[str, float], ...] = ()
    selection: Selection = Selection()
    reference_time: float | None = None
    story_window_days: float = 2.0


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
    relatedness: float = 0.0
    relation: str = "related_topic"


@dataclass(frozen=True)
class Related:
    """The ranked suggestions plus what the filters removed, for explanations."""

    suggestions: list[Suggestion]
    considered: int
    removed: dict[str, int] = field(default_factory=dict)
    # The candidates reached below min_relatedness: a wider search would find nothing that passes it.
    exhausted: bool = False

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
    # A snapshot's own array, or one with received articles' rows after it (index.live.Stacked, same type).
    block = np.take(matrix.view(np.ndarray), rows, axis=0) if isinstance(matrix, np.ndarray) else matrix[rows]
    if block.dtype == np.float16:
        import numkong

        # numpy widens float16 element by element (~90 us for 100 x 384); numkong's SIMD kernels read
        # float16 directly (~10 us). The query is rounded to float16 like the stored vectors.
        return np.asarray(numkong.inner(block, vector.astype(np.float16)[None, :]), dtype=np.float32).ravel()
    return np.asarray(np.asarray(block, dtype=np.float32) @ vector, dtype=np.float32)


def freshness(published_at: np.ndarray, now: datetime, half_life_days: float | np.ndarray) -> np.ndarray:
    """0.5 ** (age / half-life) for each timestamp (half-life: one for all, or one per timestamp); an article
    after now (newer than a dated draft) is as fresh as one as far before it: a future date is distance, never
    "perfectly fresh"."""
    age_days = np.abs(now.timestamp() - published_at.astype(np.float64)) / SECONDS_PER_DAY
    return np.power(0.5, age_days / half_life_days).astype(np.float32)


def row_freshness(snapshot: Snapshot, rows: np.ndarray | None, now: datetime, options: RankOptions) -> np.ndarray:
    """Freshness of rows (None: all), with the half-life of each row's section and evergreen rows at 1."""
    stamps = snapshot.published_at if rows is None else snapshot.published_at[rows]
    half_life: float | np.ndarray = options.half_life_days
    if options.section_half_life_days:
        # One half-life per section code, then one lookup per row: no string work per row.
        by_code = np.full(len(snapshot.section_values), options.half_life_days, dtype=np.float64)
        configured = dict(options.section_half_life_days)
        for code, section in enumerate(snapshot.section_values):
            by_code[code] = configured.get(section, options.half_life_days)
        codes = snapshot.section_codes if rows is None else snapshot.section_codes[rows]
        half_life = by_code[codes]
    fresh = freshness(stamps, now, half_life)
    if snapshot.evergreen is not None:
        fresh[snapshot.evergreen if rows is None else snapshot.evergreen[rows]] = 1.0
    return fresh


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
    if filters.published_before is not None:
        apply("only_before", snapshot.published_at[rows] < filters.published_before)
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

    pins : (1-based position, article id) an editor fixed in this list; pinned articles skip the filters and
    the relatedness threshold (the editor chose them) but not exclude_ids, which carries blocks and takedowns.
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
    considered = int(np.count_nonzero(mask))
    exhausted = False
    if options.min_relatedness > 0:
        weak = scores.relatedness(profile) < options.min_relatedness
        removed["min_relatedness"] = int(np.count_nonzero(mask & weak))
        mask &= ~weak
        # A round holds the nearest rows of the search: once some of them fall below the threshold, a wider
        # round finds none above it. Rows added since the build (live articles) are in every round whatever
        # their similarity, so they say nothing about where the round ends.
        searched = rows < getattr(snapshot.search, "n_rows_", len(snapshot))
        exhausted = bool((weak & searched).any())
    suggestions = _chosen(snapshot, profile, query, rows, np.flatnonzero(mask), scores, options, removed)
    if pinned_rows:
        pinned = np.array([row for _position, row in pinned_rows])
        pinned_scores = _Scores.of(snapshot, profile, query, now, options, pinned)
        for i, (position, row) in enumerate(pinned_rows):
            suggestion = replace(_labelled(pinned_scores.suggestion(snapshot, i, row, i), snapshot, profile, options),
                                 pinned=True)
            suggestions.insert(min(max(position, 1), len(suggestions) + 1) - 1, suggestion)
    return Related(suggestions[: options.k], considered, removed, exhausted)


def rank_rounds(
    snapshot: Snapshot,
    profile: Profile,
    query: QueryVectors,
    rounds: Iterator[np.ndarray | None],
    filters: Filters = Filters(),
    options: RankOptions = RankOptions(),
    self_row: int | None = None,
    pins: Sequence[tuple[int, str]] = (),
    newest_first: Callable[[], np.ndarray] | None = None,
) -> Related:
    """rank() over each round of candidates (a search's `rounds`, at least one) until one leaves options.k
    suggestions, or reaches below the relatedness threshold; else the last round's list. Later rounds are only
    computed when asked for. A list still short then gets options.fallback's stories (newest_first: the rows
    newest first, asked for only then; see with_fallback)."""
    for candidates in rounds:
        related = rank(snapshot, profile, query, filters, options, self_row, pins, candidates)
        if len(related.suggestions) >= options.k or related.exhausted:
            break
    if options.fallback != "none" and len(related.suggestions) < options.k:
        related = with_fallback(snapshot, profile, query, related, filters, options, self_row,
                                newest_first() if newest_first is not None else None)
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
        fresh = row_freshness(snapshot, rows, now, options)
        final = (1.0 - options.recency_weight) * similarity + options.recency_weight * fresh
        return cls(sims, similarity, fresh, final)

    def relatedness(self, profile: Profile) -> np.ndarray:
        """Calibrated relatedness of every scored row."""
        return profile.relatedness(self.similarity)

    def suggestion(self, snapshot: Snapshot, best: int, shown_row: int, shown: int, **extra: Any) -> Suggestion:
        """The suggestion for the row at position shown, scored by the version at position best."""
        return Suggestion(
            id=snapshot.articles[shown_row]["id"], row=shown_row, score=float(self.final[best]),
            similarity=float(self.similarity[best]), freshness=float(self.fresh[shown]),
            signals={name: float(values[best]) for name, values in self.sims.items()}, **extra,
        )


def _labelled(suggestion: Suggestion, snapshot: Snapshot, profile: Profile, options: RankOptions,
              relation: str | None = None) -> Suggestion:
    """The suggestion with its calibrated relatedness and its relation to the article (relations.py)."""
    related = float(profile.relatedness(suggestion.similarity))
    label = relation or relation_of(related, float(snapshot.published_at[suggestion.row]), options.reference_time,
                                    options.story_window_days)
    return replace(suggestion, relatedness=related, relation=label)


def _chosen(
    snapshot: Snapshot,
    profile: Profile,
    query: QueryVectors,
    rows: np.ndarray,
    positions: np.ndarray,
    scores: _Scores,
    options: RankOptions,
    removed: dict[str, int],
) -> list[Suggestion]:
    """The best candidates as suggestions: versions of the query dropped, versions of one text merged, then
    chosen by options.selection (language, cap per story, MMR).
    rows : the scored rows (scores are aligned with them); positions : those of them still allowed."""
    if positions.size == 0:
        return []
    need = options.k if not options.selection.reorders else 3 * options.k + 6
    top, lexical, groups = version_groups(snapshot.tfidf, query, rows, positions, scores.final, need,
                                          options.duplicate_threshold)
    kept = lexical < options.duplicate_threshold
    removed["self_and_versions"] = removed.get("self_and_versions", 0) + int(np.count_nonzero(~kept))
    top, lexical = top[kept], lexical[kept]
    if options.selection.reorders:
        leaders = np.array([top[members[0]] for members in groups], dtype=np.int64)
        picked = _select(snapshot, profile, rows, leaders, scores, options)
    else:
        picked = list(range(min(options.k, len(groups))))
    bests = [int(top[groups[index][0]]) for index in picked]
    # One calibration call for the whole list: a call per story cost more than the rest of the labelling.
    relatedness = profile.relatedness(scores.similarity[bests]) if bests else []
    suggestions: list[Suggestion] = []
    for index, best, related in zip(picked, bests, relatedness):
        members = groups[index]
        group = top[members]
        shown = int(group[np.argmax(snapshot.published_at[rows[group]])])  # newest version
        shown_row = int(rows[shown])
        suggestion = scores.suggestion(
            snapshot, best, shown_row, shown,
            hidden_versions=tuple(snapshot.articles[int(rows[g])]["id"] for g in group if int(g) != shown),
            relatedness=float(related),
            relation=relation_of(float(related), float(snapshot.published_at[shown_row]), options.reference_time,
                                 options.story_window_days),
        )
        suggestion.signals["tfidf"] = float(lexical[members[0]])
        suggestions.append(suggestion)
    removed["duplicate_versions"] = sum(len(s.hidden_versions) for s in suggestions)
    return suggestions


def _select(snapshot: Snapshot, profile: Profile, rows: np.ndarray, leaders: np.ndarray, scores: _Scores,
            options: RankOptions) -> list[int]:
    """Which version groups (by their leaders, positions into rows, best first) make the list, in order."""
    selection = options.selection
    preferred = snapshot.lang_mask(rows[leaders], [selection.prefer_lang]) if selection.prefer_lang else None
    similarity = same = None
    if selection.needs_pairs:
        similarity = pairwise_similarity(snapshot, profile, rows[leaders])
        same = same_story(profile.relatedness(similarity))
    return select(scores.final[leaders], options.k, selection, preferred, similarity, same)


def pairwise_similarity(snapshot: Snapshot, profile: Profile, rows: np.ndarray) -> np.ndarray:
    """The profile's fused similarity between the given rows: (len(rows), len(rows)) float32."""
    sims: dict[str, np.ndarray] = {}
    for signal in profile.weighted:
        if signal.name in snapshot.dense:
            vectors = np.asarray(snapshot.dense[signal.name][rows], dtype=np.float32)
            sims[signal.name] = vectors @ vectors.T
        else:
            sims[signal.name] = sparserows.gram(snapshot.sparse[signal.name], rows)
    return profile.fuse(sims)


def with_fallback(snapshot: Snapshot, profile: Profile, query: QueryVectors, related: Related, filters: Filters,
                  options: RankOptions, self_row: int | None = None,
                  newest_first: np.ndarray | None = None) -> Related:
    """related filled up to options.k with the newest stories that pass the filters (for 'recent_same_section':
    of the article's section, unless the filters name sections), labelled `fallback`: never the article or a
    version of it, never a story already listed, a taken-down (exclude_ids) or embargoed one.

    newest_first : rows ordered newest first (rows after them, live articles, are always looked at); the
        newest are then found in a few small blocks instead of a pass over every row
    """
    now = options.now or datetime.now(timezone.utc)
    listed = [s.row for s in related.suggestions] + ([self_row] if self_row is not None else [])
    section = (snapshot.section_codes[self_row]
               if options.fallback == "recent_same_section" and self_row is not None and not filters.sections
               else None)  # a section filter already says which sections the list wants

    def passing(rows: np.ndarray) -> np.ndarray:
        keep = allowed_rows(snapshot, filters, now, rows) & ~np.isin(rows, listed)
        if section is not None:
            keep &= snapshot.section_codes[rows] == section
        return rows[keep]

    need = options.k - len(related.suggestions)
    candidates = newest_candidates(passing, len(snapshot), 2 * need + 6, newest_first)
    newest = newest_rows(snapshot, candidates, need, query, [s.row for s in related.suggestions],
                         options.duplicate_threshold)
    if newest.size == 0:
        return related
    scores = _Scores.of(snapshot, profile, query, now, options, newest)
    filled = [_labelled(scores.suggestion(snapshot, i, int(row), i), snapshot, profile, options, "fallback")
              for i, row in enumerate(newest)]
    removed = {**related.removed, "fallback_added": len(filled)}
    return replace(related, suggestions=[*related.suggestions, *filled], removed=removed)


def newest_candidates(passing: Callable[[np.ndarray], np.ndarray], n_rows: int, wanted: int,
                      newest_first: np.ndarray | None) -> np.ndarray:
    """Rows that pass (a filter over rows), at least the `wanted` newest of them where that many exist."""
    if newest_first is None:
        return passing(np.arange(n_rows))
    found = [passing(np.arange(len(newest_first), n_rows))]  # live rows, not in the order
    start, block = 0, 512
    # Blocks that double: a common section fills the list from the first one, a rare one costs a few passes.
    while start < len(newest_first) and sum(len(f) for f in found) < wanted:
        found.append(passing(np.asarray(newest_first[start:start + block], dtype=np.int64)))
        start, block = start + block, block * 2
    return np.concatenate(found)


def newest_rows(snapshot: Snapshot, rows: np.ndarray, count: int, query: QueryVectors, listed: Sequence[int],
                duplicate_threshold: float) -> np.ndarray:
    """Up to count of rows, newest first, leaving out versions (lexical near-duplicates) of the query, of the
    listed rows and of each other."""
    if rows.size == 0 or count <= 0:
        return np.zeros(0, dtype=np.int64)
    pool = min(rows.size, 2 * count + 6)  # a few spare: a version of a listed story is skipped
    newest = rows[np.argpartition(-snapshot.published_at[rows], pool - 1)[:pool]]
    newest = newest[np.lexsort((newest, -snapshot.published_at[newest]))]
    everything = np.concatenate([np.asarray(listed, dtype=np.int64), newest]).astype(np.int64)
    products = sparserows.gram(snapshot.tfidf, everything, query.sparse["tfidf"])
    chosen: list[int] = []
    for i in range(len(listed), len(everything)):
        earlier = [0, *range(1, len(listed) + 1), *[len(listed) + 1 + c for c in chosen]]
        if products[1 + i, earlier].max(initial=0.0) < duplicate_threshold:
            chosen.append(i - len(listed))
            if len(chosen) == count:
                break
    return newest[chosen]


def version_groups(tfidf: Any, query: QueryVectors, rows: np.ndarray, positions: np.ndarray, final: np.ndarray,
                   need: int, threshold: float) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """The best-scored positions as a pool large enough to hold more than need texts once versions collapse:
    (pool positions best first, each one's lexical similarity to the query, groups of versions among the pool
    members that are not versions of the query, as indices into those members)."""
    # Collapsing needs more candidates than k: versions of one text, and of the query itself, eat places.
    # Versions are near-identical texts, so they rank next to each other and inside a pool a little larger
    # than k; a pool that collapses to fewer than k texts is doubled.
    pool = min(positions.size, need * 2 + 6)
    while True:
        top = positions[np.argpartition(-final[positions], pool - 1)[:pool]]
        top = top[np.lexsort((rows[top], -final[top]))]
        # One product gives both the query's lexical similarity with the pool and the pool's among itself.
        products = sparserows.gram(tfidf, rows[top], query.sparse["tfidf"])
        lexical = products[0, 1:]
        kept = lexical < threshold  # the rest are versions of the query
        groups = _group_versions(products[1:, 1:][np.ix_(kept, kept)], threshold)
        if len(groups) > need or pool == positions.size:
            return top, lexical, groups
        pool = min(positions.size, pool * 2)


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
