"""Re-index throughput per profile: bare encoders, the full index job, and a run with 1 % of articles changed.

    .venv/bin/python bench/reindex.py [--runs use=400,minilm=400,e5=150,default=150] [--changed 0.01]
                                      [--threads 2] [--batch-size 32] [--bare-after] [--data DIR ...] [--json]

Articles are real news texts read at run time from ../shared/data (German 10kGNAD and English BBC, exact
duplicates dropped, languages interleaved, titles of untitled ones from their first sentence) and written as a
corpus into a temporary directory; nothing is written outside temporary directories. Per run PROFILE=N:

1. bare: the profile's dense encoders, in this process, encode the same prepared texts as the job, in the
   job's batches, models loaded outside the timing (no cache, no job); with --bare-after again after
   step 4, and the mean of both is used;
2. start-up: a fresh Python process imports the command line and loads the profile's models (the fixed cost
   every job run pays before it reads a single article);
3. full: `recommender index` (a subprocess, as cron runs it) over the N articles with a fresh empty
   embedding cache, timed as a whole, stages from its JSON summary; overhead = full / bare - 1;
4. incremental: `--changed` of the articles get their body edited (text put before it, so every encoder's
   view changes) and `recommender index` runs again on the same index and cache.

Machines are noisy: compare the ratios of one run, not absolute figures across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.embed.encoders import DenseEncoder, make_dense_encoder  # noqa: E402
from recommender.ingest.corpus import Article  # noqa: E402
from recommender.ingest.profiles import Profile, SignalSpec, get_profile  # noqa: E402
from recommender.ingest.textprep import prepare_chunks  # noqa: E402
from recommender.rank.evaluate import load_dataset  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DEFAULT_DATA = [str(DATA / "10kgnad-test"), str(DATA / "bbc-news")]
DEFAULT_RUNS = "use=400,minilm=400,e5=150,default=150"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
EDIT = "Updated: this article was revised after publication. "


def parse_runs(text: str) -> list[tuple[str, int]]:
    """`use=400,e5=150` -> [("use", 400), ("e5", 150)], each profile checked to exist."""
    runs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition("=")
        get_profile(name)
        runs.append((name, int(count)))
    return runs


def make_title(body: str) -> str:
    """A title for an article that has none (10kGNAD): its first sentence, at most about 100 characters."""
    first = re.split(r"(?<=[.!?])\s", body.strip(), maxsplit=1)[0]
    return first if len(first) <= 100 else first[:100].rsplit(" ", 1)[0] + "…"


def load_articles(folders: Sequence[str]) -> list[Article]:
    """Articles of the data folders without exact duplicates, languages interleaved, one hour apart."""
    sources = []
    for folder in folders:
        seen: set[str] = set()
        kept = []
        for article in load_dataset(folder).articles:
            if article.body.strip() and article.body not in seen:
                seen.add(article.body)
                kept.append(article)
        sources.append(kept)
    mixed = [a for group in zip(*sources) for a in group]
    shortest = min(len(s) for s in sources)
    mixed += [a for s in sources for a in s[shortest:]]
    return [replace(a, title=a.title.strip() or make_title(a.body), published_at=START + timedelta(hours=i))
            for i, a in enumerate(mixed)]


def write_corpus(articles: Sequence[Article], path: Path) -> None:
    """The articles as a corpus JSON Lines file (recommender/corpus.py's format)."""
    with path.open("w", encoding="utf-8") as handle:
        for article in articles:
            handle.write(json.dumps(article.to_json(), ensure_ascii=False) + "\n")


def edit_some(articles: Sequence[Article], fraction: float) -> tuple[list[Article], int]:
    """A copy with the bodies of `fraction` of the articles (at least one, evenly spread) edited."""
    count = max(1, round(len(articles) * fraction))
    step = len(articles) / count
    chosen = {int(i * step) for i in range(count)}
    edited = [replace(a, body=EDIT + a.body) if i in chosen else a for i, a in enumerate(articles)]
    return edited, len(chosen)


def job_texts(articles: Sequence[Article], signal: SignalSpec) -> list[str]:
    """Every text the job embeds for this signal (e5 reads up to two pieces per article)."""
    return [text for a in articles for text in prepare_chunks(a, signal.view)]


def loaded_encoder(signal: SignalSpec, threads: int) -> DenseEncoder:
    """An encoder of the signal's kind with its model already loaded."""
    encoder = make_dense_encoder(signal.kind, threads=threads)
    encoder.encode(["warm"])
    return encoder


def bare_seconds(encoder: DenseEncoder, texts: Sequence[str], batch_size: int) -> float:
    """Seconds to encode the texts in batches of batch_size with a loaded encoder, no cache."""
    start = time.perf_counter()
    for first in range(0, len(texts), batch_size):
        encoder.encode(texts[first:first + batch_size])
    return time.perf_counter() - start


def job_environment(name: str, threads: int, tmp: Path) -> dict[str, str]:
    """This process's environment without RECOMMENDER_* settings, plus the benchmark's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOMMENDER_")}
    env.update(RECOMMENDER_PROFILE=name, RECOMMENDER_THREADS=str(threads), RECOMMENDER_CACHE_DIR=str(tmp / "cache"),
               RECOMMENDER_STATE_DIR="", PYTHONPATH=str(REPO))
    return env


def startup_seconds(name: str, env: dict[str, str]) -> float:
    """Wall seconds of a fresh process that imports the command line and loads the profile's models: the
    fixed cost every `recommender index` run pays before it embeds anything."""
    code = ("import sys; from recommender import cli; from recommender.embed.encoders import make_dense_encoder; "
            "from recommender.ingest.profiles import get_profile; "
            f"[make_dense_encoder(s.kind, threads=int(sys.argv[1])).encode(['warm']) for s in get_profile({name!r}).dense]")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, env["RECOMMENDER_THREADS"]], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def timed_job(corpus: Path, index_dir: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one `recommender index` process, and its summary event (stage seconds, changes)."""
    command = [sys.executable, "-m", "recommender", "index", str(corpus), "--index", str(index_dir), "--log-json"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"recommender index failed ({done.returncode}): {done.stderr[-2000:]}")
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return seconds, next(e for e in events if e.get("event") == "summary")


def bare_profile(profile: Profile, articles: Sequence[Article], args: argparse.Namespace) -> tuple[float, int]:
    """Seconds the profile's dense encoders take over the articles' prepared texts, and the number of texts."""
    seconds = 0.0
    texts = 0
    for signal in profile.dense:
        encoder = loaded_encoder(signal, args.threads)
        prepared = job_texts(articles, signal)
        texts += len(prepared)
        seconds += bare_seconds(encoder, prepared, args.batch_size)
    return seconds, texts


def bench_profile(name: str, count: int, articles: Sequence[Article], args: argparse.Namespace) -> dict[str, Any]:
    """Bare encoders, full job and incremental job of one profile over the first `count` articles."""
    articles = list(articles[:count])
    profile = get_profile(name)
    bare, texts = bare_profile(profile, articles, args)
    with tempfile.TemporaryDirectory(prefix="reindex-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = job_environment(name, args.threads, tmp)
        env["RECOMMENDER_BATCH_SIZE"] = str(args.batch_size)
        startup = startup_seconds(name, env)
        corpus = tmp / "articles.jsonl"
        write_corpus(articles, corpus)
        full, full_summary = timed_job(corpus, tmp / "index", env)
        edited, changed = edit_some(articles, args.changed)
        write_corpus(edited, corpus)
        incremental, incremental_summary = timed_job(corpus, tmp / "index", env)
    bare_runs = [bare]
    if args.bare_after:
        bare_runs.append(bare_profile(profile, articles, args)[0])
        bare = sum(bare_runs) / len(bare_runs)
    return {
        "profile": name, "articles": len(articles), "texts": texts, "changed": changed,
        "bare_s": bare, "bare_runs_s": bare_runs, "startup_s": startup, "full_s": full, "incremental_s": incremental,
        "bare_rate": len(articles) / bare, "full_rate": len(articles) / full,
        "overhead": full / bare - 1.0, "overhead_without_startup": (full - startup) / bare - 1.0,
        "incremental_share": incremental / full,
        "incremental_share_without_startup": max(incremental - startup, 0.0) / max(full - startup, 1e-9),
        "full_stages": full_summary["seconds"], "incremental_stages": incremental_summary["seconds"],
        "incremental_changes": {k: incremental_summary[k] for k in ("new", "changed", "unchanged", "deleted")},
    }


def stages_text(seconds: dict[str, float]) -> str:
    """`read 0.1 embed 20.3 ...`, the non-trivial stages of a run."""
    return " ".join(f"{k} {v:.1f}" for k, v in seconds.items() if v >= 0.05)


def print_table(results: Sequence[dict[str, Any]], threads: int) -> None:
    """The results as a Markdown table, then each run's stage seconds."""
    print(f"threads {threads}; seconds; start-up = fresh process + imports + model load, paid by every job run")
    print("| profile | N | bare encoders art/s | full job art/s | overhead | overhead w/o start-up | start-up s "
          "| full s | incremental s (edited) | incr. / full | incr. / full w/o start-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['profile']} | {r['articles']} | {r['bare_rate']:.2f} | {r['full_rate']:.2f} | {r['overhead']:+.1%} "
              f"| {r['overhead_without_startup']:+.1%} | {r['startup_s']:.1f} | {r['full_s']:.1f} "
              f"| {r['incremental_s']:.1f} ({r['changed']}) | {r['incremental_share']:.1%} "
              f"| {r['incremental_share_without_startup']:.1%} |")
    print()
    for r in results:
        print(f"{r['profile']} N={r['articles']}: full [{stages_text(r['full_stages'])}]"
              f"  incremental [{stages_text(r['incremental_stages'])}]  changes {r['incremental_changes']}")


def main() -> None:
    """Run every PROFILE=N of --runs and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=DEFAULT_RUNS, help=f"PROFILE=N,... (default {DEFAULT_RUNS})")
    parser.add_argument("--changed", type=float, default=0.01, help="share of articles edited (default 0.01)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", nargs="+", default=DEFAULT_DATA, help="evaluation folders (articles.jsonl)")
    parser.add_argument("--bare-after", action="store_true",
                        help="measure the bare encoders again after the jobs and use the mean (shows the noise)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    runs = parse_runs(args.runs)
    articles = load_articles(args.data)
    if max(n for _, n in runs) > len(articles):
        parser.error(f"only {len(articles)} articles in {', '.join(args.data)}")
    results = []
    for name, count in runs:
        results.append(bench_profile(name, count, articles, args))
        if not args.json:
            r = results[-1]
            bare = ", then ".join(f"{b:.1f}" for b in r["bare_runs_s"])
            print(f"# {name} N={count}: bare {bare}s, full {r['full_s']:.1f}s, "
                  f"incremental {r['incremental_s']:.1f}s", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"threads": args.threads, "changed": args.changed, "results": results}, indent=2))
        return
    print_table(results, args.threads)


if __name__ == "__main__":
    main()
