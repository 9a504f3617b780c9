"""p99 of the related endpoint while two new snapshots are published under a running server, against its steady p99.

    nice -n 10 .venv/bin/python bench/swap_stall.py --index /tmp/syn1000000 [--code /tmp/old-checkout] [--rounds 2]

The source index's current snapshot is linked (hard links, `os.link`: nothing of the source is ever written)
into a scratch index directory beside it, which `recommender serve` (2 workers, reload_interval 1 s) serves.
wrk requests related lists of random ids at a steady rate (--rate over --connections, each connection paced
by wrk's delay(); many connections, so a stalled worker holds many requests, as an open-loop client would).
The publishing window runs from 2 s before the first of two publishes (3.5 s apart) until every worker
serves the second one, plus 1 s; each publish is a new set of hard links to the same files under a new name
and manifest, published with `publish` (the index job's atomic re-pointing of `current`), so that every
worker opens and verifies a whole snapshot (4.4 GB at 1,000,000 articles; its pages are in the page cache,
as those of a snapshot just written would be). The steady window after it is as long, with nothing published.

Prints p50, p99, p99.9 and the maximum of both windows, the ratio of their p99, the versions the answers
came from and how long the swaps took, for each code checkout given (--code, repeatable; default this one),
alternated --rounds times.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from http_load import parse_wrk, random_ids, related_script, serving, wrk, wrk_command  # noqa: E402

from recommender.index.snapshot import (  # noqa: E402
    load_snapshot,
    new_snapshot_dir,
    publish,
    resolve_snapshot,
)

# Appended to http_load's related script: paced connections, and what wrk's summary leaves out.
PACED = """
local pause = %d
function delay() return math.random(0, 2 * pause) end  -- random, or the connections would stay in lockstep
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) versions = "" ; seen = {} end
function response(status, headers, body)
  local v = body:match('"index_version":"([^"]+)"')
  if v and not seen[v] then seen[v] = true ; versions = versions .. v .. " " end
end
function done(summary, latency, requests)
  local all = ""
  for _, t in ipairs(threads) do all = all .. t:get("versions") end
  io.write(string.format("TAIL p999=%%d max=%%d versions=%%s\\n", latency:percentile(99.9), latency.max, all))
end
"""
LEAD, GAP = 2.0, 3.5  # seconds of load before the first publish, and between the two


def linked_snapshot(source: Path, index_dir: Path) -> Path:
    """A new snapshot directory of index_dir whose files are hard links to source's, under a name of its own."""
    target = new_snapshot_dir(index_dir)
    shutil.copytree(source, target, copy_function=os.link)
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    manifest["snapshot"] = target.name  # the version answers name; the checksums cover the data files only
    fresh = target / "manifest.json.new"
    fresh.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(fresh, target / "manifest.json")  # replaces the link in target; the source's file is untouched
    return target


def figures(output: str) -> dict:
    """wrk's figures of one window, with the tail our script prints."""
    tail = re.search(r"TAIL p999=(\d+) max=(\d+) versions=(.*)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    seconds = re.search(r"requests in ([\d.]+)(m?s)", output)
    return {**parse_wrk(output), "p999_ms": int(tail.group(1)) / 1e3, "max_ms": int(tail.group(2)) / 1e3,
            "versions": len(set(tail.group(3).split())), "socket_errors": errors.group(1) if errors else "none",
            "seconds": float(seconds.group(1)) * (60 if seconds.group(2) == "m" else 1)}


def publishing_window(base: str, script: Path, args: argparse.Namespace, index_dir: Path) -> dict:
    """wrk from LEAD seconds before the first of two publishes until every worker serves the second, plus 1 s
    ("swap_s": from the second publish until then)."""
    command = wrk_command(base + "/", 600, args.connections, str(script), timeout=60)  # a stall is a latency
    load = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(LEAD)
        publish(index_dir, linked_snapshot(resolve_snapshot(index_dir), index_dir), keep=10)
        time.sleep(GAP)
        publish(index_dir, linked_snapshot(resolve_snapshot(index_dir), index_dir), keep=10)
        published = time.monotonic()
        swapped = newest_everywhere(base, resolve_snapshot(index_dir).name)
        time.sleep(1.0)
    finally:
        load.send_signal(signal.SIGINT)  # wrk stops and prints what it measured
    return {**figures(load.communicate(timeout=60)[0]), "swap_s": swapped - published}


def newest_everywhere(base: str, newest: str, deadline: float = 120.0, in_a_row: int = 20) -> float:
    """Poll /readyz (each request may reach either worker) until in_a_row answers name newest; returns the
    monotonic time it did (inf past the deadline)."""
    until, streak = time.monotonic() + deadline, 0
    while streak < in_a_row and time.monotonic() < until:
        answer = json.loads(urllib.request.urlopen(base + "/readyz", timeout=60).read())  # through any stall
        streak = streak + 1 if answer["index_version"] == newest else 0
        if not streak:
            time.sleep(0.05)
    return time.monotonic() if streak >= in_a_row else float("inf")


def run(code: Path, scratch: Path, source: Path, script: Path, args: argparse.Namespace) -> dict:
    """The publishing window and a steady one as long of one server running code's checkout."""
    index_dir = Path(tempfile.mkdtemp(prefix="index-", dir=scratch))
    publish(index_dir, linked_snapshot(source, index_dir), keep=10)
    env = {**os.environ, "PYTHONPATH": str(code), "RECOMMENDER_PROFILE": args.profile,
           "RECOMMENDER_STATE_DIR": str(index_dir / "state"), "RECOMMENDER_CACHE_DIR": ""}
    with serving(str(index_dir), env, cwd=str(code)) as (base, _, _):
        wrk(base + "/", 2, args.connections, str(script))  # warm-up: both workers, the pages of the first snapshot
        during = publishing_window(base, script, args, index_dir)
        steady = figures(wrk(base + "/", round(during["seconds"]), args.connections, str(script), timeout=60))
    return {"steady": steady, "publishing": during}


def in_process(index: str, query: str, rounds: int) -> None:
    """related() every 2 ms in this process, idle and while the engine's loader prepares the served snapshot
    again (checksums included): what a worker's requests feel of a swap, without HTTP and its neighbours."""
    from threadpoolctl import threadpool_limits

    from recommender.config import load_settings
    from recommender.engine import Recommender
    from recommender.rank.placements import options_from

    threadpool_limits(1, user_api="blas")  # as in a server worker
    engine = Recommender.open(load_settings(index_dir=index, state_dir=""))
    values = dict(urllib.parse.parse_qsl(query.lstrip("?")))
    options = options_from({k: float(v) if v.replace(".", "", 1).isdigit() else v for k, v in values.items()}, 50)
    ids = random_ids(engine.snapshot)
    target = engine.base.path.resolve()
    for round_, loading in ((r, loading) for r in range(1, rounds + 1) for loading in (False, True)):
        if loading:
            engine._loader.vouch("")  # forget what was verified: the checksums are computed again
            engine._loader.begin(target, partial(engine._prepare, target, engine._expected()))
        started, times = time.perf_counter(), []
        while engine._loader.running if loading else time.perf_counter() - started < 2.0:
            begin = time.perf_counter()
            engine.related(ids[len(times) % len(ids)], 5, request=options)
            times.append((time.perf_counter() - begin) * 1e3)
            time.sleep(0.002)
        if loading:
            assert engine._loader.take().error is None
        print(f"  round {round_} {'loading' if loading else 'idle':<8} {time.perf_counter() - started:5.2f} s"
              f"  {len(times):5d} requests  p50 {np.percentile(times, 50):6.2f}  p99 {np.percentile(times, 99):6.2f}"
              f"  max {max(times):6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="source index directory (only read)")
    parser.add_argument("--code", action="append", help="checkout whose code serves (repeatable; default: this one)")
    parser.add_argument("--profile", default="default", help="profile the index was built with")
    parser.add_argument("--rate", type=float, default=200.0, help="related requests per second, all connections")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--query", default="?min_relatedness=0",
                        help="query string of every request (synthetic vectors have relatedness 0)")
    parser.add_argument("--in-process", action="store_true", help="no server: the engine's own requests (this "
                        "code only) while its loader prepares the snapshot again")
    args = parser.parse_args()
    if args.in_process:
        return in_process(args.index, args.query, args.rounds)
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    source = resolve_snapshot(args.index)
    codes = [Path(c).resolve() for c in args.code or [REPO]]
    scratch = Path(tempfile.mkdtemp(prefix="swap-stall-", dir=source.parent.parent.parent))  # same file system
    try:
        script = scratch / "paced.lua"
        pause_ms = round(1e3 * args.connections / args.rate)
        script.write_text(related_script(random_ids(load_snapshot(source, verify=False)), args.query)
                          + PACED % pause_ms)
        print(f"{source}: {args.rate:.0f} req/s over {args.connections} connections (pauses of {pause_ms} ms on "
              f"average), publishes {LEAD:.0f} s and {LEAD + GAP:.1f} s into the publishing window")
        for round_ in range(1, args.rounds + 1):
            for code in codes:
                result = run(code, scratch, source, script, args)
                steady, during = result["steady"], result["publishing"]
                print(f"  round {round_} {code}: p99 ratio {during['p99_ms'] / steady['p99_ms']:.2f}; every worker "
                      f"served the second snapshot {during['swap_s']:.1f} s after its publish")
                for name, r in (("steady", steady), ("publishing", during)):
                    print(f"    {name:<10} {r['seconds']:4.1f} s {r['requests_per_s']:4.0f} req/s"
                          f"  p50 {r['p50_ms']:7.2f}  p99 {r['p99_ms']:7.2f}  p99.9 {r['p999_ms']:7.1f}"
                          f"  max {r['max_ms']:7.1f} ms  versions {r['versions']}  non-2xx {r['non_2xx']}"
                          f"  socket errors {r['socket_errors']}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # links only: the source's files keep their other name


if __name__ == "__main__":
    main()
