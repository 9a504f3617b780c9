"""In-process latency of related-by-id, against brute-force numpy and a TF-IDF "more like this" baseline.

    .venv/bin/python bench/latency.py --index /tmp/syn100000 [--index /tmp/syn1000000] [--queries 1000]

For each index (built by `recommender index` or bench/synthetic.py, default profile): the engine's
`related(id)` (k=5) for random ids, without and with filters (lang=de, max_age_days=365); then, over the
same ids, the baselines measured in the same run:

* brute force: the fused dense signals of every article in float32 in memory, `X @ q` per signal, top k by
  argpartition (what an exact engine without graphs does at best, before filters and re-ranking);
* TF-IDF "more like this" (up to --mlt-max articles): scikit-learn's NearestNeighbors (cosine, brute) over
  the word TF-IDF rows, the query being the article's own row.

Prints p50/p99 in milliseconds and the speed-up ratios of the engine over each baseline. --placement and
--options make every engine request use a placement's and/or the given ranking options (README, "Relatedness,
labels, placements"), to measure what they cost.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.config import load_settings  # noqa: E402
from recommender.engine import Recommender  # noqa: E402
from recommender.rank.placements import Options, options_from  # noqa: E402
from recommender.rank.ranking import Filters  # noqa: E402

FILTERS = Filters(langs=("de",), max_age_days=365.0)


def timed(function: Callable[[str], object], ids: list[str]) -> dict[str, float]:
    """p50 and p99 in ms of function over ids (after two warm-up calls)."""
    for article_id in ids[:2]:
        function(article_id)
    times = []
    for article_id in ids:
        start = time.perf_counter()
        function(article_id)
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def measure(index: str, queries: int, mlt_max: int, k: int | None = 5, placement: str | None = None,
            options: Options = Options()) -> dict[str, dict[str, float]]:
    """Latencies of the engine (with a placement and ranking options, if given) and the baselines on one index."""
    settings = load_settings(index_dir=index, state_dir="")
    engine = Recommender.open(settings)
    snapshot = engine.snapshot
    n = len(snapshot)
    rng = np.random.default_rng(0)
    rows = rng.choice(n, size=min(queries, n), replace=False)
    ids = [snapshot.articles[int(r)]["id"] for r in rows]
    results = {"engine": timed(lambda i: engine.related(i, k, placement=placement, request=options), ids),
               "engine+filters": timed(lambda i: engine.related(i, k, FILTERS, placement, options), ids)}

    weights = {s.name: s.weight for s in engine.profile.weighted if s.name in snapshot.dense}
    dense = {name: np.asarray(snapshot.dense[name], dtype=np.float32) for name in weights}

    def brute_force(article_id: str) -> np.ndarray:
        row = snapshot.row_of[article_id]
        fused = sum(w * (dense[name] @ dense[name][row]) for name, w in weights.items())
        return np.argpartition(-fused, (k or 5) + 1)[: (k or 5) + 1]

    results["brute force numpy float32"] = timed(brute_force, ids[: max(50, queries // 10)])
    if n <= mlt_max:
        from sklearn.neighbors import NearestNeighbors

        words = snapshot.sparse["tfidf"].tocsr()
        mlt = NearestNeighbors(n_neighbors=(k or 5) + 1, metric="cosine", algorithm="brute").fit(words)
        results["tfidf more-like-this (sklearn)"] = timed(
            lambda i: mlt.kneighbors(words[snapshot.row_of[i]]), ids[: max(50, queries // 10)])
    results["articles"] = {"n": n}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", action="append", required=True, help="index directory (repeatable)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--mlt-max", type=int, default=100_000, help="largest index to run the TF-IDF baseline on")
    parser.add_argument("--placement", help="a placement whose options the engine's requests use (k then its own)")
    parser.add_argument("--options", default="{}", help='ranking options of every request, as JSON, e.g. '
                        '\'{"min_relatedness": 0, "max_per_story": 1, "fallback": "recent"}\'')
    args = parser.parse_args()
    threadpool_limits(1, user_api="blas")  # as in a server worker (recommender/server.py)
    for index in args.index:
        options = options_from(json.loads(args.options), 50)
        results = measure(index, args.queries, args.mlt_max, None if args.placement else 5, args.placement, options)
        print(f"{index}: {results.pop('articles')['n']} articles")
        engine = results["engine+filters"]["p50_ms"]
        for name, r in results.items():
            ratio = "" if name.startswith("engine") else f"  engine+filters is {r['p50_ms'] / engine:,.0f}x faster (p50)"
            print(f"  {name:<32} p50 {r['p50_ms']:8.3f} ms  p99 {r['p99_ms']:8.3f} ms{ratio}")


if __name__ == "__main__":
    main()
