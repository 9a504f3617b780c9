"""Search structures of large indexes: approximate-neighbour graphs and each article's precomputed candidates.

Below `SearchLayout.ann_min_articles` an index is scanned exactly at query time. From there on, a full scan
is too slow: it reads every vector (3.6 KB an article in the default profile; measured ~7 ms a query at
10,000 articles, ~100 ms at a million, bound by memory bandwidth), so the job builds:

* one usearch HNSW graph per signal that carries a large share of the fused score (float16, stored in the
  snapshot and memory-mapped by the server: opening it touches every page once, to find its nodes), for
  queries by text and for articles without a list;
* for every article, the rows of its `candidates` nearest neighbours in each graph. Related-by-id is then a
  lookup, re-scored with every weighted signal and freshness, filtered and collapsed over a hundred rows
  instead of a million.

usearch was chosen over hnswlib and faiss with `bench/ann_recall.py --compare` (docs/benchmarks.md): comparable recall
and speed, and the only one of the three that serves a saved graph memory-mapped (`view=True`).
"""
from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..ingest.profiles import Profile

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
    ann_min_articles: int = 5_000
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
    """A saved graph, memory-mapped (a worker opens a newly published snapshot's graph in a background thread
    while its requests run: as little as possible of the open holds the GIL)."""
    from usearch.index import Index

    meta = Index.metadata(str(path))
    if not meta:
        raise ValueError(f"{path.name} is not a usearch graph")
    # Without usearch's table from key to slot: searches read the keys (row numbers) from the nodes, and nothing
    # looks a vector up by key. Building that table for a million keys took 100 ms of a 160 ms open, all of it
    # holding the GIL, so a worker opening a newly published snapshot in the background answered nothing then.
    graph = Index(ndim=meta["dimensions"], dtype=meta["kind_scalar"], metric=meta["kind_metric"],
                  enable_key_lookups=False)
    # usearch's view still holds the GIL while it walks every node: 40 ms at a million, a stall of the worker's
    # requests. Its progress callback, called once per node, could let them run in between, but made the open
    # 250 ms of CPU beside them (bench/swap_stall.py was no better with it).
    mapped = mapped_in(path)
    graph.view(mapped)
    graph.mapped_file = mapped  # the graph's nodes point into it: unmapped with the graph, not before
    graph.expansion_search = expansion_search  # not stored in the file
    return graph


def mapped_in(path: Path) -> mmap.mmap:
    """path memory-mapped read-only, every page of it faulted in without holding the GIL."""
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    # usearch's view reads every node's header (one or more in each page) holding the GIL; mapped by usearch
    # itself, each page faulted in there: 50-80 ms at a million nodes with every request of the worker waiting
    # (longer beside other load). numpy reads a byte of each page first, without the GIL.
    np.frombuffer(mapped, dtype=np.uint8)[:: mmap.PAGESIZE].max()
    return mapped


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


def candidate_lists(
    dense: Mapping[str, np.ndarray],
    graphs: Mapping[str, Any],
    layout: SearchLayout,
    on_rows: Callable[[int], None] | None = None,
    block: int = 4096,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Each article's nearest other articles in each graph, `layout.candidates` per graph:
    (n, candidates * graphs) int32, padded with NO_NEIGHBOUR; with rows (int64), only those articles' lists,
    (len(rows), candidates * graphs) in that order (an incremental update).

    Not re-scored here: every query re-scores its list with all weighted signals and freshness anyway, and
    the graphs cover the signals that carry the score (re-scoring a million lists at build time cost more
    than building the graphs)."""
    queried = np.arange(next(iter(dense.values())).shape[0]) if rows is None else np.asarray(rows)
    lists = np.full((len(queried), layout.candidates * len(graphs)), NO_NEIGHBOUR, dtype=np.int32)
    for start in range(0, len(queried), block):
        some = queried[start:start + block]
        found = search_graphs(graphs, {name: dense[name][some] for name in graphs}, layout.candidates + 1,
                              layout.threads)
        found = _unique_per_row(found, some)
        # Real rows first, in graph order; the padding (NO_NEIGHBOUR) after them.
        order = np.argsort(found < 0, axis=1, kind="stable")
        found = np.take_along_axis(found, order, axis=1)[:, : lists.shape[1]]
        lists[start:start + len(some), : found.shape[1]] = found
        if on_rows is not None:
            on_rows(some.size)
    return lists


def _unique_per_row(found: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Drop the query row itself and rows found twice (NO_NEIGHBOUR in their place), keeping the order."""
    order = np.argsort(found, axis=1, kind="stable")  # equal rows stay in order: the first one is kept
    ordered = np.take_along_axis(found, order, axis=1)
    repeated_in_order = np.zeros(found.shape, dtype=bool)
    repeated_in_order[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeated = np.zeros(found.shape, dtype=bool)
    np.put_along_axis(repeated, order, repeated_in_order, axis=1)
    return np.where(repeated | (found == rows[:, None]), NO_NEIGHBOUR, found)
