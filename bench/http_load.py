"""Requests per second and p50/p99 latency of the related endpoint over loopback, measured with wrk.

    .venv/bin/python bench/http_load.py --index data/index [--index /tmp/synthetic-100k] [--seconds 10]

For each index: start `recommender serve` (gunicorn, 2 workers) on a free loopback port, then run wrk
(Debian package `wrk`) against /healthz (the harness's ceiling), the related endpoint with random article
ids, and the same with filters. Every run is bounded by --seconds and stops by itself; only 127.0.0.1 is
contacted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.index.snapshot import Snapshot, load_snapshot  # noqa: E402

LUA = """
local ids = {%s}
math.randomseed(%d)
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/articles/" .. id .. "/related%s")
end
"""
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, seconds: float = 60.0, poll: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2).read()
            return
        except OSError:
            time.sleep(poll)
    raise RuntimeError(f"server at {base} did not become ready")


def wrk_command(url: str, seconds: int, connections: int, script: str | None = None, timeout: int = 5) -> list[str]:
    """wrk for seconds with connections (2 threads, latency distribution); an answer later than timeout
    seconds counts as a socket error, not in the latency."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", f"{timeout}s"]
    return command + (["-s", script] if script else []) + [url]


def wrk(url: str, seconds: int, connections: int, script: str | None = None, timeout: int = 5) -> str:
    """What `wrk_command` prints."""
    command = wrk_command(url, seconds, connections, script, timeout)
    return subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout


def parse_wrk(output: str) -> dict[str, float]:
    """Requests per second, p50 and p99 in ms and the non-2xx answers from wrk's output."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = {p: float(v) * UNIT[u]
               for p, v, u in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"requests_per_s": rate, "p50_ms": latency["50"], "p99_ms": latency["99"],
            "non_2xx": int(errors.group(1)) if errors else 0}


def run_wrk(url: str, seconds: int, connections: int, script: str | None = None) -> dict[str, float]:
    """wrk's figures (parse_wrk) of one run."""
    return parse_wrk(wrk(url, seconds, connections, script))


@contextmanager
def serving(index: str, env: dict[str, str], cwd: str | None = None) -> Iterator[tuple[str, int, float]]:
    """`recommender serve` over index on a free loopback port, ready: (base URL, master pid, start-up seconds);
    stopped (the whole process group) on leaving. cwd: the checkout whose code serves (default: this one)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", index, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd,
                              start_new_session=True)
    try:
        wait_ready(base, poll=0.05)
        yield base, server.pid, time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def random_ids(snapshot: Snapshot, count: int = 2000) -> list[str]:
    """About count article ids spread over the snapshot (wrk scripts pick among them at random)."""
    return [a["id"] for a in snapshot.articles[:: max(1, len(snapshot) // count)]]


def related_script(ids: list[str], query: str = "", seed: int = 7) -> str:
    """A wrk script requesting the related list of a random one of ids, with the query string given."""
    return LUA % (",".join(json.dumps(i) for i in ids), seed, query)


def measure(index: str, seconds: int, connections: int, env: dict[str, str]) -> dict[str, dict[str, float]]:
    snapshot = load_snapshot(index, verify=False)
    ids = random_ids(snapshot)
    results = {}
    with serving(index, env) as (base, pid, startup):
        results["healthz"] = run_wrk(base + "/healthz", seconds, connections)
        with tempfile.TemporaryDirectory() as tmp:
            for name, query in (("related", ""), ("related+filters", "?lang=de&max_age_days=365&k=5")):
                script = Path(tmp) / f"{name}.lua"
                script.write_text(related_script(ids, query))
                results[name] = run_wrk(base + "/", seconds, connections, str(script))
        memory = server_memory(pid)
    results["articles"] = {"n": len(snapshot), "startup_s": startup, **memory}
    return results


def server_memory(pid: int) -> dict[str, float]:
    """Resident memory of the server (gunicorn master + workers), MiB: the sum of RSS counts pages the
    workers share (index files mapped by each) once per process; PSS splits shared pages between them."""
    import psutil

    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    infos = [p.memory_full_info() for p in processes]
    return {"rss_mib": sum(i.rss for i in infos) / 2**20, "pss_mib": sum(i.pss for i in infos) / 2**20,
            "processes": len(processes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", action="append", required=True, help="index directory (repeatable)")
    parser.add_argument("--profile", default="default", help="profile the indexes were built with")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    env = {**os.environ, "RECOMMENDER_PROFILE": args.profile}
    for index in args.index:
        results = measure(index, args.seconds, args.connections, env)
        facts = results.pop("articles")
        print(f"{index}: {facts['n']} articles, {args.connections} connections, {args.seconds}s each; start-up to ready "
              f"{facts['startup_s']:.2f} s; memory after the runs: RSS {facts['rss_mib']:.0f} MiB, "
              f"PSS {facts['pss_mib']:.0f} MiB over {facts['processes']} processes")
        ceiling = results["healthz"]["requests_per_s"]
        for name, r in results.items():
            print(f"  {name:<16} {r['requests_per_s']:8.0f} req/s ({r['requests_per_s'] / ceiling:5.1%} of /healthz)"
                  f"  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non_2xx']}")


if __name__ == "__main__":
    main()
