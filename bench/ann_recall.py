"""Recall of the graph search against exact search, on real article embeddings, and the choice of library.

    .venv/bin/python bench/ann_recall.py ../shared/data/semeval2022-dev ../shared/data/ecbplus-dev [--compare]

Embeds the articles of the given dataset folders with the default profile (through the embedding cache, so
a second run embeds nothing), then reports:

* graph recall: of each article's exact top-10 / top-50 neighbours by the e5 signal, the share the usearch
  graph returns (float16, the settings' expansion), over every article as a query;
* end-to-end: the related lists (k=10) of the engine over a graph-searched snapshot (precomputed lists,
  re-ranking, filters) against the same engine scanning every row exactly;
* with --compare: hnswlib and faiss (if installed) on the same vectors, for the record in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.config import load_settings  # noqa: E402
from recommender.engine import Recommender, signal_encoder  # noqa: E402
from recommender.index.graph import SearchLayout, build_graph, search_graphs  # noqa: E402
from recommender.index.snapshot import (  # noqa: E402
    load_snapshot,
    new_snapshot_dir,
    write_snapshot,
)
from recommender.ingest.profiles import get_profile  # noqa: E402
from recommender.rank.evaluate import load_dataset  # noqa: E402


def exact_top(vectors: np.ndarray, k: int) -> np.ndarray:
    """Each row's k most similar other rows by inner product."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :k]


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of each row's true top-k that found holds."""
    return float(np.mean([len(set(f[f >= 0]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def compare_libraries(vectors: np.ndarray, truth: np.ndarray) -> None:
    """Recall@10 and query time of usearch, hnswlib and faiss HNSW (M=16) at a few search breadths."""
    n, dim = vectors.shape
    queries = np.arange(0, n, max(1, n // 1000))
    candidates = []
    from usearch.index import Index

    for dtype in ("f16", "i8"):
        index = Index(ndim=dim, metric="ip", dtype=dtype, connectivity=16, expansion_add=128)
        index.add(np.arange(n), vectors, threads=2)

        def search(ef: int, index=index) -> np.ndarray:
            index.expansion_search = ef
            return np.stack([index.search(vectors[q], 11).keys for q in queries])
        candidates.append((f"usearch {dtype}", search))
    try:
        import hnswlib

        graph = hnswlib.Index("ip", dim)
        graph.init_index(n, M=16, ef_construction=128)
        graph.add_items(vectors)
        graph.set_num_threads(1)

        def search_hnswlib(ef: int) -> np.ndarray:
            graph.set_ef(ef)
            return graph.knn_query(vectors[queries], k=11)[0]
        candidates.append(("hnswlib f32", search_hnswlib))
    except ImportError:
        print("  (hnswlib not installed)")
    try:
        import faiss

        flat = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
        flat.hnsw.efConstruction = 128
        flat.add(vectors)

        def search_faiss(ef: int) -> np.ndarray:
            flat.hnsw.efSearch = ef
            return np.concatenate([flat.search(vectors[q][None], 11)[1] for q in queries])
        candidates.append(("faiss f32", search_faiss))
    except ImportError:
        print("  (faiss not installed)")
    for name, search in candidates:
        for ef in (64, 100, 200):
            start = time.perf_counter()
            found = search(ef)
            per_query = (time.perf_counter() - start) / len(queries) * 1e3
            found = np.array([[x for x in row if x != q][:10] for row, q in zip(found, queries)])
            print(f"  {name:<12} ef {ef:>3}: recall@10 {recall(found, truth[queries], 10):.4f}, "
                  f"{per_query:.3f} ms/query")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", help="dataset folders with articles.jsonl")
    parser.add_argument("--compare", action="store_true", help="also measure hnswlib and faiss")
    args = parser.parse_args()
    settings = load_settings()
    profile = get_profile("default")
    unique = [replace(a, id=f"{Path(d).name}/{a.id}") for d in args.datasets for a in load_dataset(d).articles]
    encoder = signal_encoder(settings, profile)
    arrays = encoder.embed_articles(unique)
    vectors = arrays.dense["e5"].astype(np.float16).astype(np.float32)  # as stored in a snapshot
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(unique)
    print(f"{n} articles from {', '.join(Path(d).name for d in args.datasets)}")
    truth = exact_top(vectors, 50)

    layout = SearchLayout(ann_min_articles=0, expansion_search=settings.ann_expansion)
    graph = build_graph(vectors, layout)
    found = search_graphs({"e5": graph}, {"e5": vectors}, 51, threads=2)
    found = np.array([[x for x in row if x != i][:50] for i, row in enumerate(found)])
    print(f"graph (usearch f16, expansion {settings.ann_expansion}): recall@10 {recall(found[:, :10], truth, 10):.4f}, "
          f"recall@50 {recall(found, truth, 50):.4f}, top-50 holds the exact top-10: {recall(found, truth, 10):.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        engines = {}
        for name, minimum in (("exact", 10**9), ("graph", 0)):
            target = new_snapshot_dir(Path(tmp) / name)
            write_snapshot(target, unique, arrays, profile, encoder.identities(),
                           layout=SearchLayout(ann_min_articles=minimum, candidates=settings.candidates))
            engines[name] = Recommender(settings.replace(state_dir=""), load_snapshot(target), profile, encoder)
        overlaps, same_order = [], 0
        for article in unique:
            want = engines["exact"].related(article.id, k=10).ids
            got = engines["graph"].related(article.id, k=10).ids
            overlaps.append(len(set(want) & set(got)) / max(len(want), 1))
            same_order += want == got
        print(f"end to end (k=10, candidates {settings.candidates}): overlap with the exact lists "
              f"{np.mean(overlaps):.4f}, identical lists {same_order / n:.4f}")
    if args.compare:
        print("libraries on the same vectors (M=16, ef_construction 128, one thread per query):")
        compare_libraries(vectors, truth)


if __name__ == "__main__":
    main()
