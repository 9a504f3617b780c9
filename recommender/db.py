"""Opening the SQLite files that hold state shared by all API workers: checked at start, written safely, backed up.

SQLite is the embedded default backend of the stores (`SQLiteState`); state.py says how the settings choose
between it and PostgreSQL (pg.py).
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
STATE_FILES = ("editorial.sqlite", "live.sqlite", "events.sqlite")


class StateFileError(OSError):
    """A state file exists but is not a valid database of ours: starting anyway would silently drop decisions."""


class StateUnavailable(RuntimeError):
    """A write to a state file failed (disk full, read-only file system, I/O error); nothing earlier is lost."""


def _refusal(path: Path, problem: str) -> StateFileError:
    return StateFileError(f"state file {path} {problem}; restore it from a backup (recommender backup-state), "
                          f"or move it away to start with no editors' decisions and no received articles")


def _expected_columns(schema: str) -> dict[str, set[str]]:
    """Table -> column names the schema creates (read from an in-memory database, so never out of date)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(schema)
        return _columns(db)


def _columns(db: sqlite3.Connection) -> dict[str, set[str]]:
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: {row[1] for row in db.execute(f'PRAGMA table_info("{t}")')} for t in tables}


def _check(db: sqlite3.Connection, path: Path, schema: str) -> None:
    """Refuse a file that is damaged or holds another schema (quick_check reads every page: ~1 s per GB)."""
    try:
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        actual = _columns(db)
    except sqlite3.DatabaseError as exc:
        raise _refusal(path, f"is not an SQLite database ({exc})") from None
    if problems != ["ok"]:
        raise _refusal(path, f"is damaged (PRAGMA quick_check: {'; '.join(problems[:3])})")
    for table, columns in _expected_columns(schema).items():
        if table != "sqlite_sequence" and not columns <= actual.get(table, set()):
            raise _refusal(path, f"is not a state database of this program (table {table!r} is missing or differs)")


def _create(path: Path, schema: str, upgrades: Sequence[str] = ()) -> None:
    """Create the file under a temporary name and link it into place, so a crash never leaves a half-made
    (0-byte or schema-less) file that the next start would have to refuse. The schema is the newest one: the
    file counts every upgrade as applied."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    temporary.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(temporary, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(f"BEGIN IMMEDIATE; {schema} PRAGMA user_version = {len(upgrades)}; COMMIT;")
    try:
        os.link(temporary, path)  # fails if another process created it meanwhile: theirs is kept
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: a rename, unless another process was first
        if not path.exists():
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _upgrade(db: sqlite3.Connection, path: Path, upgrades: Sequence[str]) -> None:
    """Apply the upgrades a file made by an earlier version lacks (PRAGMA user_version counts those applied),
    all in one transaction: processes starting together upgrade one after the other, and a failure changes
    nothing."""
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] >= len(upgrades):
            return
        db.execute("BEGIN IMMEDIATE")
        reached = db.execute("PRAGMA user_version").fetchone()[0]  # again under the lock
        for statement in upgrades[reached:]:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {max(reached, len(upgrades))}")
        db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        _roll_back(db)
        raise _refusal(path, f"could not be upgraded to this version's schema ({exc})") from None


def connect_state(path: str | Path, schema: str, check: bool = True, synchronous: str = "FULL",
                  upgrades: Sequence[str] = ()) -> sqlite3.Connection:
    """A connection in autocommit mode (callers BEGIN IMMEDIATE themselves), WAL so readers never wait for a
    writer, and synchronous=FULL so a change acknowledged to a client is on disk (NORMAL: in the WAL, safe from a
    killed process, not from a power cut; for counts that must not wait for the disk). A missing file is created
    with the schema; an existing one gets the upgrades it lacks, then must pass quick_check and hold the schema
    (unless check is False: the file was checked by this program already), else StateFileError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create(path, schema, upgrades)
    elif path.stat().st_size == 0:
        raise _refusal(path, "is empty (0 bytes: a full disk or a failed restore?)")
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        if check:
            _upgrade(db, path, upgrades)
            _check(db, path, schema)
        with contextlib.suppress(sqlite3.OperationalError):  # a read-only file: reads still work
            db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'NORMAL' else 'FULL'}")
    except BaseException:
        db.close()
        raise
    return db


def write(db: sqlite3.Connection, path: Path, change: Callable[[], T]) -> T:
    """Run change() in one BEGIN IMMEDIATE transaction; a failed write rolls back and raises StateUnavailable."""
    try:
        db.execute("BEGIN IMMEDIATE")  # the write lock first: two editors' changes apply one after the other
        result = change()
        db.execute("COMMIT")
        return result
    except sqlite3.DatabaseError as exc:
        _roll_back(db)
        raise StateUnavailable(f"could not write {path.name}: {exc}; nothing was changed, earlier changes are "
                               f"kept") from exc
    except BaseException:
        _roll_back(db)
        raise


def _roll_back(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the failure being reported matters, not this one
            db.execute("ROLLBACK")


@contextlib.contextmanager
def reading(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction (a consistent view across several SELECTs)."""
    db.execute("BEGIN")
    try:
        yield db
    finally:
        if db.in_transaction:
            db.execute("COMMIT")


class SQLiteState:
    """A store's SQLite file (the StateDB of state.py): checked when opened; every process uses a connection of
    its own (a forked worker opens one on first use), shared by its threads under a lock."""

    version_key = "version"  # the row of the file's `state` table that counts its changes

    def __init__(self, path: str | Path, schema: str, synchronous: str = "FULL", upgrades: Sequence[str] = ()) -> None:
        self.path, self.schema = Path(path), schema
        self.database = str(self.path)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.synchronous = synchronous
        self._db = connect_state(self.path, schema, synchronous=synchronous, upgrades=upgrades)  # damaged: no start

    def connection(self) -> sqlite3.Connection:
        """This process's connection."""
        # SQLite forbids using a connection on both sides of a fork; the file was checked when first opened.
        if self._pid != os.getpid():
            self._db, self._pid = connect_state(self.path, self.schema, False, self.synchronous), os.getpid()
        return self._db

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one statement (None when there is none)."""
        with self._lock:
            return self.connection().execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one statement."""
        with self._lock:
            return self.connection().execute(sql, params).fetchall()

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """query(connection) in one read transaction: a consistent view across its SELECTs."""
        with self._lock, reading(self.connection()) as db:
            return query(db)

    def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """change(connection) in one transaction; StateUnavailable (nothing changed) if the write fails."""
        with self._lock:
            db = self.connection()
            return write(db, self.path, lambda: change(db))

    def close(self) -> None:
        """Close this process's connection."""
        self._db.close()


def backup_state(state_dir: str | Path, destination: str | Path) -> list[Path]:
    """Copy every state file of state_dir into the folder destination with SQLite's online backup API
    (consistent while servers keep writing); each copy is written aside, checked, then renamed into place."""
    source_dir, target_dir = Path(state_dir), Path(destination)
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in STATE_FILES:
        source = source_dir / name
        if not source.exists():
            continue
        target, partial = target_dir / name, target_dir / f".{name}.partial"
        partial.unlink(missing_ok=True)
        with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
                contextlib.closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)
            if dst.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise OSError(f"the backup of {source} failed its check; nothing was replaced")
        os.replace(partial, target)
        written.append(target)
    return written

