"""Named stage timings of a job: `with stage("embed"): ...` records how long each step took.

A job opens a StageClock; code anywhere below it (the index writer too) may time a step of its own with
`stage(name)` without being handed the clock. Nested stages are timed exclusively: the time of an inner
stage is taken out of the outer one, so the stages of a run add up to its duration.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

_current: ContextVar["StageClock | None"] = ContextVar("recommender_stage_clock", default=None)


class StageClock:
    """Seconds spent per named stage, in the order the stages first ran; on_done(name, seconds) after each."""

    def __init__(self, on_done: Callable[[str, float], None] | None = None) -> None:
        self.on_done = on_done
        self.seconds: dict[str, float] = {}
        self._stack: list[list[float]] = []  # per open stage: [start, seconds spent in inner stages]

    @contextmanager
    def running(self) -> Iterator["StageClock"]:
        """Make this the clock that module-level stage() records into, for the duration of the block."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage name (added up when a stage runs more than once)."""
        self._stack.append([time.perf_counter(), 0.0])
        try:
            yield
        finally:
            start, inner = self._stack.pop()
            elapsed = time.perf_counter() - start
            if self._stack:
                self._stack[-1][1] += elapsed
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - inner
        # Only a stage that finished is announced; a failure is reported once, by whoever handles it.
        if self.on_done is not None:
            self.on_done(name, elapsed - inner)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as a stage of the running job's clock; does nothing outside a job."""
    clock = _current.get()
    if clock is None:
        yield
        return
    with clock.stage(name):
        yield
