"""The search contract: which rows of a snapshot are worth ranking for a query.

Two backends implement one small contract, txtai-style:

* `ExactSearch`, the reference: every row is a candidate, scanned by the ranking; its `search` is a
  brute-force inner product over the vectors.
* `GraphSearch`, for large indexes: usearch graphs (graph.py) and every article's precomputed candidate
  list, stored in the snapshot as `graph_<signal>.usearch` and `candidates.npy`.

Both have `build(dense)` (fitted state ends in `_`), `search(queries, count)` (nearest rows per signal, the
layout of `graph.search_graphs`), `save(directory)` (returns the manifest entries that describe what it
wrote) and `load(directory, manifest, dense, ...)`. Their `rounds` hold the candidate policy of a query:
the ranking scores one round after another until one leaves k suggestions. The graph's rounds widen when
filters or duplicates leave too few (its list, then a ten times wider graph search, then every allowed row
exactly); what the filters allow comes in as a callable, because the filters belong to the ranking above.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Protocol, Sequence

import numpy as np

from ..progress import event, log_progress
from .graph import (
    SearchLayout,
    build_graph,
    candidate_lists,
    open_graph,
    search_graphs,
)
from .incremental import PreviousSearch, update_graph, update_lists

# Filters so narrow that the wide graph search finds too few candidates: scan the allowed rows exactly when
# they are at most this many (tens of milliseconds); beyond, answer with what the wide graph search found.
EXACT_FALLBACK_ROWS = 200_000
# The second round of a graph-searched query fetches this many times the usual candidates from the graphs.
WIDEN = 10

# What a search is asked for: signal name -> (dim,) or (n_queries, dim) float32 unit vectors.
Queries = Mapping[str, np.ndarray]
# Rows the filters allow, asked for only when the exact round needs them: bool array of shape (n_rows,).
Allowed = Callable[[], np.ndarray]


class Search(Protocol):
    """What every search backend of a snapshot implements (see the module's docstring)."""

    approximate: ClassVar[bool]
    n_rows_: int

    def build(self, dense: Mapping[str, np.ndarray]) -> "Search":
        """Fit to the snapshot's dense vectors: signal name -> (n_articles, dim) float16 or float32."""
        ...

    def search(self, queries: Queries, count: int) -> np.ndarray:
        """The count nearest rows of each query in each searched signal, best first:
        (n_queries, signals * min(count, n_rows_)) int64, NO_NEIGHBOUR where fewer were found."""
        ...

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the search structures into a snapshot directory; returns the manifest entries describing them."""
        ...

    @classmethod
    def load(cls, directory: Path, manifest: Mapping[str, Any], dense: Mapping[str, np.ndarray]) -> "Search":
        """The search a snapshot directory was saved with (manifest: its manifest; dense: its loaded vectors)."""
        ...

    def rounds(self, query: Queries, count: int, n_rows: int, row: int | None = None,
               allowed: Allowed | None = None, added: Queries | None = None) -> Iterator[np.ndarray | None]:
        """Candidate rows for one query, in rounds to rank until one leaves enough suggestions (None: all);
        added: the dense vectors of the rows after the search's own (articles received since the build)."""
        ...


class ExactSearch:
    """The brute-force reference: every row is a candidate, nothing is stored beside the vectors.

    signals : the dense signals `search` scans (default: every signal given to build)
    vectors_ : signal name -> ndarray of shape (n_rows_, dim), the snapshot's own arrays (not copied)
    """

    approximate: ClassVar[bool] = False

    def __init__(self, signals: Sequence[str] | None = None) -> None:
        self.signals = signals

    def build(self, dense: Mapping[str, np.ndarray]) -> "ExactSearch":
        """Keep references to the vectors: dense : signal name -> (n_articles, dim) float16 or float32."""
        names = list(dense) if self.signals is None else list(self.signals)
        self.vectors_ = {name: dense[name] for name in names}
        self.n_rows_ = int(next(iter(dense.values())).shape[0]) if dense else 0
        return self

    def search(self, queries: Queries, count: int) -> np.ndarray:
        """The exactly nearest count rows by inner product per signal, best first (ties: lower row first):
        (n_queries, signals * min(count, n_rows_)) int64. A query's own row is found like any other: never
        the article itself is the ranking's business."""
        found = [_nearest(np.asarray(vectors, dtype=np.float32),
                          np.atleast_2d(np.asarray(queries[name], dtype=np.float32)), count)
                 for name, vectors in self.vectors_.items()]
        if not found:  # a profile without dense signals
            return np.zeros((np.atleast_2d(next(iter(queries.values()), np.zeros(1))).shape[0], 0), dtype=np.int64)
        return np.concatenate(found, axis=1)

    def save(self, directory: Path) -> dict[str, Any]:
        """Nothing to write (the vectors are the snapshot's `dense_<signal>.npy`): no graphs, no lists."""
        return {"graphs": [], "candidates": 0}

    @classmethod
    def load(cls, directory: Path, manifest: Mapping[str, Any], dense: Mapping[str, np.ndarray]) -> "ExactSearch":
        """The exact search of a loaded snapshot, over its dense arrays."""
        return cls().build(dense)

    def rounds(self, query: Queries, count: int, n_rows: int, row: int | None = None,
               allowed: Allowed | None = None, added: Queries | None = None) -> Iterator[np.ndarray | None]:
        """One round, None: every row of the snapshot, scanned by the ranking (count, row, allowed, added
        unused)."""
        yield None


class GraphSearch:
    """Neighbour graphs over the signals that carry the score, and each article's candidate list.

    signals : the dense signals that get a graph (`graph.graph_signals` of the profile)
    layout : graph parameters and the length of the candidate lists (SearchLayout)
    exact_fallback_rows : the most rows the last round scans exactly when the graphs found too few allowed ones
    graphs_ : signal name -> usearch Index over rows 0 .. n_rows_ - 1 (keys = rows)
    lists_ : ndarray of shape (n_rows_, layout.candidates * len(signals)), int32: each article's nearest other
        rows in each graph, NO_NEIGHBOUR padding after them; never the article itself
    """

    approximate: ClassVar[bool] = True

    def __init__(self, signals: Sequence[str], layout: SearchLayout = SearchLayout(),
                 exact_fallback_rows: int = EXACT_FALLBACK_ROWS) -> None:
        self.signals = signals
        self.layout = layout
        self.exact_fallback_rows = exact_fallback_rows

    def build(self, dense: Mapping[str, np.ndarray]) -> "GraphSearch":
        """Build the graphs and the candidate lists (minutes at a million articles).

        dense : signal name -> (n_articles, dim) unit vectors, float16 or float32; pass the arrays as stored,
        so that the lists and the queries score the same numbers.
        """
        self.n_rows_ = int(dense[self.signals[0]].shape[0])
        self.graphs_ = {}
        for name in self.signals:
            # Minutes at a million articles, without a progress callback: say what is going on.
            event("progress", f"building the neighbour graph of {name} over {self.n_rows_} articles",
                  stage=f"graph ({name})")
            self.graphs_[name] = build_graph(dense[name], self.layout)
        with log_progress()("candidate lists", self.n_rows_) as lines:
            self.lists_ = candidate_lists(dense, self.graphs_, self.layout, on_rows=lines.update)
        return self

    def update(self, dense: Mapping[str, np.ndarray], previous: PreviousSearch) -> "GraphSearch":
        """Update the previous snapshot's graphs and lists for the rows that changed instead of building them
        (incremental.py); dense as for build, the new snapshot's vectors. The previous files are only read."""
        self.n_rows_ = int(dense[self.signals[0]].shape[0])
        event("progress", f"updating the search structures of {previous.version}: {len(previous.fresh)} new or "
              f"changed of {self.n_rows_} articles", stage="search structures")
        self.graphs_ = {name: update_graph(previous.directory / f"graph_{name}.usearch", previous, dense[name],
                                           self.layout) for name in self.signals}
        lists = np.load(previous.directory / "candidates.npy", mmap_mode="r", allow_pickle=False)
        self.lists_ = update_lists(lists, previous, dense, self.graphs_, self.layout)
        return self

    def search(self, queries: Queries, count: int) -> np.ndarray:
        """The approximately nearest count rows per graph, best first: (n_queries, signals * min(count,
        n_rows_)) int64, NO_NEIGHBOUR where a graph found fewer."""
        return search_graphs(self.graphs_, queries, count)

    def save(self, directory: Path) -> dict[str, Any]:
        """Write `graph_<signal>.usearch` and `candidates.npy`; returns the manifest's graphs and candidates."""
        for name, graph in self.graphs_.items():
            graph.save(str(directory / f"graph_{name}.usearch"))
        np.save(directory / "candidates.npy", self.lists_)
        return {"graphs": list(self.graphs_), "candidates": self.layout.candidates}

    @classmethod
    def load(cls, directory: Path, manifest: Mapping[str, Any], dense: Mapping[str, np.ndarray],
             expansion_search: int = 200, exact_fallback_rows: int = EXACT_FALLBACK_ROWS) -> "GraphSearch":
        """The saved graphs and lists of a snapshot, memory-mapped (start-up reads neither); expansion_search is
        the breadth of a graph search (not stored in the files)."""
        layout = SearchLayout(candidates=manifest["candidates"], expansion_search=expansion_search)
        search = cls(list(manifest["graphs"]), layout, exact_fallback_rows)
        search.graphs_ = {name: open_graph(directory / f"graph_{name}.usearch", expansion_search)
                          for name in search.signals}
        search.lists_ = np.load(directory / "candidates.npy", mmap_mode="r", allow_pickle=False)
        search.n_rows_ = int(manifest["n_articles"])
        return search

    def rounds(self, query: Queries, count: int, n_rows: int, row: int | None = None,
               allowed: Allowed | None = None, added: Queries | None = None) -> Iterator[np.ndarray | None]:
        """Candidate rows for one query, each round wider than the one before; stop asking once one is enough.

        1. the row's precomputed list when it has one at least count long, else a graph search for count rows
           (a text, or an article added after the build);
        2. a graph search for WIDEN * count rows (restrictive filters, many versions of one text);
        3. every row allowed() lets through, when at most exact_fallback_rows (else no third round).
        query : signal name -> (dim,) float32; count : candidates per graph; n_rows : rows of the snapshot
        searched, those from n_rows_ on (live articles) join rounds 1 and 2 (new stories reach the lists of
        old ones at once): with added, their dense vectors per signal, only the count / 5 (at least 10; then
        WIDEN * count) nearest of them per graph signal, else all; row : the query's own row, if indexed; allowed : bool
        mask of shape (n_rows,) (default: every row). Rounds are ndarrays of rows, NO_NEIGHBOUR entries to be
        ignored.
        """
        lists = self.lists_
        if row is not None and row < self.n_rows_ and count <= lists.shape[1]:
            found = np.asarray(lists[row])
        else:
            found = self.search(query, count).ravel()
        # A received article that belongs in a short list is among the nearest few of them by a score signal;
        # more would only make every request rank hundreds of them (round 2 widens as for indexed rows).
        yield np.concatenate([found, _added_rows(self, query, max(10, count // 5), n_rows, added)])
        yield np.concatenate([self.search(query, WIDEN * count).ravel(),
                              _added_rows(self, query, WIDEN * count, n_rows, added)])
        rows = np.arange(n_rows) if allowed is None else np.flatnonzero(allowed())
        if rows.size <= self.exact_fallback_rows:
            yield rows


def _added_rows(search: GraphSearch, query: Queries, count: int, n_rows: int, added: Queries | None) -> np.ndarray:
    """Rows from search.n_rows_ to n_rows (received after the build): the count nearest per graph signal when
    their vectors are given, so hundreds of received articles do not each join every request's ranking."""
    rows = np.arange(search.n_rows_, n_rows)
    signals = [name for name in search.signals if added is not None and name in added]
    if rows.size <= count or not signals:
        return rows
    nearest = [_nearest(np.asarray(added[name], dtype=np.float32),
                        np.atleast_2d(np.asarray(query[name], dtype=np.float32)), count)[0] for name in signals]
    return search.n_rows_ + np.unique(np.concatenate(nearest))


def open_search(directory: Path, manifest: Mapping[str, Any], dense: Mapping[str, np.ndarray],
                expansion_search: int = 200) -> Search:
    """The search a loaded snapshot was saved with: graphs when its manifest lists any, else exact."""
    if manifest["graphs"]:
        return GraphSearch.load(directory, manifest, dense, expansion_search)
    return ExactSearch.load(directory, manifest, dense)


def _nearest(vectors: np.ndarray, batch: np.ndarray, count: int) -> np.ndarray:
    """The count rows of vectors (n, dim) with the largest inner product with each of batch (q, dim), best
    first and ties by row: (q, min(count, n)) int64."""
    scores = batch @ vectors.T
    n = scores.shape[1]
    take = min(count, n)
    keys = np.zeros((batch.shape[0], take), dtype=np.int64)
    for i, row_scores in enumerate(scores if take else ()):
        top = np.argpartition(-row_scores, take - 1)[:take] if take < n else np.arange(n)
        keys[i] = top[np.lexsort((top, -row_scores[top]))]
    return keys
