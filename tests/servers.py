"""`recommender serve` as a real process for tests: started on a port it picks itself, stopped and checked.

Every test that needs the real server uses this one class, so none of them races for a free port (the
server binds port 0 and announces the port it got) or waits on a fixed sleep.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from recommender.serve.embedder import PROCESS_NAME

# Start-up is about two seconds; the deadline is for a machine whose other core is busy with a test suite.
START_DEADLINE = 120.0
# What a stop may take before the test fails: the graceful period of a running request plus exit.
STOP_DEADLINE = 30.0
SERVING = re.compile(r"with (\d+) workers on (http://\S+)")
EMBEDDER_NAME = PROCESS_NAME.decode()


def _name_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:  # ended meanwhile
        return ""


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class ServerProcess:
    """`python -m recommender serve --port 0` in its own process group, output in a log file."""

    def __init__(self, index_dir: Path | str, log: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), preexec_fn: Callable[[], None] | None = None) -> None:
        self.log = Path(log)
        self.env = {**os.environ, **(env or {})}
        with open(self.log, "w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "recommender", "serve", "--index", str(index_dir), "--port", "0", *args],
                stdout=output, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
                preexec_fn=preexec_fn)
        self.base = ""

    @property
    def pid(self) -> int:
        """The gunicorn master's pid (also the process group's id)."""
        return self.process.pid

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log.read_text(errors="replace")

    def wait_announced(self, deadline: float = START_DEADLINE) -> str:
        """Wait until the server printed where it serves (it listens from then on); returns the base URL."""
        until = time.monotonic() + deadline
        while not self.base:
            found = SERVING.search(self.output())
            if found:
                self.base = found.group(2)
                break
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > until:
                self.kill()
                raise AssertionError(f"the server did not announce itself in {deadline:.0f} s:\n{self.output()}")
            time.sleep(0.05)
        return self.base

    def wait_ready(self, workers: int = 2, deadline: float = START_DEADLINE) -> str:
        """Wait until /readyz answers 200 and all workers are up; returns the base URL."""
        until = time.monotonic() + deadline
        self.wait_announced(deadline)
        while not (len(self.workers()) >= workers and self._ready()):
            if self.process.poll() is not None or time.monotonic() > until:
                self.kill()
                raise AssertionError(f"the server did not become ready:\n{self.output()}")
            time.sleep(0.05)
        return self.base

    def _ready(self) -> bool:
        try:
            return get(self.base + "/readyz", timeout=5)[0] == 200
        except OSError:
            return False

    def children(self) -> list[int]:
        """The pids of the master's children: its workers and the embedding process."""
        found = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in found.split()]

    def workers(self) -> list[int]:
        """The worker pids (the master's children but the embedding process)."""
        return [pid for pid in self.children() if _name_of(pid) != EMBEDDER_NAME]

    def embedder(self) -> int | None:
        """The pid of the embedding process of PUT articles, None while there is none."""
        return next((pid for pid in self.children() if _name_of(pid) == EMBEDDER_NAME), None)

    def stop(self, sig: int = signal.SIGTERM, group: bool = True, deadline: float = STOP_DEADLINE) -> float:
        """Send sig (to the process group or the master alone) and wait for the exit; returns the seconds.

        Raises AssertionError (after killing everything) when the server outlives the deadline.
        """
        if self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        try:
            os.killpg(self.pid, sig) if group else os.kill(self.pid, sig)
            self.process.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the server did not stop within {deadline:.0f} s of signal {sig}:\n"
                                 f"{self.output()}") from None
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers) and reap the master."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def group_alive(self) -> bool:
        """Whether any process of the server's group is still alive."""
        return subprocess.run(["pgrep", "-g", str(self.pid)], capture_output=True).returncode == 0

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self.process.poll() is None or self.group_alive():
                self.kill()


def tiny_tfidf_index(folder: Path, count: int = 4, env: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """A tfidf index of count short articles in folder, and the environment a server over it needs (its state
    in folder/state, plus env): (index_dir, env)."""
    from conftest import record, write_jsonl

    from recommender.config import load_settings
    from recommender.jobs.index_job import build_index

    corpus = write_jsonl(folder / "c.jsonl", [record(f"a{i}", body=f"Text {i} über die Donau und Passau.")
                                              for i in range(count)])
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(folder / "index"), cache_dir="")
    build_index([corpus], settings.index_dir, settings)
    return settings.index_dir, {"RECOMMENDER_PROFILE": "tfidf", "RECOMMENDER_CACHE_DIR": "",
                                "RECOMMENDER_STATE_DIR": str(folder / "state"), **(env or {})}
