"""Search structures of large indexes: approximate-neighbour graphs and each article's precomputed candidates.

Below `SearchLayout.ann_min_articles` an index is scanned exactly at query time. From there on, a full scan
costs tens of milliseconds per signal (memory bandwidth: 1M x 384 float16 is 768 MB), so the job builds:

* one usearch HNSW graph per signal that carries a large share of the fused score (float16, stored in the
  snapshot and memory-mapped by the server: start-up does not read it), for queries by text and for articles
  without a list;
* for every article, the rows of its `candidates` best neighbours by fused similarity (graph search over each
  graph, union, re-scored with every weighted signal). Related-by-id is then a lookup, re-ranked with
  freshness, filters and duplicate collapsing over a hundred rows instead of a million.

usearch was chosen over hnswlib and faiss by `bench/ann_choice.py` (docs/benchmarks.md): comparable recall
and speed, and the only one of the three that serves a saved graph memory-mapped (`view=True`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from scipy import sparse

from .profiles import Profile

# A signal gets its own graph when it carries at least this share of the fused score: the candidates of a
# graph over a signal worth 5 % would rarely change the top of the list and cost as much to build.
GRAPH_MIN_SHARE = 0.2
NO_NEIGHBOUR = -1


@dataclass(frozen=True)
class SearchLayout:
    """How a snapshot stores vectors and which search structures it gets.

    vector_dtype : 'float16' or 'float32' for the dense arrays on disk
    ann_min_articles : from this many articles on, graphs and candidate lists are built
    candidates : neighbours kept per article, and fetched from a graph per query
    connectivity, expansion_add : HNSW graph parameters (edges per node, breadth while inserting)
    expansion_search : breadth of a graph search (recall against speed)
    threads : threads for building
    """

    vector_dtype: str = "float16"
    ann_min_articles: int = 20_000
    candidates: int = 100
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 200
    threads: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> "SearchLayout":
        """The layout a Settings object asks for."""
        return cls(vector_dtype=settings.vector_dtype, ann_min_articles=settings.ann_min_articles,
                   candidates=settings.candidates, expansion_search=settings.ann_expansion, threads=settings.threads)


def graph_signals(profile: Profile) -> list[str]:
    """The dense signals that get a neighbour graph (those carrying a large share of the fused score)."""
    total = sum(s.weight for s in profile.signals)
    chosen = [s.name for s in profile.dense if s.weight and s.weight / total >= GRAPH_MIN_SHARE]
    if not chosen and profile.dense:
        chosen = [max(profile.dense, key=lambda s: s.weight).name]
    return chosen


def build_graph(vectors: np.ndarray, layout: SearchLayout) -> Any:
    """A usearch HNSW graph over unit vectors (inner product), keys = row numbers."""
    from usearch.index import Index

    graph = Index(ndim=vectors.shape[1], metric="ip", dtype="f16", connectivity=layout.connectivity,
                  expansion_add=layout.expansion_add, expansion_search=layout.expansion_search)
    graph.add(np.arange(vectors.shape[0], dtype=np.uint64), np.asarray(vectors, dtype=np.float32),
              threads=layout.threads)
    return graph


def open_graph(path: Path, expansion_search: int) -> Any:
    """A saved graph, memory-mapped (nothing read until searched)."""
    from usearch.index import Index

    graph = Index.restore(str(path), view=True)
    if graph is None:
        raise ValueError(f"{path.name} is not a usearch graph")
    graph.expansion_search = expansion_search  # not stored in the file
    return graph


def search_graphs(graphs: Mapping[str, Any], queries: Mapping[str, np.ndarray], count: int,
                  threads: int = 1) -> np.ndarray:
    """Rows found by each graph for each query (one row per query), padded with NO_NEIGHBOUR: (q, g * count)."""
    found = []
    for name, graph in graphs.items():
        vectors = np.atleast_2d(np.asarray(queries[name], dtype=np.float32))
        matches = graph.search(vectors, min(count, len(graph)), threads=threads)
        keys = np.atleast_2d(matches.keys).astype(np.int64)
        # One query gives a Matches without counts: all of its keys are real.
        counts = np.atleast_1d(getattr(matches, "counts", keys.shape[1]))
        keys[np.arange(keys.shape[1])[None, :] >= counts[:, None]] = NO_NEIGHBOUR
        found.append(keys)
    return np.concatenate(found, axis=1)


def pair_similarities(
    profile: Profile, dense: Mapping[str, np.ndarray], lexical: Mapping[str, sparse.csr_matrix],
    rows: np.ndarray, others: np.ndarray,
) -> np.ndarray:
    """Fused similarity of each rows[i] with each others[i, j] (others >= 0): shape others.shape."""
    flat = others.ravel()
    sims: dict[str, np.ndarray] = {}
    for signal in profile.weighted:
        if signal.name in dense:
            matrix = dense[signal.name]
            left = np.asarray(matrix[rows], dtype=np.float32)
            right = np.asarray(matrix[flat], dtype=np.float32).reshape(*others.shape, -1)
            sims[signal.name] = np.einsum("qd,qcd->qc", left, right)
        else:
            matrix = lexical[signal.name]
            left = matrix[np.repeat(rows, others.shape[1])]
            sims[signal.name] = np.asarray(left.multiply(matrix[flat]).sum(axis=1)).reshape(others.shape)
    return profile.fuse(sims)


def candidate_lists(
    profile: Profile,
    dense: Mapping[str, np.ndarray],
    lexical: Mapping[str, sparse.csr_matrix],
    graphs: Mapping[str, Any],
    layout: SearchLayout,
    on_rows: Callable[[int], None] | None = None,
    block: int = 512,
) -> np.ndarray:
    """Each article's `layout.candidates` best other articles by fused similarity, best first:
    (n, candidates) int32, padded with NO_NEIGHBOUR."""
    n = next(iter(dense.values())).shape[0]
    width = min(layout.candidates, max(n - 1, 0))
    lists = np.full((n, layout.candidates), NO_NEIGHBOUR, dtype=np.int32)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        found = search_graphs(graphs, {name: dense[name][rows] for name in graphs}, width + 1, layout.threads)
        found = _unique_per_row(found, rows)
        usable = found >= 0
        scores = pair_similarities(profile, dense, lexical, rows, np.where(usable, found, 0))
        scores[~usable] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :width]
        best = np.take_along_axis(found, order, axis=1)
        best[np.take_along_axis(scores, order, axis=1) == -np.inf] = NO_NEIGHBOUR
        lists[rows, :width] = best
        if on_rows is not None:
            on_rows(rows.size)
    return lists


def _unique_per_row(found: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Drop the query row itself and rows found by more than one graph (NO_NEIGHBOUR in their place)."""
    found = np.sort(found, axis=1)
    repeated = np.zeros_like(found, dtype=bool)
    repeated[:, 1:] = found[:, 1:] == found[:, :-1]
    found[repeated | (found == rows[:, None])] = NO_NEIGHBOUR
    return found
