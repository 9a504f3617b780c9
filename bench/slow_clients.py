"""Latency of /healthz and the related endpoint while slow and idle clients hold connections open.

    .venv/bin/python bench/slow_clients.py --index data/index [--slow 16] [--idle 16] [--requests 200]
        [--worker-class gevent|sync]

Starts `recommender serve` (2 workers) on a loopback port it picks itself, measures --requests sequential
requests to each endpoint with no other client (the baseline), then opens --slow connections that send a
request header one byte every 0.5 s (never finishing it) and --idle connections that send nothing, and
measures again. With `--worker-class sync` (gunicorn's one-client-per-worker class) two slow clients stall
everything; the default gevent workers should not notice them. Only 127.0.0.1 is contacted; the run is
bounded by --requests and stops by itself.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.index.snapshot import load_snapshot  # noqa: E402


def start_server(index: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """`recommender serve --port 0`; returns the process and its base URL once /readyz answers."""
    with open(log, "w") as output:
        server = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", index, "--port", "0"],
                                  stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    base = ""
    while time.monotonic() < deadline:
        found = re.search(r"workers on (http://\S+)", log.read_text())
        if found:
            base = found.group(1)
            try:
                urllib.request.urlopen(base + "/readyz", timeout=2).read()
                time.sleep(1.0)  # the second worker boots right after the first
                return server, base
            except OSError:
                pass
        time.sleep(0.1)
    os.killpg(server.pid, signal.SIGKILL)
    raise RuntimeError("the server did not start:\n" + log.read_text())


def timings(url: str, count: int) -> list[float]:
    """Milliseconds of count sequential GETs (a timed-out or failed request counts as 10,000 ms)."""
    spent = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            urllib.request.urlopen(url, timeout=10).read()
            spent.append((time.perf_counter() - started) * 1000)
        except OSError:
            spent.append(10_000.0)
    return spent


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):7.2f} ms  p99 {p99:7.2f} ms  max {ordered[-1]:8.2f} ms"


class SlowClients:
    """Connections that trickle a request header a byte at a time, and connections that say nothing."""

    def __init__(self, base: str, slow: int, idle: int) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.slow = [socket.create_connection((host, int(port))) for _ in range(slow)]
        self.idle = [socket.create_connection((host, int(port))) for _ in range(idle)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def _trickle(self) -> None:
        for connection in self.slow:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        while not self.stop.wait(0.5):
            for connection in self.slow:
                try:
                    connection.sendall(b"a")
                except OSError:
                    pass

    def __enter__(self) -> "SlowClients":
        self.thread.start()
        time.sleep(1.0)  # let every connection be accepted and start its header
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        for connection in self.slow + self.idle:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--profile", default="default", help="profile the index was built with")
    parser.add_argument("--slow", type=int, default=16)
    parser.add_argument("--idle", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--worker-class", default="gevent", choices=("gevent", "sync"))
    args = parser.parse_args()
    article = load_snapshot(args.index, verify=False).articles[0]["id"]
    env = {**os.environ, "RECOMMENDER_PROFILE": args.profile, "RECOMMENDER_WORKER_CLASS": args.worker_class}
    with tempfile.TemporaryDirectory() as tmp:
        env["RECOMMENDER_STATE_DIR"] = str(Path(tmp) / "state")
        server, base = start_server(args.index, env, Path(tmp) / "server.log")
        try:
            paths = {"/healthz": "/healthz", "related": f"/v1/articles/{article}/related?k=5"}
            print(f"{args.worker_class} workers, {args.requests} sequential requests per line")
            for name, path in paths.items():
                print(f"  {name:<9} alone:                      {summary(timings(base + path, args.requests))}")
            with SlowClients(base, args.slow, args.idle):
                for name, path in paths.items():
                    print(f"  {name:<9} with {args.slow} slow + {args.idle} idle clients: "
                          f"{summary(timings(base + path, args.requests))}")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
