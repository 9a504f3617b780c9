"""What articles received through PUT cost every related-links request: a server with an empty state against
one whose state holds --received articles, alternated in one run (req/s, p50, p99 with wrk).

    .venv/bin/python bench/received_articles.py --index /tmp/syn100000 [--received 500] [--rounds 3]

The received articles are written straight into the state folder's live store with random unit vectors of the
index's signals (embedding 500 texts would take minutes and measures the encoders, not the overlay); the
server lays them over its snapshot as it does with PUT articles. min_relatedness 0: synthetic vectors relate
nothing. Only 127.0.0.1 is contacted.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_load import LUA, free_port, run_wrk, wait_ready  # noqa: E402

from recommender.index.live import LiveStore  # noqa: E402
from recommender.index.snapshot import load_snapshot  # noqa: E402
from recommender.ingest.corpus import article_from_json  # noqa: E402


def received_state(folder: Path, dims: dict[str, int], count: int) -> None:
    """A state folder whose live store holds count articles with random unit vectors."""
    store, rng = LiveStore(folder / "live.sqlite"), np.random.default_rng(3)
    for i in range(count):
        article = article_from_json({"id": f"received-{i}", "title": f"Eingegangen {i}", "body": f"Text {i}. " * 30,
                                     "lang": "de", "section": "Politik", "published_at": "2026-11-30T08:00:00+00:00"})
        vectors = {name: rng.normal(size=dim).astype(np.float32) for name, dim in dims.items()}
        store.put(article, {name: v / np.linalg.norm(v) for name, v in vectors.items()})


def measure(index: str, state: Path, script: Path, seconds: int, connections: int) -> dict[str, float]:
    """wrk on the related endpoint of a server over state."""
    port = free_port()
    env = {**os.environ, "RECOMMENDER_STATE_DIR": str(state), "RECOMMENDER_MIN_RELATEDNESS": "0",
           "RECOMMENDER_CACHE_DIR": ""}
    server = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", index, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, seconds=300, poll=0.1)
        run_wrk(base + "/", 2, connections, str(script))  # warm-up: the index's pages, the overlay built
        return run_wrk(base + "/", seconds, connections, str(script))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--received", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    snapshot = load_snapshot(args.index, verify=False)
    ids = [a["id"] for a in snapshot.articles[:: max(1, len(snapshot) // 2000)]]
    dims = {name: matrix.shape[1] for name, matrix in snapshot.dense.items()}
    with tempfile.TemporaryDirectory() as tmp:
        empty, received = Path(tmp) / "empty", Path(tmp) / "received"
        empty.mkdir()
        received_state(received, dims, args.received)
        script = Path(tmp) / "related.lua"
        script.write_text(LUA % (",".join(json.dumps(i) for i in ids), 7, ""))
        runs: dict[str, list[dict[str, float]]] = {"empty": [], "received": []}
        for _ in range(args.rounds):
            for name, state in (("empty", empty), ("received", received)):
                runs[name].append(measure(args.index, state, script, args.seconds, args.connections))
    print(f"{args.index}: {len(snapshot):,} articles, {args.connections} connections, {args.seconds} s per run, "
          f"median of {args.rounds} alternated rounds")
    median = {name: {key: statistics.median(r[key] for r in rs) for key in ("requests_per_s", "p50_ms", "p99_ms")}
              for name, rs in runs.items()}
    for name, m in median.items():
        label = "empty state" if name == "empty" else f"{args.received} received"
        print(f"  {label:<14} {m['requests_per_s']:8.0f} req/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms")
    e, r = median["empty"], median["received"]
    print(f"  ratio received/empty: req/s {r['requests_per_s'] / e['requests_per_s']:.2f}x, "
          f"p50 {r['p50_ms'] / e['p50_ms']:.2f}x, p99 {r['p99_ms'] / e['p99_ms']:.2f}x")


if __name__ == "__main__":
    main()
