"""Embedding throughput: each bare encoder, and the whole index job per profile, in one run.

    .venv/bin/python bench/embed_throughput.py [CORPUS ...] [--threads 2] [--repeat 2] [--json]

The job figures include text preparation, TF-IDF fitting, snapshot writing and verification, but no
embedding cache (it is switched off), so `job / bare` is the job's overhead. Machines are noisy:
compare ratios measured in the same run, not absolute numbers across runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.config import load_settings  # noqa: E402
from recommender.embed.encoders import make_dense_encoder  # noqa: E402
from recommender.ingest.corpus import load_corpus  # noqa: E402
from recommender.ingest.profiles import get_profile  # noqa: E402
from recommender.ingest.textprep import prepare_chunks  # noqa: E402
from recommender.jobs.index_job import build_index  # noqa: E402


def best_rate(n: int, run, repeat: int) -> float:
    """Articles per second of the fastest of `repeat` runs (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="*", default=[str(REPO / "corpus")])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    articles = load_corpus(args.corpus).articles
    results: dict[str, dict[str, float]] = {}
    for profile_name in ("e5", "use", "minilm"):
        signal = get_profile(profile_name).dense[0]
        encoder = make_dense_encoder(signal.kind, threads=args.threads)
        # Every piece the profile's view reads (e5 reads two chunks per long article).
        texts = [text for a in articles for text in prepare_chunks(a, signal.view)]
        encoder.encode(texts[:2])  # load the model outside the timing
        rate = best_rate(len(articles), lambda: encoder.encode(texts), args.repeat)
        results[f"encoder {signal.name}"] = {"articles_per_s": rate, "texts_per_article": len(texts) / len(articles)}

    with tempfile.TemporaryDirectory() as tmp:
        for profile_name in ("default", "fast"):
            settings = load_settings(environ={}, profile=profile_name, threads=args.threads, cache_dir="",
                                     index_dir=str(Path(tmp) / profile_name))
            rate = best_rate(len(articles), lambda: build_index(args.corpus, settings.index_dir, settings), args.repeat)
            bare = 1.0 / sum(1.0 / results[f"encoder {s.name}"]["articles_per_s"] for s in get_profile(profile_name).dense)
            results[f"job {profile_name}"] = {"articles_per_s": rate, "bare_encoders_articles_per_s": bare,
                                             "overhead": bare / rate - 1.0}
    if args.json:
        print(json.dumps({"articles": len(articles), "threads": args.threads, "results": results}, indent=2))
        return
    print(f"{len(articles)} articles, {args.threads} threads, best of {args.repeat}")
    for name, values in results.items():
        extra = ""
        if "overhead" in values:
            extra = f"  (bare encoders {values['bare_encoders_articles_per_s']:.1f}/s, job overhead {values['overhead']:+.1%})"
        print(f"{name:<16} {values['articles_per_s']:8.1f} articles/s{extra}")


if __name__ == "__main__":
    main()
