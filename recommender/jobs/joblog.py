"""How a job reports on stderr: a progress bar on a terminal, periodic log lines elsewhere, JSON lines for
schedulers, or nothing but errors and the summary (quiet).

Jobs call event(); the command line picks the mode with configured(). Everything goes through the
stdlib logger "recommender.job", so an embedding application can attach handlers of its own instead.
"""
from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any, Iterator

from ..progress import (
    LOGGER,
    PROGRESS_INTERVAL,
    Progress,
    log_progress,
    no_progress,
)

MODES = ("bar", "plain", "quiet", "json")


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


