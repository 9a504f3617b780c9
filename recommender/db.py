"""Opening the SQLite files that hold state shared by all API workers."""
from __future__ import annotations

import sqlite3
from pathlib import Path


def connect_state(path: str | Path, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode (callers BEGIN IMMEDIATE themselves), WAL so readers never wait for a
    writer, and synchronous=FULL so a change acknowledged to a client is on disk; schema is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db
