"""The background loader: one preparation at a time, in a real thread (also under gevent), taking turns with
other processes on the same snapshot, its outcome (result or exception) taken once, nothing of a parent's
load left after a fork; and work at the lowest CPU priority in a thread of its own."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO

from recommender.index.loader import (
    LOWEST_PRIORITY,
    BackgroundLoader,
    at_lowest_priority,
)

WAIT = 30.0  # seconds; only reached when a test fails


def test_one_preparation_at_a_time_and_its_result_taken_once():
    loader, release, calls = BackgroundLoader(), threading.Event(), []

    def prepare() -> str:
        calls.append(threading.get_ident())
        assert release.wait(WAIT)
        return "ready"

    assert loader.begin(Path("a"), prepare)
    assert loader.running and not loader.done and not loader.wait(timeout=0)
    assert not loader.begin(Path("b"), prepare)  # one at a time
    release.set()
    assert loader.wait(WAIT) and loader.done and not loader.running
    assert not loader.begin(Path("b"), prepare)  # not before the outcome is taken
    outcome = loader.take()
    assert outcome.target == Path("a") and outcome.result == "ready" and outcome.error is None
    assert outcome.seconds >= 0 and loader.take() is None
    assert calls == [calls[0]] and calls[0] != threading.get_ident()  # in a thread of its own


def test_an_exception_is_handed_over_not_lost():
    loader = BackgroundLoader()

    def broken() -> None:
        raise ValueError("checksum")

    assert loader.begin(Path("a"), broken) and loader.wait(WAIT)
    outcome = loader.take()
    assert isinstance(outcome.error, ValueError) and outcome.result is None
    assert loader.begin(Path("b"), lambda: 1) and loader.wait(WAIT) and loader.take().result == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_at_lowest_priority_runs_in_a_thread_of_its_own_and_leaves_the_callers_priority():
    before = os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0)
    inside = at_lowest_priority(lambda: (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0),
                                         threading.get_ident()))
    # SCHED_IDLE: runs only when no other thread wants the CPU; nice 19 where a policy cannot be set
    assert inside[:2] == (LOWEST_PRIORITY, os.SCHED_IDLE) and inside[2] != threading.get_ident()
    assert (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0)) == before

    def broken() -> None:
        raise ValueError("checksum")

    with pytest.raises(ValueError, match="checksum"):
        at_lowest_priority(broken)


def test_two_loaders_of_one_snapshot_take_turns(tmp_path):
    """What the workers of a server do: while one prepares a snapshot, the others wait for the lock on it."""
    first, second, order = BackgroundLoader(), BackgroundLoader(), []
    inside, release = threading.Event(), threading.Event()

    def held() -> None:
        order.append("first starts")
        inside.set()
        assert release.wait(WAIT)
        order.append("first ends")

    assert first.begin(tmp_path, held)
    probe = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert inside.wait(WAIT)
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the directory is locked meanwhile
        assert second.begin(tmp_path, lambda: order.append("second starts"))
        assert order == ["first starts"] and second.running
        release.set()
        assert first.wait(WAIT) and second.wait(WAIT)
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and free afterwards
    finally:
        os.close(probe)
    assert order == ["first starts", "first ends", "second starts"]
    assert second.take().error is None and first.take().error is None


def test_a_missing_directory_is_prepared_unlocked_and_the_preparation_says_why(tmp_path):
    loader = BackgroundLoader()

    def prepare() -> None:
        raise FileNotFoundError(tmp_path / "gone")

    assert loader.begin(tmp_path / "gone", prepare) and loader.wait(WAIT)
    assert isinstance(loader.take().error, FileNotFoundError)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_inherit_the_parents_running_load():
    loader, release = BackgroundLoader(), threading.Event()
    assert loader.begin(Path("a"), lambda: release.wait(WAIT))
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here, so nothing runs and a new load may start
        ok = not loader.running and loader.begin(Path("b"), lambda: 2) and loader.wait(WAIT)
        os._exit(0 if ok and loader.take().result == 2 else 1)
    _, status = os.waitpid(pid, 0)
    release.set()
    assert os.waitstatus_to_exitcode(status) == 0
    assert loader.wait(WAIT) and loader.take().target == Path("a")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_what_one_process_vouched_for_the_processes_forked_beside_it_see():
    loader = BackgroundLoader()
    assert not loader.vouched("snapshot-a:1234")
    pid = os.fork()
    if pid == 0:  # a worker that verified snapshot a
        loader.vouch("snapshot-a:1234")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert loader.vouched("snapshot-a:1234")  # the master and every worker forked from it see it
    assert not loader.vouched("snapshot-a:9999") and not loader.vouched("snapshot-a")  # only that one
    loader.vouch("snapshot-b:1")
    assert not loader.vouched("snapshot-a:1234") and loader.vouched("snapshot-b:1")  # the last one only
    loader.vouch("x" * 5000)  # no room: not vouched, nothing else spoilt
    assert not loader.vouched("x" * 5000) and loader.vouched("snapshot-b:1")
    assert not BackgroundLoader().vouched("snapshot-b:1")  # another loader (another server) keeps its own


GEVENT_CHILD = """
from gevent import monkey; monkey.patch_all()
import _thread, gevent
from pathlib import Path
from recommender.index.loader import BackgroundLoader

held = monkey.get_original("_thread", "allocate_lock")()
held.acquire()
# A greenlet that blocks on a real lock stops its whole thread: only a real thread gets past this while the
# main greenlet goes on to release it.
loader = BackgroundLoader()
loader.begin(Path("a"), lambda: "native" if held.acquire(True, 5) else "stalled the worker")
gevent.sleep(0.01)  # what a worker does between requests: let other greenlets run
held.release()
assert loader.wait(10)
print(loader.take().result)
"""


def test_under_gevent_the_load_runs_in_a_real_thread_not_a_greenlet():
    pytest.importorskip("gevent")
    done = subprocess.run([sys.executable, "-c", GEVENT_CHILD], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "native"
