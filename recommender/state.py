"""Where the service's state lives: the interface of a store's database, and the backend the settings choose.

The stores (editors' decisions, articles received through the API, reader event counts) write their SQL once,
with `?` placeholders and the upsert syntax both backends share (`INSERT ... ON CONFLICT ... DO UPDATE`). A
backend runs it: an SQLite file per store in state_dir (db.SQLiteState, the embedded default), or one
PostgreSQL database named by state_url (pg.PostgresState), which replicas on several machines share.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence, TypeVar

from .db import SQLiteState

T = TypeVar("T")
URL_SCHEMES = ("postgresql://", "postgres://")


class Rows(Protocol):
    """What a statement returns: rows as tuples, and how many rows it changed."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Cursor(Protocol):
    """What a store's queries run on inside a transaction (`?` placeholders)."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


class StateDB(Protocol):
    """One store's tables in a database. Failures to reach or write it raise db.StateUnavailable."""

    version_key: str  # the key of the store's change counter in the `state` table
    database: str  # which database: handles with the same one may be read together (versions())

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one statement (None when there is none)."""

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one statement."""

    def read(self, query: Callable[[Any], T]) -> T:
        """query(cursor) in one read transaction: a consistent view across its SELECTs."""

    def write(self, change: Callable[[Any], T]) -> T:
        """change(cursor) in one transaction: all of it is stored, or (StateUnavailable) none of it."""

    def close(self) -> None:
        """Give back this process's connections."""


def versions(dbs: Sequence[StateDB]) -> list[int]:
    """The change counter of each store's database, in order: one query for all the stores that share a
    database (with state_url, every request's check of the editors' and the live counters is one round trip)."""
    groups: dict[str, list[int]] = {}
    for position, db in enumerate(dbs):
        groups.setdefault(db.database, []).append(position)
    found: dict[int, int] = {}
    for positions in groups.values():
        keys = [dbs[p].version_key for p in positions]
        rows = dict(dbs[positions[0]].all(f"SELECT key, value FROM state WHERE key IN ({', '.join('?' * len(keys))})",
                                          keys))
        found.update((p, int(rows[dbs[p].version_key])) for p in positions)
    return [found[p] for p in range(len(dbs))]


def is_database_url(where: str | Path) -> bool:
    """Whether a store location names a PostgreSQL database rather than an SQLite file."""
    return str(where).startswith(URL_SCHEMES)


def store_location(state_dir: str, state_url: str, filename: str) -> str | Path | None:
    """Where a store keeps its state under these settings: state_url if set, else the file state_dir/filename;
    None when both are empty (the store is disabled)."""
    if state_url:
        return state_url
    return Path(state_dir) / filename if state_dir else None


def open_state(where: str | Path, name: str, schema: str, migrations: Sequence[str],
               synchronous: str = "FULL", upgrades: Sequence[str] = ()) -> StateDB:
    """The database of store `name`: PostgreSQL when where is a postgresql:// URL (brought up to date with the
    store's numbered migrations), else the SQLite file at where (created with schema, the newest, when missing;
    a file of an earlier version gets the SQLite upgrades it lacks; synchronous: see db.connect_state)."""
    if is_database_url(where):
        from .pg import PostgresState  # psycopg loads only where PostgreSQL is used

        return PostgresState(str(where), name, migrations)
    return SQLiteState(Path(where), schema, synchronous, upgrades)
