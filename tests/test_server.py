"""`recommender serve`: gunicorn with two workers over a real socket on loopback."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import record, write_jsonl

from recommender.config import load_settings
from recommender.jobs import build_index


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.status, answer.read()


@pytest.fixture
def server(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [record(f"a{i}", body=f"Text {i} über die Donau und Passau.") for i in range(4)])
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp_path / "index"), cache_dir="")
    build_index([corpus], settings.index_dir, settings)
    port = free_port()
    env = {**os.environ, "RECOMMENDER_PROFILE": "tfidf", "RECOMMENDER_CACHE_DIR": "",
           "RECOMMENDER_STATE_DIR": str(tmp_path / "state")}
    process = subprocess.Popen(
        [sys.executable, "-m", "recommender", "serve", "--index", settings.index_dir, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            get(base + "/healthz")
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("server did not start: " + process.stdout.read())
    yield base, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_serves_related_links_with_two_workers_and_merged_metrics(server):
    base, process = server
    for _ in range(6):
        status, body = get(base + "/v1/articles/a0/related?k=2")
        assert status == 200 and len(json.loads(body)["items"]) == 2
    _, metrics = get(base + "/metrics")
    line = next(l for l in metrics.decode().splitlines() if l.startswith("recommender_requests_total") and "related" in l)
    assert line.endswith(" 6.0")  # counted over both workers
    deadline = time.monotonic() + 10
    while True:  # the second worker may still be booting when the first answers
        group = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
        if len(group) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(group) == 3  # the gunicorn master and its two workers


def test_prints_where_it_serves(server):
    base, process = server
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=20)[0]
    assert f"{base}/v1/articles/" in output and "with 2 workers" in output
