"""Opening the SQLite files that hold state shared by all API workers: checked at start, written safely, backed up."""
from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Callable, Iterator, TypeVar

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


def _create(path: Path, schema: str) -> None:
    """Create the file under a temporary name and link it into place, so a crash never leaves a half-made
    (0-byte or schema-less) file that the next start would have to refuse."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    temporary.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(temporary, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(f"BEGIN IMMEDIATE; {schema} COMMIT;")
    try:
        os.link(temporary, path)  # fails if another process created it meanwhile: theirs is kept
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: a rename, unless another process was first
        if not path.exists():
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def connect_state(path: str | Path, schema: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (callers BEGIN IMMEDIATE themselves), WAL so readers never wait for a
    writer, and synchronous=FULL so a change acknowledged to a client is on disk. A missing file is created
    with the schema; an existing one must pass quick_check and hold the schema, else StateFileError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create(path, schema)
    elif path.stat().st_size == 0:
        raise _refusal(path, "is empty (0 bytes: a full disk or a failed restore?)")
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
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

