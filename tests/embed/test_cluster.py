"""The index job on a real Dask cluster (a scheduler and two workers as processes) builds the local index."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS, REPO

from recommender.cli import main
from recommender.config import load_settings
from recommender.embed import cluster
from recommender.embed.encoders.use import UseEncoder
from recommender.engine import Recommender
from recommender.index.snapshot import load_snapshot

BIN = Path(sys.executable).parent
ARTICLES = 48  # a slice of corpus/: several batches per worker, embedded in seconds with USE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {seconds}s")
        time.sleep(0.2)


def workers_of(address: str) -> int:
    from distributed import Client

    with Client(address, timeout=5, set_as_default=False) as client:
        return len(client.scheduler_info()["workers"])


@pytest.fixture
def dask_cluster(tmp_path):
    """tcp://127.0.0.1:PORT of a scheduler with two one-thread workers; every process is killed afterwards."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # Workers import this checkout's package, one encoder thread each: two workers share the machine's 2 cores.
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECOMMENDER_THREADS": "1"}
    # Own process groups: a worker runs under a nanny process, and killing the group takes both.
    common = {"cwd": tmp_path, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
              "start_new_session": True}
    processes = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], **common)]
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 60, "scheduler start")
        for n in range(2):
            processes.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                 "--host", "127.0.0.1", "--local-directory", str(tmp_path / f"worker-{n}")], **common))
        wait_for(lambda: workers_of(address) == 2, 60, "two workers joining")
        yield address
    finally:
        # SIGKILL, not a graceful close: nothing of theirs needs saving, and a nanny's shutdown takes seconds.
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def index(corpus: Path, index_dir: Path, *extra: str) -> None:
    assert main(["index", str(corpus), "--index", str(index_dir), "--profile", "use", "--quiet", *extra]) == 0


def test_cluster_run_builds_the_same_index_as_a_local_run(tmp_path, dask_cluster, monkeypatch):
    lines = (CORPUS / "articles.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:ARTICLES]
    corpus = tmp_path / "slice.jsonl"
    corpus.write_text("".join(lines), encoding="utf-8")
    monkeypatch.setenv("RECOMMENDER_THREADS", "1")
    monkeypatch.setenv("RECOMMENDER_BATCH_SIZE", "4")
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", "")
    # Separate empty caches: the cluster run must embed everything itself, nothing may come from the local run.
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(tmp_path / "cache-local"))
    index(corpus, tmp_path / "local")
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(tmp_path / "cache-cluster"))
    index(corpus, tmp_path / "remote", "--cluster", dask_cluster)

    local, remote = load_snapshot(tmp_path / "local"), load_snapshot(tmp_path / "remote")
    assert [a["id"] for a in local.articles] == [a["id"] for a in remote.articles] and len(local) == ARTICLES
    np.testing.assert_allclose(np.asarray(local.dense["use"], dtype=np.float32),
                               np.asarray(remote.dense["use"], dtype=np.float32), atol=1e-3)
    # The client wrote every vector into its own cache, batch by batch.
    assert (tmp_path / "cache-cluster" / "embeddings.sqlite").exists()
    from distributed import Client

    with Client(dask_cluster, timeout=5, set_as_default=False) as client:
        loaded = client.run(cluster.loaded_encoders)
    assert [len(names) for names in loaded.values()] == [1, 1]  # both workers embedded, each loaded USE once
    settings = load_settings(profile="use")
    engines = [Recommender.open(settings, tmp_path / name) for name in ("local", "remote")]
    for article in local.articles:
        lists = [[e.snapshot.articles[s.row]["id"] for s in e.related(article["id"], 5).suggestions] for e in engines]
        assert lists[0] == lists[1], article["id"]


def test_unreachable_scheduler_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", "")
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    status = main(["index", str(CORPUS), "--index", str(tmp_path / "index"), "--profile", "tfidf",
                   "--quiet", "--cluster", address])
    err = capsys.readouterr().err
    assert status == 1 and time.monotonic() - started < 15
    assert err.startswith(f"recommender: error: cannot reach the Dask scheduler at {address}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "index" / "current").exists()


class _ObjectBound(UseEncoder):
    """An encoder whose identity differs between the job's object and any copy: a worker with other versions."""

    def identity(self):
        return {**super().identity(), "object": id(self)}


def test_a_worker_with_another_encoder_version_fails_the_run():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as local, \
            Client(local, set_as_default=False) as client:
        batches = cluster.DaskExecutor(client).map(_ObjectBound(threads=1), [["Ein Text."], ["Noch einer."]])
        with pytest.raises(cluster.ClusterError, match="a worker's encoder differs from this job's"):
            list(batches)
