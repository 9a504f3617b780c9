"""Opening a newly published snapshot off the request path: one background thread at a time prepares it
(opens it, verifies every file's checksum, whatever else the caller needs) and hands the result over whole,
for the caller to swap in with one reference while its requests go on with the snapshot they have.

The threads are operating-system threads even in a gevent worker, where `threading` is patched into
greenlets: a greenlet verifying 4 GB would hold the worker's only thread for the whole second and stall every
request of that worker. Checksums are best computed `at_lowest_priority` (a second of CPU per worker at a
million articles, almost all of it without the GIL: on a busy machine the requests come first and the swap
waits); the rest at the worker's own priority, because a thread holding the GIL at the lowest priority (usearch
mapping a graph holds it for tens of milliseconds) keeps every request of its worker waiting while it waits
for a CPU.

The processes preparing one snapshot (the workers of a server) take turns (a lock on its directory): while
one worker holds its GIL opening the snapshot, the others take the new connections. What one of them
verified the others need not verify again (`vouched`): a loader made before the fork (in gunicorn's master)
shares that record with every worker forked from it.
"""
from __future__ import annotations

import _thread
import fcntl
import mmap
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

LOWEST_PRIORITY = 19  # nice value of the thread that computes checksums
LEDGER_BYTES = 4096  # room for the key of the snapshot verified last


@dataclass(frozen=True)
class Outcome:
    """How one background preparation ended: its result, or the exception that stopped it."""

    target: Path
    result: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


def native(name: str) -> Any:
    """_thread's own function `name`, also in a process where gevent patched it to make greenlets."""
    monkey = sys.modules.get("gevent.monkey")  # never imported here: only a process that uses gevent has it
    return monkey.get_original("_thread", name) if monkey is not None else getattr(_thread, name)


def lowest_priority() -> None:
    """Make the calling thread the last to get a CPU (on Linux the nice value and the policy are per thread);
    best effort."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, LOWEST_PRIORITY)
    except (AttributeError, OSError):  # not Linux, or a sandbox that refuses: it only runs sooner elsewhere
        pass
    try:
        # Nice 19 still shares a CPU with the requests (1.4 % of it against nice 0 here, far more against a
        # server started at a nice value of its own) and runs out its time slice before a woken request gets the
        # CPU. SCHED_IDLE runs only when nothing else wants the CPU, a woken request takes it at once, and the
        # kernel counts such a CPU as free when it places a woken worker: the swap's p99 over steady went from a
        # median of 2.05 to 1.37 in alternated rounds (bench/swap_stall.py). Any thread may lower itself to it;
        # with a weight of 3 against nice 0's 1024 it still progresses, slowly, on a saturated machine.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def drop_in_background(objects: list[Any]) -> None:
    """Drop the references objects holds in a thread of its own, emptying the list: a served snapshot's last
    reference unmaps gigabytes of files (32 ms at 1,000,000 articles), which a request should not wait for.
    The caller must hold no other reference to them."""
    native("start_new_thread")(objects.clear, ())


def at_lowest_priority(function: Callable[[], Any]) -> Any:
    """function() in a thread of its own at the lowest CPU priority (a thread cannot raise its priority again),
    waited for without the GIL; its result, or its exception raised here."""
    done, outcome = native("allocate_lock")(), {}
    done.acquire()

    def run() -> None:
        try:
            lowest_priority()
            outcome["result"] = function()
        except BaseException as exc:  # raised again in the caller's thread
            outcome["error"] = exc
        finally:
            done.release()

    native("start_new_thread")(run, ())
    done.acquire()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@contextmanager
def taking_turns(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on directory while inside (flock: the kernel lets go if the process dies); a
    directory that cannot be opened is not locked, and whatever prepares it will say what is wrong."""
    try:
        handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits without the GIL
        yield
    finally:
        os.close(handle)  # and with it the lock


class BackgroundLoader:
    """Runs one preparation at a time in a background thread and keeps its outcome until it is taken.

    A daemon thread in effect (the process never waits for it on exit). After a fork the child starts afresh:
    threads do not survive fork, so a preparation the parent had running is not the child's.
    """

    def __init__(self) -> None:
        # Anonymous and shared: the same memory in every process forked from this one, never copied.
        self._ledger = mmap.mmap(-1, LEDGER_BYTES)
        self._start_afresh()

    def _start_afresh(self) -> None:
        self._pid = os.getpid()
        # Released by the loading thread itself, so a plain lock, and a real one even under gevent.
        self._idle = native("allocate_lock")()  # held while a preparation runs
        self._outcome: Outcome | None = None
        self.target: Path | None = None  # what is being (or was last) prepared

    def _here(self) -> None:
        if self._pid != os.getpid():
            self._start_afresh()

    def begin(self, target: Path, prepare: Callable[[], Any]) -> bool:
        """Start prepare() in the background (once no other process prepares target) unless a preparation
        runs here or its outcome is not taken yet; True if started."""
        self._here()
        if self._outcome is not None or not self._idle.acquire(False):
            return False
        self.target = target
        try:
            native("start_new_thread")(self._run, (target, prepare))
        except BaseException:
            self._idle.release()
            raise
        return True

    def _run(self, target: Path, prepare: Callable[[], Any]) -> None:
        started, result, error = time.monotonic(), None, None
        try:
            with taking_turns(target):
                result = prepare()
        except BaseException as exc:  # handed over to be logged where requests run; a thread must not die mute
            error = exc
        finally:
            self._outcome = Outcome(target, result, error, time.monotonic() - started)
            self._idle.release()

    def vouch(self, key: str) -> None:
        """Record that what key names was verified (by whoever holds its turn, see `taking_turns`)."""
        data = key.encode() + b"\0"
        if len(data) <= LEDGER_BYTES:
            self._ledger[: len(data)] = data

    def vouched(self, key: str) -> bool:
        """Whether this process, or one forked from the same one as it, vouched for key last."""
        data = key.encode() + b"\0"
        return len(data) <= LEDGER_BYTES and self._ledger[: len(data)] == data

    @property
    def running(self) -> bool:
        """Whether a preparation is running now."""
        self._here()
        return self._idle.locked()

    @property
    def done(self) -> bool:
        """Whether an outcome waits to be taken (one attribute read: cheap enough for every request)."""
        return self._outcome is not None

    def take(self) -> Outcome | None:
        """The outcome of the finished preparation, once; None while one runs or if none is left. Callers
        that take from several threads hold a lock around it."""
        outcome, self._outcome = self._outcome, None
        return outcome

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no preparation runs, at most timeout seconds (None: as long as it takes); True if none
        runs. Blocks the whole thread, also under gevent: for tests and commands, never for a request."""
        self._here()
        if not self._idle.acquire(True, -1 if timeout is None else max(timeout, 0.0)):
            return False
        self._idle.release()
        return True
