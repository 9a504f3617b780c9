"""Reader events, stored durably as counts: impressions of a block and clicks on its items, per day, placement,
A/B arm, ranking profile and position. Counts only: no event row, no address, no cookie, nothing about a reader.

One SQLite file in the state folder (created and checked like the editors' file, db.py); a batch of events is one
transaction, so a failed one changed nothing. Unlike the editors' files, a commit does not wait for the disk
(WAL with synchronous=NORMAL): an acknowledged batch survives the process being killed (it is in the WAL, in the
operating system's hands), and only a power cut or kernel crash can lose the last moments of counts. A reader's
related links must not wait behind an fsync per impression: with FULL, each batch held its gevent worker for an
fsync (0.3 ms on an idle disk, 5 ms on a busy one).
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, NamedTuple

from ..db import connect_state, reading, write

SCHEMA = """
CREATE TABLE IF NOT EXISTS counts (
    day TEXT NOT NULL,                 -- UTC date the events arrived
    placement TEXT NOT NULL,           -- '' for a list asked for without a placement
    arm TEXT NOT NULL,
    profile TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('impression', 'click')),
    position INTEGER NOT NULL,         -- impressions: how many items the block showed; clicks: the item's, from 1
    n INTEGER NOT NULL,
    PRIMARY KEY (day, placement, arm, profile, kind, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secret (id INTEGER PRIMARY KEY CHECK (id = 1), value BLOB NOT NULL);
INSERT OR IGNORE INTO secret VALUES (1, randomblob(32));
"""
_UPSERT = ("INSERT INTO counts VALUES (?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (day, placement, arm, profile, kind, position) DO UPDATE SET n = n + excluded.n")


@dataclass(frozen=True)
class Impression:
    """A block of `shown` items was seen."""

    placement: str
    arm: str
    profile: str
    shown: int


@dataclass(frozen=True)
class Click:
    """The item at `position` (from 1) of a block was clicked."""

    placement: str
    arm: str
    profile: str
    position: int


class Count(NamedTuple):
    """One stored count."""

    day: str
    placement: str
    arm: str
    profile: str
    kind: str
    position: int
    n: int


def today() -> str:
    """The UTC date events arriving now are counted under."""
    return datetime.now(timezone.utc).date().isoformat()


class EventStore:
    """The counts file: checked when opened; each process (a forked worker too) uses a connection of its own."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._db = connect_state(self.path, SCHEMA, "NORMAL")  # now: a damaged file stops the start, not a request

    def _connection(self) -> sqlite3.Connection:
        # A connection must not be used on both sides of a fork: a worker opens its own on first use.
        if self._pid != os.getpid():
            self._db, self._pid = connect_state(self.path, SCHEMA, "NORMAL"), os.getpid()
        return self._db

    def secret(self) -> bytes:
        """The random secret rids are signed with, made once with the file (shared by everything using it)."""
        with self._lock:
            return bytes(self._connection().execute("SELECT value FROM secret WHERE id = 1").fetchone()[0])

    def record(self, events: Iterable[Impression | Click], day: str | None = None) -> int:
        """Add events to the counts of day (default: today) in one transaction; the number added."""
        day = day or today()
        counts: Counter[tuple[str, ...]] = Counter()
        for event in events:
            if isinstance(event, Impression):
                counts[(event.placement, event.arm, event.profile, "impression", event.shown)] += 1
            else:
                counts[(event.placement, event.arm, event.profile, "click", event.position)] += 1
        if not counts:
            return 0
        rows = [(day, placement, arm, profile, kind, position, n)
                for (placement, arm, profile, kind, position), n in sorted(counts.items())]
        with self._lock:
            db = self._connection()
            write(db, self.path, lambda: db.executemany(_UPSERT, rows))
        return sum(counts.values())

    def counts(self, since: str) -> list[Count]:
        """Every count from day `since` (an ISO date) on."""
        with self._lock, reading(self._connection()) as db:
            rows = db.execute("SELECT day, placement, arm, profile, kind, position, n FROM counts WHERE day >= ? "
                              "ORDER BY day, placement, arm, profile, kind, position", (since,)).fetchall()
        return [Count(*row) for row in rows]

    def close(self) -> None:
        """Close this process's connection."""
        self._db.close()
