"""Reader events, stored durably as counts: impressions of a block and clicks on its items, per day, placement,
A/B arm, ranking profile and position. Counts only: no event row, no address, no cookie, nothing about a reader.

One SQLite file in the state folder (created and checked like the editors' file, db.py), or tables in the
PostgreSQL database of state_url (state.py); a batch of events is one transaction, so a failed one changed
nothing. Unlike the editors' SQLite files, a commit does not wait for the disk (WAL with synchronous=NORMAL): an
acknowledged batch survives the process being killed (it is in the WAL, in the operating system's hands), and
only a power cut or kernel crash can lose the last moments of counts. A reader's related links must not wait
behind an fsync per impression: with FULL, each batch held its gevent worker for an fsync (0.3 ms on an idle
disk, 5 ms on a busy one).
"""
from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, NamedTuple

from ..state import open_state

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
# The same in PostgreSQL, as numbered migrations (pg.migrate): never change one that has shipped, add the next.
# The secret row is written by the first EventStore to open the database (PostgreSQL has no randomblob).
MIGRATIONS = ("""
CREATE TABLE counts (
    day TEXT NOT NULL, placement TEXT NOT NULL, arm TEXT NOT NULL, profile TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('impression', 'click')), position INTEGER NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (day, placement, arm, profile, kind, position)
);
CREATE TABLE secret (id INTEGER PRIMARY KEY CHECK (id = 1), value BYTEA NOT NULL);
""",)
_UPSERT = ("INSERT INTO counts VALUES (?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (day, placement, arm, profile, kind, position) DO UPDATE SET n = counts.n + excluded.n")


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
    """The event counts in their database (state.open_state): checked or migrated when opened."""

    def __init__(self, where: str | Path) -> None:
        self.where = where
        self.db = open_state(where, "events", SCHEMA, MIGRATIONS, "NORMAL")  # now: a bad database stops the start

    def secret(self) -> bytes:
        """The random secret rids are signed with, made once with the database (shared by everything using it)."""
        row = self.db.one("SELECT value FROM secret WHERE id = 1")
        if row is None:  # a new PostgreSQL database: the first replica to get here makes it, the others read it
            self.db.write(lambda db: db.execute("INSERT INTO secret VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
                                                 (secrets.token_bytes(32),)))
            row = self.db.one("SELECT value FROM secret WHERE id = 1")
        return bytes(row[0])

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
        # Sorted: concurrent batches lock the rows they share in one order, so they never deadlock.
        rows = [(day, placement, arm, profile, kind, position, n)
                for (placement, arm, profile, kind, position), n in sorted(counts.items())]
        self.db.write(lambda db: db.executemany(_UPSERT, rows))
        return sum(counts.values())

    def counts(self, since: str) -> list[Count]:
        """Every count from day `since` (an ISO date) on."""
        rows = self.db.read(lambda db: db.execute(
            "SELECT day, placement, arm, profile, kind, position, n FROM counts WHERE day >= ? "
            "ORDER BY day, placement, arm, profile, kind, position", (since,)).fetchall())
        return [Count(*row) for row in rows]

    def close(self) -> None:
        """Close this process's connection."""
        self.db.close()
