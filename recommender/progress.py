"""Progress and event reporting shared by every layer: a progress factory type, job events on the
"recommender.job" logger, and periodic progress lines. The bottom of the package: it imports the stdlib only,
so the index writer and the cluster code report without reaching up into the job layer.

How the events are shown (a bar, plain lines, JSON lines, quiet) is chosen by `jobs.joblog`.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator

LOGGER = logging.getLogger("recommender.job")
# Between two plain/JSON progress lines: often enough to see a job move, rarely enough for a log file.
PROGRESS_INTERVAL = 10.0

# A progress factory: (description, total) -> a context manager whose object has update(n).
Progress = Callable[[str, int], ContextManager[Any]]


class _Silent:
    def update(self, n: int = 1) -> None:
        """Ignore progress."""


def no_progress(description: str, total: int) -> ContextManager[Any]:
    """Progress that shows nothing."""
    return nullcontext(_Silent())


def event(name: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one job event (start, progress, stage_done, summary, error, ...) with machine-readable fields."""
    LOGGER.log(level, message, extra={"event": name, "fields": fields})


class _LogLines:
    """Counts progress and logs a `progress` event at most every interval seconds, and one at the end."""

    def __init__(self, description: str, total: int, interval: float, clock: Callable[[], float]) -> None:
        self.description, self.total, self.interval, self.clock = description, total, interval, clock
        self.done = 0
        self.start = self.last = clock()

    def update(self, n: int = 1) -> None:
        """Add n finished articles; log if the interval has passed."""
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval and self.done < self.total:
            self.last = now
            self.report(now)

    def report(self, now: float) -> None:
        """Log where the stage stands: done/total, rate and the time left."""
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else None
        tail = f"ETA {format_duration(left)}" if self.done < self.total else f"took {format_duration(elapsed)}"
        event("progress", f"{self.description}: {self.done}/{self.total} articles, {rate:.1f} articles/s, {tail}",
              stage=self.description, done=self.done, total=self.total, rate=round(rate, 2),
              eta_s=None if left is None else round(left, 1))


def log_progress(interval: float = PROGRESS_INTERVAL, clock: Callable[[], float] = time.monotonic) -> Progress:
    """Progress as `progress` log events: every interval seconds while a stage runs, and when it ends."""

    @contextmanager
    def progress(description: str, total: int) -> Iterator[_LogLines]:
        lines = _LogLines(description, total, interval, clock)
        yield lines
        lines.report(clock())  # only reached when the stage finished; a failure is reported as an error

    return progress


def format_duration(seconds: float | None) -> str:
    """A short human duration: 45s, 20m, 3h05m; ? when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"
