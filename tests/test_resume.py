"""A real index job killed with SIGKILL resumes from its finished batches and builds the same index."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import CORPUS
from recommender.index import load_snapshot

pytestmark = pytest.mark.slow  # embeds the sample corpus with e5 twice: a few minutes on 2 cores


def run_index(index_dir, cache_dir, wait=True):
    env = {**os.environ, "RECOMMENDER_PROFILE": "e5", "RECOMMENDER_CACHE_DIR": str(cache_dir),
           "RECOMMENDER_BATCH_SIZE": "4", "RECOMMENDER_STATE_DIR": ""}
    command = [sys.executable, "-m", "recommender", "index", str(CORPUS), "--index", str(index_dir), "--quiet"]
    if wait:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cached(cache_dir) -> int:
    path = cache_dir / "embeddings.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_job_resumes_and_matches_an_uninterrupted_run(tmp_path):
    killed_cache, index = tmp_path / "cache-a", tmp_path / "index-a"
    job = run_index(index, killed_cache, wait=False)
    deadline = time.monotonic() + 300
    while cached(killed_cache) < 40 and time.monotonic() < deadline:
        time.sleep(0.5)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    done_before = cached(killed_cache)
    assert 40 <= done_before < 300, done_before  # killed in the middle of embedding
    assert not (index / "current").exists()  # nothing half-written was published

    resumed = run_index(index, killed_cache)
    assert resumed.returncode == 0, resumed.stderr
    clean = run_index(tmp_path / "index-b", tmp_path / "cache-b")
    assert clean.returncode == 0, clean.stderr

    a, b = load_snapshot(index), load_snapshot(tmp_path / "index-b")
    assert [x["id"] for x in a.articles] == [x["id"] for x in b.articles]
    np.testing.assert_allclose(a.dense["e5"], b.dense["e5"], atol=1e-5)
    assert (a.sparse["tfidf"] != b.sparse["tfidf"]).nnz == 0
