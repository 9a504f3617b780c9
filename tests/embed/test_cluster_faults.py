"""Cluster faults during `recommender index --cluster`: each ends the job in bounded time with one line.

A real Dask scheduler and workers run as processes on loopback. The workers load tests/embed/cluster_gate.py,
which holds batches from the third on at a gate: the fault is injected while the job is certainly in the
middle of embedding (two batches returned and cached, the others held), never by a racing sleep. Each case
checks the time to fail, exactly one error line and no traceback, the exit code, that `current` still
names the same snapshot, and (where it costs little) that a rerun completes from the embedding cache.

    .venv/bin/python -m pytest -q tests/embed/test_cluster_faults.py -m "cluster_faults"        # all of them
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import CORPUS, REPO
from test_cluster import BIN, free_port, wait_for, workers_of

from recommender.embed import cluster as cluster_module
from recommender.embed.encoders import make_dense_encoder

pytestmark = pytest.mark.cluster_faults

ARTICLES = 40  # the job's corpus; the published index holds the first 8 of them
BATCH = 4
GATE_PRELOAD = Path(__file__).with_name("cluster_gate.py")
STALL = 15  # cluster_stall_timeout of the cases that end at it; a batch of warm workers takes well under 1 s
DEADLINE = 120  # seconds any job or condition may take before a test fails: generous for a loaded machine


class LoopbackCluster:
    """A scheduler and workers as processes on 127.0.0.1, each in its own process group (a worker's nanny
    and its worker process die together); close() kills every one of them."""

    def __init__(self, tmp_path: Path, gate: Path, scheduler_env: dict[str, str] | None = None) -> None:
        self.tmp_path, self.gate = tmp_path, gate
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "RECOMMENDER_THREADS": "1", "CLUSTER_FAULTS_GATE": str(gate)}
        self.workers: list[subprocess.Popen] = []
        self.scheduler: subprocess.Popen | None = None
        self.scheduler_env = scheduler_env or {}
        self.address = ""

    def _spawn(self, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=self.tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    def start(self, workers: int = 2) -> "LoopbackCluster":
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.scheduler = self._spawn([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                      "--no-dashboard"], {**self.env, **self.scheduler_env})
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, DEADLINE, "scheduler start")
        self.add_workers(workers)
        return self

    def add_workers(self, n: int) -> None:
        for _ in range(n):
            self.workers.append(self._spawn(
                [str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                 "--host", "127.0.0.1", "--local-directory", str(self.tmp_path / f"worker-{len(self.workers)}"),
                 "--preload", str(GATE_PRELOAD)], self.env))
        alive = sum(1 for w in self.workers if w.poll() is None)
        wait_for(lambda: workers_of(self.address) == alive, DEADLINE, f"{alive} workers joining")
        self.warm_up()

    def warm_up(self) -> None:
        """Load the job's encoder on every worker now: a short stall timeout must time the fault, not a
        model loading on a busy machine."""
        from distributed import Client

        recipe = cluster_module._unloaded(make_dense_encoder("use", threads=1))  # the job's (RECOMMENDER_THREADS=1)
        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.run(cluster_module.encode_batch, recipe, -1, ["Ein Text zum Aufwärmen."])

    def kill_scheduler(self) -> None:
        _kill_group(self.scheduler)

    def kill_workers(self) -> None:
        for worker in self.workers:
            _kill_group(worker)

    def worker_of_pid(self, pid: int) -> subprocess.Popen:
        """The worker (nanny) process whose group holds pid."""
        group = os.getpgid(pid)
        return next(w for w in self.workers if w.pid == group)

    def close(self) -> None:
        for process in [self.scheduler, *self.workers]:
            _kill_group(process)


def _kill_group(process: subprocess.Popen | None) -> None:
    # SIGKILL, not a graceful close: it also ends a stopped (SIGSTOP) process, and nothing needs saving.
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class Job:
    """`recommender index` of the test corpus as a process, in its own group, stderr collected."""

    def __init__(self, setup: "Setup", cluster: str, *extra: str, stall_timeout: float = 600) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "RECOMMENDER_THREADS": "1", "RECOMMENDER_BATCH_SIZE": str(BATCH),
               "RECOMMENDER_STATE_DIR": "", "RECOMMENDER_CACHE_DIR": str(setup.cache),
               "RECOMMENDER_CLUSTER_STALL_TIMEOUT": str(stall_timeout)}
        command = [sys.executable, "-m", "recommender", "index", str(setup.corpus), "--index", str(setup.index),
                   "--profile", "use", *(["--cluster", cluster] if cluster else []), *extra]
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)

    def finish(self) -> tuple[int, str, float]:
        """(exit status, stderr, seconds since the start); kills the job if it outlives DEADLINE."""
        try:
            _, err = self.process.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            _kill_group(self.process)
            pytest.fail(f"the job did not end within {DEADLINE}s")
        return self.process.returncode, err, time.monotonic() - self.started

    def kill(self) -> None:
        if self.process.poll() is None:
            _kill_group(self.process)


class Setup:
    """A test's folders: the corpus, a published index of its first 8 articles, their cached vectors, the gate."""

    def __init__(self, tmp_path: Path, template: Path) -> None:
        self.tmp_path = tmp_path
        self.corpus = tmp_path / "corpus.jsonl"
        shutil.copy(template / "corpus.jsonl", self.corpus)
        shutil.copytree(template / "index", tmp_path / "index", symlinks=True)
        shutil.copytree(template / "cache", tmp_path / "cache")
        self.index, self.cache = tmp_path / "index", tmp_path / "cache"
        self.gate = tmp_path / "gate"
        self.gate.mkdir()
        self.published = self.current()
        self.snapshots = self.snapshot_names()

    def current(self) -> str:
        return os.readlink(self.index / "current")

    def snapshot_names(self) -> list[str]:
        return sorted(p.name for p in (self.index / "snapshots").iterdir())

    def cached(self) -> int:
        """Vectors in the embedding cache (0 while the job has not created it)."""
        try:
            with sqlite3.connect(self.cache / "embeddings.sqlite", timeout=30) as db:
                return db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    def embedded_texts(self) -> int:
        """Texts the workers have embedded so far (tests/embed/cluster_gate.py logs each batch)."""
        log = self.gate / "embedded.log"
        return sum(int(line) for line in log.read_text().split()) if log.exists() else 0

    def held(self) -> list[tuple[int, int]]:
        """(worker pid, batch number) of the batches waiting at the gate."""
        return [tuple(int(x) for x in p.name.split("-")[1:]) for p in self.gate.glob("held-*")]

    def open_gate(self) -> None:
        (self.gate / "open").touch()

    def wait_mid_job(self, job: Job, workers: int = 2) -> None:
        """Until two batches are cached and each of `workers` workers holds a batch at the gate."""
        def ready() -> bool:
            if job.process.poll() is not None:
                raise AssertionError(f"the job ended early: {job.process.communicate()[1]}")
            return self.cached() >= 8 + 2 * BATCH and len({pid for pid, _ in self.held()}) >= workers

        wait_for(ready, DEADLINE, "the job's mid-embedding state")

    def assert_untouched(self) -> None:
        assert self.current() == self.published and self.snapshot_names() == self.snapshots

    def assert_resumes(self, cluster: str) -> None:
        """A rerun completes and embeds only what the cache does not hold."""
        self.open_gate()
        cached, embedded = self.cached(), self.embedded_texts()
        status, err, _ = Job(self, cluster, "--quiet").finish()
        assert status == 0, err
        assert self.current() != self.published
        assert self.cached() == ARTICLES and self.embedded_texts() - embedded == ARTICLES - cached < ARTICLES - 8


def one_error_line(err: str) -> str:
    """The job's only error line (plain mode); fails on a traceback or any other error output."""
    lines = err.splitlines()
    assert "Traceback" not in err and all(line.startswith("recommender: ") for line in lines), err  # no Dask noise
    errors = [line for line in lines if line.startswith("recommender: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err  # nothing after it, shutdown included
    return errors[0]


def one_error_event(err: str) -> tuple[dict, float]:
    """The job's only error event (--log-json) and the seconds from its start event to it; fails on a line
    that is not JSON (a traceback, Dask's noise) or on any other error."""
    events = [json.loads(line) for line in err.splitlines()]
    errors = [e for e in events if e["level"] == "error"]
    assert len(errors) == 1 and events[-1] is errors[0] and errors[0]["event"] == "error", err
    start = datetime.fromisoformat(events[0]["ts"]) if events[0]["event"] == "start" else None
    assert start is not None, err
    return errors[0], (datetime.fromisoformat(errors[0]["ts"]) - start).total_seconds()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A corpus of ARTICLES, and an index of its first 8 published with their vectors cached (made once)."""
    root = tmp_path_factory.mktemp("cluster-faults")
    lines = (CORPUS / "articles.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:ARTICLES]
    (root / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    (root / "first.jsonl").write_text("".join(lines[:8]), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECOMMENDER_THREADS": "1", "RECOMMENDER_STATE_DIR": "",
           "RECOMMENDER_CACHE_DIR": str(root / "cache")}
    subprocess.run([sys.executable, "-m", "recommender", "index", str(root / "first.jsonl"), "--index",
                    str(root / "index"), "--profile", "use", "--quiet"], env=env, check=True, timeout=DEADLINE,
                   stdout=subprocess.DEVNULL)
    return root


@pytest.fixture
def setup(tmp_path, template):
    return Setup(tmp_path, template)


@pytest.fixture
def cluster_factory(tmp_path, setup):
    """Starts LoopbackClusters for a test and kills all their processes afterwards."""
    started: list[LoopbackCluster] = []

    def start(workers: int = 2, **scheduler_env: str) -> LoopbackCluster:
        cluster = LoopbackCluster(tmp_path / f"cluster-{len(started)}", setup.gate, scheduler_env)
        cluster.tmp_path.mkdir()
        started.append(cluster)
        return cluster.start(workers)

    yield start
    for cluster in started:
        cluster.close()


@pytest.fixture
def jobs():
    """Jobs started by a test; any still running at the end is killed."""
    started: list[Job] = []
    yield started
    for job in started:
        job.kill()


# --- the address and the setting, without processes -----------------------------------------------------

@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tls://scheduler.example:8786", "127.0.0.1:8786",
                                     "tcp://[::1]:8786"])
def test_scheduler_addresses_are_accepted(address):
    assert cluster_module.check_address(address) == address


@pytest.mark.parametrize("address", ["http://127.0.0.1:8787/status", "https://h:1", "tcp://h", "tcp://h:99999",
                                     "tcp://:8786", "inproc://h:1", "tcp://h:1/path", ""])
def test_other_addresses_are_refused_with_the_expected_form(address):
    with pytest.raises(cluster_module.ClusterAddressError, match="expected tcp://HOST:PORT"):
        cluster_module.check_address(address)


def test_the_stall_timeout_must_be_positive():
    from recommender.config import ConfigError, load_settings

    assert load_settings(environ={"RECOMMENDER_CLUSTER_STALL_TIMEOUT": "2.5"}).cluster_stall_timeout == 2.5
    with pytest.raises(ConfigError, match="cluster_stall_timeout"):
        load_settings(environ={"RECOMMENDER_CLUSTER_STALL_TIMEOUT": "0"})


# --- faults at connect time -------------------------------------------------------------------------------

@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


class _Http400(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(1)
        self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def http_port():
    """An HTTP server that answers any request with 400, as a dashboard or a web server does to Dask's bytes."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Http400)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_silent_socket_fails_within_the_connect_timeout(setup, silent_port, jobs):
    jobs.append(job := Job(setup, f"tcp://127.0.0.1:{silent_port}", "--log-json"))
    status, err, seconds = job.finish()
    error, connecting = one_error_event(err)
    print(f"silent socket: rc {status} {connecting:.1f}s after the start event ({seconds:.1f}s in all): {error}")
    assert status == 1 and error["exit_code"] == 1 and 9 <= connecting < 10 + 5  # the README's 10 s
    assert "does not answer like a Dask scheduler" in error["message"]
    setup.assert_untouched()


def test_an_http_server_is_not_taken_for_a_scheduler(setup, http_port, jobs):
    jobs.append(job := Job(setup, f"tcp://127.0.0.1:{http_port}", "--log-json"))
    status, err, seconds = job.finish()
    error, connecting = one_error_event(err)
    print(f"HTTP server: rc {status} {connecting:.1f}s after the start event ({seconds:.1f}s in all): {error}")
    assert status == 1 and connecting < 10 + 5 and "answers in another protocol" in error["message"]
    assert "EiB" not in err
    setup.assert_untouched()


@pytest.mark.parametrize("address", ["http://127.0.0.1:8787", "tcp://scheduler", "ucx://127.0.0.1:8786"])
def test_an_address_of_another_kind_is_a_usage_error(setup, address, capsys, monkeypatch):
    from recommender.cli import main

    # In this process: nothing of Dask's runs before the address is refused, so there is no noise to look for.
    monkeypatch.setenv("RECOMMENDER_STATE_DIR", "")
    monkeypatch.setenv("RECOMMENDER_CACHE_DIR", str(setup.cache))
    with pytest.raises(SystemExit) as exit_:
        main(["index", str(setup.corpus), "--index", str(setup.index), "--profile", "use", "--cluster", address])
    line = one_error_line(capsys.readouterr().err)
    print(f"{address}: rc {exit_.value.code}: {line}")
    assert exit_.value.code == 2 and "expected tcp://HOST:PORT" in line
    setup.assert_untouched()


# --- faults in the middle of embedding --------------------------------------------------------------------

@pytest.mark.slow
def test_the_scheduler_killed_mid_job_is_one_error_event(setup, cluster_factory, jobs):
    cluster = cluster_factory()
    jobs.append(job := Job(setup, cluster.address, "--log-json"))
    setup.wait_mid_job(job)
    killed = time.monotonic()
    cluster.kill_scheduler()
    status, err, _ = job.finish()
    seconds = time.monotonic() - killed
    error, _ = one_error_event(err)
    print(f"scheduler killed: rc {status} {seconds:.1f}s after the kill: {error}")
    assert status == 1 and seconds < 30 and error["exit_code"] == 1
    assert "lost the Dask scheduler" in error["message"]
    setup.assert_untouched()
    cluster.kill_workers()  # orphans now; released at the gate they would embed for nobody, and log it
    setup.assert_resumes(cluster_factory().address)


@pytest.mark.slow
def test_all_workers_killed_mid_job_end_at_the_stall_timeout(setup, cluster_factory, jobs):
    cluster = cluster_factory()
    jobs.append(job := Job(setup, cluster.address, stall_timeout=STALL))
    setup.wait_mid_job(job)
    killed = time.monotonic()
    cluster.kill_workers()
    status, err, _ = job.finish()
    seconds = time.monotonic() - killed
    line = one_error_line(err)
    print(f"all workers killed: rc {status} {seconds:.1f}s after the kill: {line}")
    assert status == 1 and STALL <= seconds < STALL + 30
    assert "no batch finished" in line and "recommender: waiting for workers" in err
    setup.assert_untouched()
    cluster.add_workers(2)
    setup.assert_resumes(cluster.address)


@pytest.mark.slow
def test_a_frozen_worker_ends_the_job_at_the_stall_timeout(setup, cluster_factory, jobs):
    cluster = cluster_factory()  # the scheduler's worker-ttl is its default, 5 minutes
    jobs.append(job := Job(setup, cluster.address, stall_timeout=STALL))
    setup.wait_mid_job(job)
    pid, _ = setup.held()[0]
    os.kill(pid, signal.SIGSTOP)
    frozen = time.monotonic()
    setup.open_gate()  # the other worker finishes every batch but the frozen one's
    status, err, _ = job.finish()
    seconds = time.monotonic() - frozen
    line = one_error_line(err)
    print(f"one worker frozen: rc {status} {seconds:.1f}s after the freeze: {line}")
    assert status == 1 and STALL <= seconds < STALL + 30 and "no batch finished" in line
    assert "recommender: waiting for workers" in err
    setup.assert_untouched()
    _kill_group(cluster.worker_of_pid(pid))
    setup.assert_resumes(cluster.address)


@pytest.mark.slow
def test_a_frozen_worker_s_batches_are_retried_on_another(setup, cluster_factory, jobs):
    # A scheduler that drops a worker after 5 s without a heartbeat hands its batches to the others.
    cluster = cluster_factory(DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL="5s")
    jobs.append(job := Job(setup, cluster.address, "--quiet", stall_timeout=60))
    setup.wait_mid_job(job)
    pid, _ = setup.held()[0]
    os.kill(pid, signal.SIGSTOP)
    frozen = time.monotonic()
    setup.open_gate()
    status, err, _ = job.finish()
    seconds = time.monotonic() - frozen
    print(f"one worker frozen, worker-ttl 5s: rc {status} {seconds:.1f}s after the freeze")
    assert status == 0 and "error" not in err.lower(), err
    assert setup.current() != setup.published and setup.cached() == ARTICLES


@pytest.mark.slow
def test_a_worker_s_address_is_not_taken_for_the_scheduler_s(setup, cluster_factory, jobs):
    from distributed import Client

    cluster = cluster_factory(workers=1)
    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        worker = next(iter(client.scheduler_info()["workers"]))
    jobs.append(job := Job(setup, worker))
    status, err, seconds = job.finish()
    line = one_error_line(err)
    print(f"a worker's address: rc {status} after {seconds:.1f}s: {line}")
    assert status == 1 and "is not a Dask scheduler (it says it is a Worker)" in line
    setup.assert_untouched()
