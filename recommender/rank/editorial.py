"""Editors' decisions, stored durably in SQLite: pins, blocks, blocks everywhere, takedowns, and an audit log.

The store lives outside the index snapshots, so decisions survive restarts and re-indexing. Every change
bumps a version number in the same transaction; a server compares it on each request (one indexed read)
and rebuilds its in-memory `Rules` only when another process or worker changed something.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ..db import connect_state, reading, write

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


class EditorialStore:
    """The SQLite file of editorial decisions; one connection per process (and per thread: check_same_thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = connect_state(self.path, SCHEMA)
        self._lock = threading.Lock()  # one connection, possibly several request threads

    def version(self) -> int:
        """The number of changes ever made (cheap to read on every request)."""
        with self._lock:
            return self._version()

    def _version(self) -> int:
        return int(self._db.execute("SELECT value FROM state WHERE key = 'version'").fetchone()[0])

    def _change(self, statements: list[tuple[str, tuple[Any, ...]]], *audits: tuple[Any, ...]) -> None:
        """Apply statements and audit entries in one transaction; StateUnavailable if the write fails."""
        def apply() -> None:
            for sql, params in statements:
                self._db.execute(sql, params)
            for audit in audits:
                self._db.execute("INSERT INTO audit (at, who, change, article_id, target_id, position, why) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (_now(), *audit))
            self._db.execute("UPDATE state SET value = value + 1 WHERE key = 'version'")

        with self._lock:
            write(self._db, self.path, apply)

    def set_override(self, article_id: str, action: Action, target_id: str, who: str, why: str,
                     position: int | None = None) -> None:
        """Pin target in article's list at position, block it there, or block it everywhere."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
        owner = EVERYWHERE if action == "block_everywhere" else article_id
        statements = [("INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        with self._lock:
            exists = self._db.execute("SELECT 1 FROM overrides WHERE article_id = ? AND action = ? AND target_id = ?",
                                      (owner, action, target_id)).fetchone()
        if not exists:
            return False
        self._change([("DELETE FROM overrides WHERE article_id = ? AND action = ? AND target_id = ?",
                       (owner, action, target_id))], (who, f"un{action}", owner, target_id, None, why))
        return True

    def take_down(self, article_id: str, who: str, why: str) -> None:
        """Remove an article from every list, from now on and after any re-index."""
        self._change([("INSERT OR REPLACE INTO takedowns VALUES (?, ?, ?, ?)", (article_id, who, why, _now()))],
                     (who, "takedown", article_id, None, None, why))

    def article_written(self, article_id: str, created: bool, who: str, why: str, restore: bool = False) -> None:
        """Audit an article PUT (and, with restore, lift its takedown in the same transaction)."""
        statements = [("DELETE FROM takedowns WHERE article_id = ?", (article_id,))] if restore else []
        audits = [(who, "restore", article_id, None, None, why)] if restore else []
        self._change(statements, *audits, (who, "article_created" if created else "article_updated", article_id,
                                            None, None, why))

    def rules(self) -> Rules:
        """Every decision, read in one transaction."""
        with self._lock, reading(self._db):
            version = self._version()
            rows = self._db.execute("SELECT article_id, action, target_id, position FROM overrides").fetchall()
            taken = frozenset(r[0] for r in self._db.execute("SELECT article_id FROM takedowns"))
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
        with self._lock:
            rows = self._db.execute(
                "SELECT article_id, action, target_id, position, who, why, created_at FROM overrides "
                "WHERE article_id IN (?, ?) ORDER BY action, position, target_id", (article_id, EVERYWHERE)).fetchall()
        keys = ("article_id", "action", "target_id", "position", "who", "why", "created_at")
        return [dict(zip(keys, row)) for row in rows]

    def audit(self, limit: int = 100, article_id: str | None = None) -> list[dict[str, Any]]:
        """The newest audit entries first."""
        sql = "SELECT id, at, who, change, article_id, target_id, position, why FROM audit"
        params: tuple[Any, ...] = ()
        if article_id:
            sql += " WHERE article_id IN (?, ?) OR target_id = ?"
            params = (article_id, EVERYWHERE, article_id)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        keys = ("id", "at", "who", "change", "article_id", "target_id", "position", "why")
        return [dict(zip(keys, row)) for row in rows]

    def close(self) -> None:
        """Close the database."""
        self._db.close()
