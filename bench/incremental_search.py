"""The search-structure stage of a run that changed 1 % of an index: incremental update against a full build.

    nice -n 10 .venv/bin/python bench/incremental_search.py --index /tmp/syn100000 [--changed 0.01] [--chain 5]
                                                           [--threads 2] [--sample 2000] [--floor] [--skip-full] [--json]

Reads a published (synthetic, bench/synthetic.py) index and never writes into it. A run's change is simulated
on its stored vectors: of `--changed` of the articles, 40 % are new (appended, near a random existing story),
40 % changed (their vector moved within their story) and 20 % deleted, so every kept row moves. Then, timed:

* incremental: `GraphSearch.update` from the published graph and lists, then save (`--chain` times in a row,
  each run from the one before, with a fresh 1 % change each time);
* full: `GraphSearch.build` over the final vectors, then save: what every run did before.

Quality, over `--sample` articles as queries: recall@10 of each graph against the exact neighbours, the share of
each article's exact top-10 its list holds, and the overlap of the incremental lists with the full build's
(the 10 best of each list, what a query of k = 10 ranks, and the whole lists).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.index.graph import SearchLayout  # noqa: E402
from recommender.index.incremental import PreviousSearch, list_overlap  # noqa: E402
from recommender.index.search import ExactSearch, GraphSearch  # noqa: E402
from recommender.index.snapshot import load_snapshot  # noqa: E402


def simulate_change(vectors: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New stored vectors after a change of `share` of the rows: (vectors, old_to_new, fresh rows)."""
    n = vectors.shape[0]
    count = max(1, round(n * share))
    touched = rng.choice(n, size=count - 2 * count // 5, replace=False)
    deleted, changed = touched[: count // 5], touched[count // 5:]
    keep = np.ones(n, dtype=bool)
    keep[deleted] = False
    old_to_new = np.full(n, -1, dtype=np.int64)
    old_to_new[keep] = np.arange(int(keep.sum()))
    # Noise of length 0.3 (a revision) and 0.8 (another article of the story, as bench/synthetic.py spreads them).
    scale = 1 / np.sqrt(vectors.shape[1])
    moved = np.asarray(vectors[changed], dtype=np.float32) + 0.3 * scale * rng.standard_normal((len(changed), vectors.shape[1]))
    new = np.asarray(vectors[rng.choice(n, size=2 * count // 5)], dtype=np.float32)
    new += 0.8 * scale * rng.standard_normal(new.shape)
    result = np.concatenate([np.asarray(vectors[keep], dtype=np.float32), unit(new)]).astype(vectors.dtype)
    result[old_to_new[changed]] = unit(moved)
    fresh = np.concatenate([old_to_new[changed], np.arange(int(keep.sum()), result.shape[0])])
    old_to_new[changed] = -1  # a changed text is a deletion plus a new article
    return result, old_to_new, np.sort(fresh)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def quality(search: GraphSearch, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Graph recall@10 and the share of the exact top-10 the lists hold, over the query rows."""
    found = search.search({"e5": np.asarray(vectors[queries], dtype=np.float32)}, 11)
    found = [row[(row != q) & (row >= 0)][:10] for row, q in zip(found, queries)]
    lists = np.asarray(search.lists_[queries])
    return {"graph_recall_at_10": float(np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth)])),
            "lists_hold_exact_top_10": float(np.mean([len(np.intersect1d(x, t)) / 10 for x, t in zip(lists, truth)]))}


def exact_truth(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Each query row's exact 10 nearest other rows: (q, 10)."""
    top = ExactSearch().build({"e5": vectors}).search({"e5": np.asarray(vectors[queries], dtype=np.float32)}, 11)
    return np.array([row[row != q][:10] for row, q in zip(top, queries)])


def timed(work: Any) -> tuple[Any, float]:
    """The result of work() and its wall seconds."""
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The chain of incremental updates and the full build; numbers as a dict."""
    rng = np.random.default_rng(args.seed)
    snapshot = load_snapshot(args.index, verify=False)
    layout = SearchLayout(candidates=snapshot.manifest["candidates"], threads=args.threads,
                          vector_dtype=snapshot.manifest["vector_dtype"])
    vectors = np.asarray(snapshot.dense["e5"])
    previous_dir, steps = Path(snapshot.path), []
    with tempfile.TemporaryDirectory(prefix="incr-bench-") as tmp:
        for step in range(args.chain):
            vectors, old_to_new, fresh = simulate_change(vectors, args.changed, rng)
            previous = PreviousSearch(previous_dir, previous_dir.name, old_to_new, fresh, args.changed, {})
            target = Path(tmp) / f"step{step}"
            target.mkdir()
            search, seconds = timed(lambda: _saved(GraphSearch(["e5"], layout).update({"e5": vectors}, previous), target))
            queries = rng.choice(vectors.shape[0], size=min(args.sample, vectors.shape[0]), replace=False)
            steps.append({"seconds": seconds, "fresh": len(fresh), "n": vectors.shape[0],
                          **quality(search, vectors, queries, exact_truth(vectors, queries))})
            print(f"# incremental {step + 1}: {seconds:.1f}s {steps[-1]}", file=sys.stderr, flush=True)
            previous_dir = target
        if args.skip_full:  # at a million, a full build takes most of an hour: time it once, separately
            return {"n": vectors.shape[0], "changed": args.changed, "chain": args.chain, "threads": args.threads,
                    "steps": steps}
        full_dir = Path(tmp) / "full"
        full_dir.mkdir()
        full, full_seconds = timed(lambda: _saved(GraphSearch(["e5"], layout).build({"e5": vectors}), full_dir))
        # A second full build: two builds of one graph differ too (threads insert in varying order).
        again = GraphSearch(["e5"], layout).build({"e5": vectors}) if args.floor else None
    queries = rng.choice(vectors.shape[0], size=min(args.sample, vectors.shape[0]), replace=False)
    truth = exact_truth(vectors, queries)
    lists, reference = np.asarray(search.lists_[queries]), np.asarray(full.lists_[queries])
    return {"n": vectors.shape[0], "changed": args.changed, "chain": args.chain, "threads": args.threads,
            "steps": steps, "full_s": full_seconds, "full": quality(full, vectors, queries, truth),
            "last": quality(search, vectors, queries, truth),
            "overlap_top_10": list_overlap(lists, reference, vectors, 10, rows=queries),
            "overlap_whole": list_overlap(lists, reference, vectors, rows=queries),
            **(_floor(np.asarray(again.lists_[queries]), reference, vectors, queries) if again else {})}


def _floor(lists: np.ndarray, reference: np.ndarray, vectors: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """The overlaps of a second full build's lists with the first's: what 'the same' means between two builds."""
    return {"full_vs_full_top_10": list_overlap(lists, reference, vectors, 10, rows=queries),
            "full_vs_full_whole": list_overlap(lists, reference, vectors, rows=queries)}


def _saved(search: GraphSearch, target: Path) -> GraphSearch:
    search.save(target)
    return search


def main() -> None:
    """Run the benchmark and print a summary (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="a published index with graphs (bench/synthetic.py); only read")
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--chain", type=int, default=1, help="incremental runs in a row before the comparison")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample", type=int, default=2000, help="query articles for recall and overlap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-full", action="store_true", help="time the incremental runs only")
    parser.add_argument("--floor", action="store_true", help="build a second full graph: the overlap of two full builds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"N {result['n']}, {args.changed:.0%} changed per run, {args.chain} run(s), {args.threads} threads")
    for i, step in enumerate(result["steps"], 1):
        print(f"  incremental run {i}: {step['seconds']:.1f}s, graph recall@10 {step['graph_recall_at_10']:.4f}, "
              f"lists hold exact top-10 {step['lists_hold_exact_top_10']:.4f}")
    if "full_s" not in result:
        return
    mean_step = float(np.mean([s["seconds"] for s in result["steps"]]))
    print(f"full build {result['full_s']:.1f}s; incremental {mean_step:.1f}s a run "
          f"({mean_step / result['full_s']:.1%} of full)")
    print(f"full: graph recall@10 {result['full']['graph_recall_at_10']:.4f}, "
          f"lists hold exact top-10 {result['full']['lists_hold_exact_top_10']:.4f}")
    print(f"last incremental vs full lists: overlap of the 10 best {result['overlap_top_10']:.4f}, "
          f"of whole lists {result['overlap_whole']:.4f}")
    if "full_vs_full_top_10" in result:
        print(f"second full build vs full lists: overlap of the 10 best {result['full_vs_full_top_10']:.4f}, "
              f"of whole lists {result['full_vs_full_whole']:.4f}")


if __name__ == "__main__":
    main()
