"""Editors' decisions, stored durably: pins, blocks, blocks everywhere, takedowns, and an audit log.

The store lives outside the index snapshots (an SQLite file in state_dir, or the PostgreSQL database of
state_url: state.py), so decisions survive restarts and re-indexing. Every change bumps a version number in
the same transaction; a server compares it on each request (one indexed read) and rebuilds its in-memory
`Rules` only when another process, worker or replica changed something.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ..state import Cursor, open_state

Action = Literal["pin", "block", "block_everywhere"]
ACTIONS: tuple[str, ...] = ("pin", "block", "block_everywhere")

SCHEMA = """
CREATE TABLE IF NOT EXISTS overrides (
    article_id TEXT NOT NULL,          -- whose list ('*' for block_everywhere)
    action TEXT NOT NULL CHECK (action IN ('pin', 'block', 'block_everywhere')),
    target_id TEXT NOT NULL,
    position INTEGER,                  -- 1-based, pins only
    who TEXT NOT NULL,
    why TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (article_id, action, target_id)
);
CREATE TABLE IF NOT EXISTS takedowns (
    article_id TEXT PRIMARY KEY, who TEXT NOT NULL, why TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL, change TEXT NOT NULL,
    article_id TEXT NOT NULL, target_id TEXT, position INTEGER, why TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state VALUES ('version', 0);
"""
# The same tables in PostgreSQL, as numbered migrations (pg.migrate): never change one that has shipped,
# add the next. Ids compare bytewise (COLLATE "C"), as in SQLite, whatever the database's locale.
MIGRATIONS = ("""
CREATE TABLE overrides (
    article_id TEXT COLLATE "C" NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('pin', 'block', 'block_everywhere')),
    target_id TEXT COLLATE "C" NOT NULL,
    position INTEGER,
    who TEXT NOT NULL, why TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (article_id, action, target_id)
);
CREATE TABLE takedowns (
    article_id TEXT COLLATE "C" PRIMARY KEY, who TEXT NOT NULL, why TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, change TEXT NOT NULL,
    article_id TEXT COLLATE "C" NOT NULL, target_id TEXT COLLATE "C", position INTEGER, why TEXT NOT NULL
);
INSERT INTO state VALUES ('editorial', 0) ON CONFLICT DO NOTHING;
""",)
VERSION = "SELECT value FROM state WHERE key = ?"
# First in every write: it locks the store's counter row, so concurrent writes (other workers, other replicas)
# apply one after the other and never deadlock, as SQLite's BEGIN IMMEDIATE does for its file.
BUMP = "UPDATE state SET value = value + 1 WHERE key = ?"
EVERYWHERE = "*"


@dataclass(frozen=True)
class Rules:
    """All editorial decisions at one version, ready to apply to a list."""

    version: int = 0
    pins: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    blocks: dict[str, frozenset[str]] = field(default_factory=dict)
    blocked_everywhere: frozenset[str] = frozenset()
    taken_down: frozenset[str] = frozenset()

    def hidden_for(self, article_id: str | None) -> frozenset[str]:
        """Ids that must not appear in the list of article_id (None: a draft's list)."""
        hidden = self.blocked_everywhere | self.taken_down
        return hidden | self.blocks.get(article_id, frozenset()) if article_id else hidden


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _NothingToRemove(Exception):
    """Raised inside a removal's transaction to roll it back: there was no such decision."""


class EditorialStore:
    """The editors' decisions in their database (state.open_state: an SQLite file or PostgreSQL)."""

    def __init__(self, where: str | Path) -> None:
        self.where = where
        self.db = open_state(where, "editorial", SCHEMA, MIGRATIONS)

    def version(self) -> int:
        """The number of changes ever made (cheap to read on every request)."""
        return int(self.db.one(VERSION, (self.db.version_key,))[0])

    def _change(self, statements: list[tuple[str, tuple[Any, ...]]], *audits: tuple[Any, ...]) -> None:
        """Apply statements and audit entries in one transaction; StateUnavailable if the write fails."""
        def apply(db: Cursor) -> None:
            db.execute(BUMP, (self.db.version_key,))
            for sql, params in statements:
                db.execute(sql, params)
            self._audit(db, *audits)

        self.db.write(apply)

    @staticmethod
    def _audit(db: Cursor, *audits: tuple[Any, ...]) -> None:
        for audit in audits:
            db.execute("INSERT INTO audit (at, who, change, article_id, target_id, position, why) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (_now(), *audit))

    def set_override(self, article_id: str, action: Action, target_id: str, who: str, why: str,
                     position: int | None = None) -> None:
        """Pin target in article's list at position, block it there, or block it everywhere."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
        owner = EVERYWHERE if action == "block_everywhere" else article_id
        statements = [("INSERT INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (article_id, action, target_id) "
                       "DO UPDATE SET position = excluded.position, who = excluded.who, why = excluded.why, "
                       "created_at = excluded.created_at",
                       (owner, action, target_id, position if action == "pin" else None, who, why, _now()))]
        if action in ("pin", "block"):
            # Pinning and blocking one story in one list contradict each other: the newer decision wins.
            other = "block" if action == "pin" else "pin"
            statements.append(("DELETE FROM overrides WHERE article_id = ? AND action = ? AND target_id = ?",
                               (owner, other, target_id)))
        self._change(statements, (who, action, owner, target_id, position, why))

    def remove_override(self, article_id: str, action: Action, target_id: str, who: str, why: str) -> bool:
        """Undo a pin or block; False when there was none."""
        owner = EVERYWHERE if action == "block_everywhere" else article_id

        def apply(db: Cursor) -> None:
            db.execute(BUMP, (self.db.version_key,))
            removed = db.execute("DELETE FROM overrides WHERE article_id = ? AND action = ? AND target_id = ?",
                                 (owner, action, target_id)).rowcount
            if not removed:
                raise _NothingToRemove  # rolls the bump back too
            self._audit(db, (who, f"un{action}", owner, target_id, None, why))

        try:
            self.db.write(apply)
        except _NothingToRemove:
            return False
        return True

    def take_down(self, article_id: str, who: str, why: str) -> None:
        """Remove an article from every list, from now on and after any re-index."""
        self._change([("INSERT INTO takedowns VALUES (?, ?, ?, ?) ON CONFLICT (article_id) DO UPDATE SET "
                       "who = excluded.who, why = excluded.why, created_at = excluded.created_at",
                       (article_id, who, why, _now()))],
                     (who, "takedown", article_id, None, None, why))

    def article_written(self, article_id: str, created: bool, who: str, why: str, restore: bool = False) -> None:
        """Audit an article PUT (and, with restore, lift its takedown in the same transaction)."""
        statements = [("DELETE FROM takedowns WHERE article_id = ?", (article_id,))] if restore else []
        audits = [(who, "restore", article_id, None, None, why)] if restore else []
        self._change(statements, *audits, (who, "article_created" if created else "article_updated", article_id,
                                            None, None, why))

    def rules(self) -> Rules:
        """Every decision, read in one transaction."""
        def read(db: Cursor) -> tuple[int, list[Any], frozenset[str]]:
            version = int(db.execute(VERSION, (self.db.version_key,)).fetchone()[0])
            rows = db.execute("SELECT article_id, action, target_id, position FROM overrides").fetchall()
            return version, rows, frozenset(r[0] for r in db.execute("SELECT article_id FROM takedowns").fetchall())

        version, rows, taken = self.db.read(read)
        pins: dict[str, list[tuple[int, str]]] = {}
        blocks: dict[str, set[str]] = {}
        everywhere = set()
        for article_id, action, target_id, position in rows:
            if action == "pin":
                pins.setdefault(article_id, []).append((int(position), target_id))
            elif action == "block":
                blocks.setdefault(article_id, set()).add(target_id)
            else:
                everywhere.add(target_id)
        return Rules(version, {a: tuple(sorted(p)) for a, p in pins.items()},
                     {a: frozenset(b) for a, b in blocks.items()}, frozenset(everywhere), taken)

    def overrides_for(self, article_id: str) -> list[dict[str, Any]]:
        """The decisions that shape article_id's list (its pins and blocks, and blocks everywhere)."""
        rows = self.db.read(lambda db: db.execute(
            "SELECT article_id, action, target_id, position, who, why, created_at FROM overrides "
            "WHERE article_id IN (?, ?) ORDER BY action, position, target_id", (article_id, EVERYWHERE)).fetchall())
        keys = ("article_id", "action", "target_id", "position", "who", "why", "created_at")
        return [dict(zip(keys, row)) for row in rows]

    def audit(self, limit: int = 100, article_id: str | None = None) -> list[dict[str, Any]]:
        """The newest audit entries first."""
        sql = "SELECT id, at, who, change, article_id, target_id, position, why FROM audit"
        params: tuple[Any, ...] = ()
        if article_id:
            sql += " WHERE article_id IN (?, ?) OR target_id = ?"
            params = (article_id, EVERYWHERE, article_id)
        rows = self.db.read(lambda db: db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall())
        keys = ("id", "at", "who", "change", "article_id", "target_id", "position", "why")
        return [dict(zip(keys, row)) for row in rows]

    def close(self) -> None:
        """Close the database."""
        self.db.close()
