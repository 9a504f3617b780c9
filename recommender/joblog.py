"""How a job reports on stderr: a progress bar on a terminal, periodic log lines elsewhere, JSON lines for
schedulers, or nothing but errors and the summary (quiet).

Jobs call event(); the command line picks the mode with configured(). Everything goes through the
stdlib logger "recommender.job", so an embedding application can attach handlers of its own instead.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any, Callable, Iterator

from .signals import Progress, no_progress

LOGGER = logging.getLogger("recommender.job")
MODES = ("bar", "plain", "quiet", "json")
# Between two plain/JSON progress lines: often enough to see a job move, rarely enough for a log file.
PROGRESS_INTERVAL = 10.0


def event(name: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one job event (start, progress, stage_done, summary, error, ...) with machine-readable fields."""
    LOGGER.log(level, message, extra={"event": name, "fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, event, message and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        payload = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        return json.dumps(payload, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """`recommender: message`, with `error: ` before errors, like the command line's other messages."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one readable line."""
        prefix = "error: " if record.levelno >= logging.ERROR else ""
        return f"recommender: {prefix}{record.getMessage()}"


def _quiet_filter(record: logging.LogRecord) -> bool:
    # Quiet still says what went wrong and how the run ended: a scheduler needs both.
    return record.levelno >= logging.WARNING or getattr(record, "event", "") == "summary"


def choose_mode(quiet: bool = False, log_json: bool = False, stream: IO[str] | None = None) -> str:
    """json if asked, else quiet if asked, else a bar on a terminal and plain log lines elsewhere."""
    if log_json:
        return "json"
    if quiet:
        return "quiet"
    stream = stream or sys.stderr
    return "bar" if hasattr(stream, "isatty") and stream.isatty() else "plain"


@contextmanager
def configured(mode: str, stream: IO[str] | None = None) -> Iterator[None]:
    """Send job events to stream (stderr by default) in the given mode while the block runs."""
    if mode not in MODES:
        raise ValueError(f"unknown log mode {mode!r} (known: {', '.join(MODES)})")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if mode == "json" else PlainFormatter())
    if mode == "quiet":
        handler.addFilter(_quiet_filter)
    saved = LOGGER.level, LOGGER.propagate
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False  # our lines only, not twice through the root logger
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(saved[0])
        LOGGER.propagate = saved[1]


def progress_for(mode: str, interval: float = PROGRESS_INTERVAL) -> Progress:
    """The progress factory of a mode: a tqdm bar, log lines every interval seconds, or nothing."""
    if mode == "bar":
        return bar_progress()
    if mode == "quiet":
        return no_progress
    return log_progress(interval)


def bar_progress(disable: bool = False) -> Progress:
    """A tqdm bar on stderr per stage (articles/s, ETA)."""
    from tqdm import tqdm

    @contextmanager
    def progress(description: str, total: int) -> Iterator[Any]:
        with tqdm(total=total, desc=description, unit=" articles", disable=disable, file=sys.stderr,
                  mininterval=1.0, dynamic_ncols=True) as bar:
            yield bar

    return progress


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
