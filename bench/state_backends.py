"""Related links over HTTP with the state in SQLite files (state_dir) or in PostgreSQL (state_url), one run.

    .venv/bin/python bench/state_backends.py --index /tmp/syn100000 [--rounds 3] [--seconds 10] [--connections 8]

Every request reads the editors' and the live articles' change counters from the state: one indexed row of
each SQLite file, or one query to PostgreSQL for both. For each round, the two backends in alternating
order, each with a fresh SQLite folder or a fresh database of a PostgreSQL this script starts itself
(tests/pgserver.py: Debian's binaries, default settings, loopback TCP) in which a few stories are pinned,
blocked and taken down (so the rules are not empty):
- over HTTP: `recommender serve` (2 workers), wrk against the related endpoint with random article ids;
- in process: the app's test client asks for the related lists of 200 ids (no HTTP, no gevent): the median
  time per request isolates what the state's checks cost.
Prints each run and the medians per backend. Only 127.0.0.1 is contacted.
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
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from http_load import LUA, free_port, run_wrk, wait_ready  # noqa: E402
from pgserver import PostgresServer, unavailable_reason  # noqa: E402

from recommender.index.snapshot import load_snapshot  # noqa: E402

TOKEN = "bench-token"


def editors_decisions(base: str, ids: list[str]) -> None:
    """A few pins, blocks and a takedown through the API, so every request applies non-empty rules."""
    def call(method: str, path: str, body: dict) -> None:
        request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30).read()

    for n in range(5):
        call("PUT", f"/v1/articles/{ids[n]}/overrides", {"action": "pin", "target": ids[n + 10], "position": 1})
        call("PUT", f"/v1/articles/{ids[n]}/overrides", {"action": "block", "target": ids[n + 20]})
    call("DELETE", f"/v1/articles/{ids[30]}", {"why": "bench"})


def measure(index: str, ids: list[str], state: dict[str, str], seconds: int, connections: int) -> dict[str, float]:
    """wrk on the related endpoint of a server whose state settings are `state`."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RECOMMENDER_MIN_RELATEDNESS": "0", "RECOMMENDER_CACHE_DIR": "",
           "RECOMMENDER_API_TOKEN": TOKEN, "RECOMMENDER_WRITE_RATE_LIMIT": "", **state}
    server = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", index, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        wait_ready(base, seconds=300, poll=0.1)
        editors_decisions(base, ids)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "related.lua"
            asked = [i for i in ids if i != ids[30]]  # not the one taken down: its own list is a 404
            script.write_text(LUA % (",".join(json.dumps(i) for i in asked), 7, ""))
            run_wrk(base + "/", 2, connections, str(script))  # warm-up: pages of the index, prepared statements
            return run_wrk(base + "/", seconds, connections, str(script))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def in_process(index: str, ids: list[str], state: dict[str, str]) -> float:
    """Median ms per related request through the app's test client (no HTTP), state as given."""
    from recommender.config import load_settings
    from recommender.serve.app import create_app

    settings = load_settings(environ={}, index_dir=index, cache_dir="", min_relatedness=0.0, api_token=TOKEN,
                             **{k.removeprefix("RECOMMENDER_").lower(): v for k, v in state.items()})
    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for n in range(5):
        client.put(f"/v1/articles/{ids[n]}/overrides", json={"action": "pin", "target": ids[n + 10], "position": 1},
                   headers=headers)
    asked = ids[31:231]
    for article_id in asked:  # warm-up
        client.get(f"/v1/articles/{article_id}/related")
    times = []
    for article_id in asked:
        started = time.perf_counter()
        assert client.get(f"/v1/articles/{article_id}/related").status_code == 200
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="index directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None or unavailable_reason():
        sys.exit(f"needs wrk and PostgreSQL: apt-get install wrk postgresql ({unavailable_reason() or ''})")
    snapshot = load_snapshot(args.index, verify=False)
    ids = [a["id"] for a in snapshot.articles[:: max(1, len(snapshot) // 2000)]]
    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    with PostgresServer(settings=()) as postgres, tempfile.TemporaryDirectory() as tmp:
        for round_number in range(args.rounds):
            order = ["sqlite", "postgresql"] if round_number % 2 == 0 else ["postgresql", "sqlite"]
            for backend in order:
                fresh = (lambda part: {"RECOMMENDER_STATE_DIR": f"{tmp}/{part}-{round_number}",
                                       "RECOMMENDER_STATE_URL": ""}) if backend == "sqlite" else \
                    (lambda part: {"RECOMMENDER_STATE_DIR": "", "RECOMMENDER_STATE_URL": postgres.create_database()})
                result = measure(args.index, ids, fresh("http"), args.seconds, args.connections)
                result["in_process_ms"] = in_process(args.index, ids, fresh("inproc"))
                results[backend].append(result)
                print(f"round {round_number + 1} {backend:<10} {result['requests_per_s']:7.0f} req/s  "
                      f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  non-2xx {result['non_2xx']}"
                      f"  in process {result['in_process_ms']:5.2f} ms", flush=True)
    print(f"{args.index}: {len(snapshot)} articles, {args.connections} connections, {args.seconds} s per run, "
          f"median of {args.rounds} rounds")
    for backend, runs in results.items():
        print(f"  {backend:<10} {statistics.median(r['requests_per_s'] for r in runs):7.0f} req/s  "
              f"p50 {statistics.median(r['p50_ms'] for r in runs):6.2f} ms  "
              f"p99 {statistics.median(r['p99_ms'] for r in runs):6.2f} ms  "
              f"in process {statistics.median(r['in_process_ms'] for r in runs):5.2f} ms per request")


if __name__ == "__main__":
    main()
