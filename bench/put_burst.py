"""Readers during a burst of PUTs: related-links p99 while 50 articles are PUT one after another, against the
steady p99 of the same server just before, with 500 received articles already in the state; PUTs embedded in
the embedding process (`embed_received_in = process`, the default) and in the request's worker (the old way),
alternated in one run.

    .venv/bin/python bench/put_burst.py --index /tmp/syn100000 [--puts 50] [--received 500] [--rounds 1]

Every PUT is a real one over HTTP: a ~1,500-character article embedded by the index's encoders. wrk requests
related lists with --connections connections from before the first PUT until the last one answered (stopped
with SIGINT, when wrk prints its figures). min_relatedness 0: synthetic vectors relate nothing. Only
127.0.0.1 is contacted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_load import (  # noqa: E402
    parse_wrk,
    random_ids,
    related_script,
    run_wrk,
    serving,
    wrk_command,
)
from received_articles import received_state  # noqa: E402

from recommender.index.snapshot import load_snapshot  # noqa: E402

TOKEN = "put-burst-bench-token"
SENTENCES = [
    "Der Stadtrat hat am Abend über den neuen Haushalt beraten und mehrere Änderungen beschlossen.",
    "Nach Angaben der Verwaltung steigen die Ausgaben für Schulen und Kitas im kommenden Jahr deutlich.",
    "Die Opposition kritisierte die Pläne als unausgewogen und forderte mehr Geld für den Nahverkehr.",
    "Bürgerinnen und Bürger konnten ihre Fragen in einer öffentlichen Sitzung direkt an die Fraktionen stellen.",
    "The council met on Tuesday evening to debate next year's budget and agreed on several amendments.",
    "Spending on schools and nurseries is set to rise sharply, according to figures from the city administration.",
    "Opposition members called the plans unbalanced and demanded more money for buses and trams.",
    "Residents were able to put their questions to the parties directly during a public session.",
]


def article(i: int) -> dict:
    """The i-th PUT body: a different ~1,500-character text each time (nothing comes from a cache)."""
    german = i % 2 == 0
    pool = SENTENCES[:4] if german else SENTENCES[4:]
    body = " ".join(f"{pool[(i + j) % 4]} ({i}-{j})" for j in range(14))
    return {"title": f"{'Haushalt' if german else 'Budget'} {i}: {pool[i % 4][:60]}", "body": body,
            "lang": "de" if german else "en", "section": "Politik" if german else "politics",
            "published_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "who": "bench", "why": "burst"}


def put(base: str, article_id: str, body: dict) -> tuple[int, float]:
    """(status, seconds) of one PUT."""
    request = urllib.request.Request(f"{base}/v1/articles/{article_id}", data=json.dumps(body).encode(), method="PUT",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            return answer.status, time.perf_counter() - started
    except urllib.error.HTTPError as error:
        return error.code, time.perf_counter() - started


def during_puts(base: str, script: str, connections: int, puts: int, tag: str) -> tuple[dict, list[float], float]:
    """wrk on the related endpoint from just before the first PUT until the last one answered: (wrk's figures,
    each PUT's seconds, the burst's seconds)."""
    load = subprocess.Popen(wrk_command(base + "/", 3600, connections, script), stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    seconds, started = [], time.perf_counter()
    try:
        for i in range(puts):
            status, took = put(base, f"burst-{tag}-{i}", article(i))
            if status not in (200, 201):
                raise RuntimeError(f"PUT {i} answered {status}")
            seconds.append(took)
    finally:
        burst = time.perf_counter() - started
        load.send_signal(signal.SIGINT)  # wrk prints its figures on SIGINT
        output, _ = load.communicate(timeout=60)
    return parse_wrk(output), seconds, burst


def measure(index: str, state: Path, mode: str, script: str, args: argparse.Namespace, tag: str) -> dict:
    """One server over a copy of state: steady figures, then figures during the burst."""
    where, _, nice = mode.partition(":")  # process:5 = the embedding process at nice 5
    env = {**os.environ, "RECOMMENDER_STATE_DIR": str(state), "RECOMMENDER_MIN_RELATEDNESS": "0",
           "RECOMMENDER_CACHE_DIR": "", "RECOMMENDER_API_TOKEN": TOKEN, "RECOMMENDER_EMBED_RECEIVED_IN": where,
           "RECOMMENDER_WRITE_RATE_LIMIT": "", **({"RECOMMENDER_EMBEDDER_NICE": nice} if nice else {})}
    with serving(index, env) as (base, _, _):
        for i in range(2):  # the encoders loaded (in the embedding process, or in a worker)
            put(base, f"warm-{tag}-{i}", article(1000 + i))
        run_wrk(base + "/", 5, args.connections, script)  # the index's pages, the overlay laid
        steady = run_wrk(base + "/", args.seconds, args.connections, script)
        burst, seconds, took = during_puts(base, script, args.connections, args.puts, tag)
    return {"steady": steady, "burst": burst, "put_p50_s": statistics.median(seconds), "put_max_s": max(seconds),
            "burst_s": took}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--puts", type=int, default=50)
    parser.add_argument("--received", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20, help="steady measurement before each burst")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="process,worker",
                        help="comma-separated: process (nice from the settings), process:N (nice N), worker")
    args = parser.parse_args()
    snapshot = load_snapshot(args.index, verify=False)
    dims = {name: matrix.shape[1] for name, matrix in snapshot.dense.items()}
    with tempfile.TemporaryDirectory() as tmp:
        received = Path(tmp) / "received"
        received_state(received, dims, args.received)
        script = Path(tmp) / "related.lua"
        script.write_text(related_script(random_ids(snapshot)))
        results: dict[str, list[dict]] = {}
        for round_ in range(args.rounds):
            for mode in args.modes.split(","):
                state = Path(tmp) / f"state-{mode.replace(':', '')}-{round_}"
                shutil.copytree(received, state)
                result = measure(args.index, state, mode, str(script), args, f"{mode.replace(':', '')}{round_}")
                results.setdefault(mode, []).append(result)
                print(f"  {mode:<8} round {round_ + 1}: {json.dumps(result)}", flush=True)
    print(f"{args.index}: {len(snapshot):,} articles, {args.received} received articles in the state, {args.puts} "
          f"PUTs one after another, {args.connections} wrk connections on the related endpoint")
    print(f"  {'embedding in':<14} {'steady p99':>10} {'burst p99':>10} {'ratio':>6} {'steady r/s':>10} "
          f"{'burst r/s':>9} {'p50 s/b':>13} {'PUT p50':>8} {'PUT max':>8} {'burst':>7}")
    for mode, runs in results.items():
        for r in runs:
            s, b = r["steady"], r["burst"]
            print(f"  {mode:<14} {s['p99_ms']:8.2f}ms {b['p99_ms']:8.2f}ms {b['p99_ms'] / s['p99_ms']:5.2f}x "
                  f"{s['requests_per_s']:10.0f} {b['requests_per_s']:9.0f} "
                  f"{s['p50_ms']:5.2f}/{b['p50_ms']:5.2f}ms {r['put_p50_s']:7.2f}s {r['put_max_s']:7.2f}s "
                  f"{r['burst_s']:6.0f}s")


if __name__ == "__main__":
    main()
