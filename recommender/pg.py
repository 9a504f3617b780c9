"""PostgreSQL as the store of the state that replicas share (setting state_url): a small connection pool per
process, numbered migrations applied once under an advisory lock, every write one transaction.

psycopg (3) is imported by this module only, and this module only where state_url names PostgreSQL.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import psycopg

from .config import redacted_url
from .db import StateUnavailable

T = TypeVar("T")
# Connections one process holds at most: a gevent worker answers many requests at once, and PostgreSQL's own
# limit (max_connections, 100 by default) is shared by every worker of every replica.
MAX_CONNECTIONS = 8
MAX_WAIT = 5.0  # seconds a request waits for one of them before it is answered 503
CONNECT_TIMEOUT = 3  # seconds (libpq's least is 2): how long an unreachable host may hold one request
# After a failed connection attempt a process does not try again for this long: meanwhile requests are
# answered at once (reads from memory, writes 503) instead of each waiting on an unreachable server.
RETRY_AFTER = 1.0
# The advisory lock migrations run under: replicas started together migrate one after the other.
MIGRATION_LOCK = 4_205_170_913
# Tables every store shares: which migrations ran, and the stores' change counters (key = the store's name).
BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    store TEXT NOT NULL, version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (store, version)
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
"""


class DatabaseRefused(OSError):
    """PostgreSQL cannot be used at start-up: unreachable, refusing us, or migrated by a newer program."""


class _Pool:
    """One process's connections to one database: opened on demand by the request that needs one (in its own
    thread or greenlet), kept idle for the next, at most MAX_CONNECTIONS at once."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._idle: list[psycopg.Connection] = []
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._retry_at = 0.0

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for one statement or transaction; given back afterwards, or dropped if it broke."""
        if not self._slots.acquire(timeout=MAX_WAIT):
            raise StateUnavailable(f"all {MAX_CONNECTIONS} PostgreSQL connections of this process stayed busy "
                                   f"for {MAX_WAIT:.0f} s")
        try:
            conn = self._take()
            try:
                yield conn
            except psycopg.OperationalError:
                self.close_idle()  # the server went away: the kept connections went with it
                raise
            finally:
                self._give_back(conn)
        finally:
            self._slots.release()

    def _take(self) -> psycopg.Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not _gone(conn):
                    return conn
                conn.close()
            if time.monotonic() < self._retry_at:
                raise StateUnavailable(f"PostgreSQL at {redacted_url(self.url)} was unreachable less than "
                                       f"{RETRY_AFTER:.0f} s ago")
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                   application_name="recommender")
        except psycopg.Error as exc:
            self._retry_at = time.monotonic() + RETRY_AFTER
            raise StateUnavailable(f"cannot connect to PostgreSQL at {redacted_url(self.url)}: "
                                   f"{_first_line(exc)}") from exc

    def _give_back(self, conn: psycopg.Connection) -> None:
        idle = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if idle and len(self._idle) < MAX_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    def close_idle(self) -> None:
        """Close the idle connections (the ones in use are closed when given back, if broken)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _gone(conn: psycopg.Connection) -> bool:
    """Whether an idle connection is dead: the server closed it, or said why it will (a restart, an
    administrator). libpq reads what arrived meanwhile without waiting (its socket is non-blocking), so this
    costs no system call to select and, in a gevent worker, no switch to another greenlet."""
    if conn.closed:
        return True
    try:
        # Twice: the first call may read only the server's last words (FATAL: terminating connection ...),
        # the second then meets the closed socket.
        conn.pgconn.consume_input()
        conn.pgconn.consume_input()
    except psycopg.OperationalError:
        return True
    return conn.pgconn.status != psycopg.pq.ConnStatus.OK


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# Pools by (process id, URL): a forked worker makes its own and never touches (nor closes) its parent's.
_POOLS: dict[tuple[int, str], _Pool] = {}
_POOLS_LOCK = threading.Lock()


def _pool(url: str) -> _Pool:
    key = (os.getpid(), url)
    pool = _POOLS.get(key)
    if pool is None:
        with _POOLS_LOCK:
            pool = _POOLS.setdefault(key, _Pool(url))
    return pool


def release_connections() -> None:
    """Close this process's idle connections: gunicorn's master calls it before forking a worker, since a
    connection must not be used (or closed) on both sides of a fork."""
    for (pid, _), pool in list(_POOLS.items()):
        if pid == os.getpid():
            pool.close_idle()


@functools.lru_cache(maxsize=256)
def _dialect(sql: str) -> str:
    """The stores' SQL with psycopg's placeholders (%s for ?, and a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Cursor:
    """A connection inside a transaction that takes the stores' `?` placeholders."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self._conn.execute(_dialect(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_dialect(sql), rows)


class PostgresState:
    """One store's tables in the PostgreSQL database of state_url (the StateDB of state.py)."""

    def __init__(self, url: str, name: str, migrations: Sequence[str]) -> None:
        self.url, self.name, self.database = url, name, url
        self.version_key = name  # its row in the shared `state` table
        try:
            migrate(url, name, migrations)  # now: an unreachable or newer database stops the start
        except StateUnavailable as exc:
            raise DatabaseRefused(f"state_url: {exc}") from None
        except psycopg.Error as exc:  # e.g. a user without the right to create tables
            raise DatabaseRefused(f"state_url: the {name} tables in {redacted_url(url)} could not be migrated: "
                                  f"{_first_line(exc)}") from None

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one statement (None when there is none)."""
        return self._run(lambda conn: conn.execute(_dialect(sql), params).fetchone(), writing=False)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one statement."""
        return self._run(lambda conn: conn.execute(_dialect(sql), params).fetchall(), writing=False)

    def read(self, query: Callable[[_Cursor], T]) -> T:
        """query(cursor) in one read-only transaction that sees one snapshot of the database."""
        def run(conn: psycopg.Connection) -> T:
            # Both go into the BEGIN psycopg sends (no round trip of their own), for this transaction only.
            conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            try:
                with conn.transaction():
                    return query(_Cursor(conn))
            finally:
                conn.isolation_level, conn.read_only = None, None

        return self._run(run, writing=False)

    def write(self, change: Callable[[_Cursor], T]) -> T:
        """change(cursor) in one transaction; StateUnavailable if it fails (and then it was not acknowledged)."""
        def run(conn: psycopg.Connection) -> T:
            with conn.transaction():
                return change(_Cursor(conn))

        return self._run(run, writing=True)

    def _run(self, work: Callable[[psycopg.Connection], T], writing: bool) -> T:
        # Reads fail over (the engine keeps what it read last) only when the database cannot be reached; a
        # mistake in a query stays an error. A failed write is always a 503, as it is with SQLite.
        failures = psycopg.Error if writing else (psycopg.OperationalError, psycopg.InterfaceError)
        try:
            with _pool(self.url).connection() as conn:
                return work(conn)
        except failures as exc:
            if writing:
                raise StateUnavailable(f"could not write {self.name} state to PostgreSQL: {_first_line(exc)}; this "
                                       f"change was not acknowledged, earlier ones are kept") from exc
            raise StateUnavailable(f"could not read {self.name} state from PostgreSQL: {_first_line(exc)}") from exc

    def close(self) -> None:
        """Close this process's idle connections to the database."""
        _pool(self.url).close_idle()


def migrate(url: str, store: str, migrations: Sequence[str]) -> int:
    """Apply the store's numbered migrations (migrations[0] is number 1) that the database lacks, each in one
    transaction under an advisory lock, so replicas starting together take turns; returns the number reached.

    Raises DatabaseRefused when the database was migrated further than this program knows (a newer version
    wrote it: running older code over it could lose what the newer schema holds)."""
    reached = 0
    with _pool(url).connection() as conn:
        for number, statements in enumerate(migrations, start=1):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(BOOKKEEPING)
                reached = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations WHERE store = %s",
                                       (store,)).fetchone()[0]
                if reached > len(migrations):
                    raise DatabaseRefused(
                        f"state_url: the {store} tables in {redacted_url(url)} are at migration {reached}, this "
                        f"program knows {len(migrations)}: run the newer version, or restore a backup")
                if reached < number:
                    conn.execute(statements)
                    conn.execute("INSERT INTO schema_migrations (store, version) VALUES (%s, %s)", (store, number))
                    reached = number
    return reached

