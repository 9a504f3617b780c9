"""The reader's block over HTTP: the JSON list and the HTML fragment (req/s, p50/p99), the events endpoint's
sustained rate with batches, and what an events burst costs the related-links answers, in one run.

    .venv/bin/python bench/reader_block.py --index /tmp/syn1000000 [--seconds 10] [--connections 2]

Starts `recommender serve` (gunicorn, 2 workers) on a free loopback port with a fresh state folder, the event
rate limit off (wrk is one client address) and min_relatedness 0 (synthetic vectors relate nothing), then runs
wrk against /healthz (the harness's ceiling), the related JSON and the fragment with random ids, and POST
/v1/events with batches of genuine events. Last, related links alone and then with a paced events burst next
to them (a thread posting --burst batches a second), and with a paced /healthz burst at the same rate (the
control: on two cores the load generator and any HTTP request take their share), alternated --rounds times.
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
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_load import LUA, free_port, run_wrk, wait_ready  # noqa: E402

from recommender.index.snapshot import load_snapshot  # noqa: E402

POST_LUA = """
local bodies = {%s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/v1/events", nil, bodies[i])
end
"""


def batches(base: str, ids: list[str], size: int, count: int = 100) -> list[str]:
    """count JSON bodies of `size` genuine events each (impressions and a click), from real answers."""
    bodies = []
    for n in range(count):
        article = ids[n % len(ids)]
        with urllib.request.urlopen(f"{base}/v1/articles/{article}/related?placement=article_bottom", timeout=10) as r:
            answer = json.load(r)
        seen = {"type": "impression", "rid": answer["rid"], "article_id": article, "placement": "article_bottom",
                "shown": max(1, len(answer["items"]))}
        last = seen
        if answer["items"]:
            last = {**{k: v for k, v in seen.items() if k != "shown"}, "type": "click", "position": 1,
                    "item_id": answer["items"][0]["id"]}
        bodies.append(json.dumps({"events": [seen] * (size - 1) + [last]}))
    return bodies


def paced_burst(base: str, bodies: list[str] | None, per_second: float, stop: threading.Event, sent: list[int]) -> None:
    """POST one batch every 1/per_second seconds until stop (a new connection each: the server has no
    keep-alive); bodies None: GET /healthz at the same pace instead (the control: what any request costs)."""
    interval, due, i = 1.0 / per_second, time.monotonic(), 0
    while not stop.is_set():
        request = (urllib.request.Request(base + "/v1/events", data=bodies[i % len(bodies)].encode(),
                                          headers={"Content-Type": "application/json"})
                   if bodies else urllib.request.Request(base + "/healthz"))
        with urllib.request.urlopen(request, timeout=10) as answer:
            sent[0 if 200 <= answer.status < 300 else 1] += 1
        i += 1
        due += interval
        time.sleep(max(0.0, due - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10, help="events per POST")
    parser.add_argument("--burst", type=float, nargs="+", default=[100.0, 25.0],
                        help="batches a second during the burst (several: one measurement each)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    snapshot = load_snapshot(args.index, verify=False)
    ids = [a["id"] for a in snapshot.articles[:: max(1, len(snapshot) // 2000)]]
    port, state = free_port(), tempfile.mkdtemp(prefix="reader-block-state-")
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RECOMMENDER_PROFILE": args.profile, "RECOMMENDER_STATE_DIR": state,
           "RECOMMENDER_EVENT_RATE_LIMIT": "", "RECOMMENDER_MIN_RELATEDNESS": "0"}
    server = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", args.index, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        wait_ready(base, seconds=300)
        print(f"{args.index}: {len(snapshot):,} articles, {args.connections} connections, {args.seconds} s per run")
        with tempfile.TemporaryDirectory() as tmp:
            scripts = {}
            for name, path in (("related", "/v1/articles/\" .. id .. \"/related?placement=article_bottom"),
                               ("related.html", "/v1/articles/\" .. id .. \"/related.html?placement=article_bottom")):
                scripts[name] = Path(tmp) / f"{name}.lua"
                scripts[name].write_text(LUA.replace('"/v1/articles/" .. id .. "/related%s"', '"%s"')
                                         % (",".join(json.dumps(i) for i in ids), 7, path))
            scripts["events"] = Path(tmp) / "events.lua"
            bodies = batches(base, ids, args.batch)
            scripts["events"].write_text(POST_LUA % ",".join(json.dumps(b) for b in bodies))
            report(base, args, scripts, bodies)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def line(name: str, r: dict[str, float], ceiling: float) -> str:
    return (f"  {name:<24} {r['requests_per_s']:8.0f} req/s ({r['requests_per_s'] / ceiling:5.1%} of /healthz)"
            f"  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non_2xx']}")


def report(base: str, args: argparse.Namespace, scripts: dict[str, Path], bodies: list[str]) -> None:
    """Run and print every measurement."""
    ceiling = run_wrk(base + "/healthz", args.seconds, args.connections)
    print(line("/healthz", ceiling, ceiling["requests_per_s"]))
    for name in ("related", "related.html", "events"):
        r = run_wrk(base + "/", args.seconds, args.connections, str(scripts[name]))
        extra = f"  ({r['requests_per_s'] * args.batch:,.0f} events/s)" if name == "events" else ""
        print(line(name if name != "events" else f"events ({args.batch} a batch)", r, ceiling["requests_per_s"]) + extra)
    for rate in args.burst:
        burst_cost(base, args, scripts["related"], bodies, rate)


def burst_cost(base: str, args: argparse.Namespace, related: Path, bodies: list[str], rate: float) -> None:
    """Related links alone, during a paced events burst, and during a paced /healthz burst (the control: the
    load generator and an HTTP request's own cost on the same two cores), alternated; medians and ratios."""
    runs: dict[str, list[dict[str, float]]] = {"alone": [], "events": [], "healthz": []}
    for _ in range(args.rounds):
        for name in runs:
            stop, sent = threading.Event(), [0, 0]
            sender = threading.Thread(target=paced_burst, args=(base, bodies if name == "events" else None, rate,
                                                                stop, sent), daemon=True)
            if name != "alone":
                sender.start()
            runs[name].append({**run_wrk(base + "/", args.seconds, args.connections, str(related)),
                               "sent": sent[0], "refused": sent[1]})
            stop.set()
            if name != "alone":
                sender.join(timeout=30)
    median = {name: {key: statistics.median(r[key] for r in rs) for key in ("requests_per_s", "p50_ms", "p99_ms")}
              for name, rs in runs.items()}
    a = median["alone"]
    print(f"  related during {rate:.0f} requests/s of a paced burst ({args.batch} events a batch), median of "
          f"{args.rounds} alternated rounds:")
    for name, m in median.items():
        print(f"    {name:<8} {m['requests_per_s']:7.0f} req/s ({m['requests_per_s'] / a['requests_per_s']:.2f}x)  "
              f"p50 {m['p50_ms']:6.2f} ms ({m['p50_ms'] / a['p50_ms']:.2f}x)  p99 {m['p99_ms']:6.2f} ms "
              f"({m['p99_ms'] / a['p99_ms']:.2f}x)"
              + (f"  sent {[r['sent'] for r in runs[name]]}" if name != "alone" else ""))

if __name__ == "__main__":
    main()
