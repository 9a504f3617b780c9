"""Embeddings cached by (encoder identity, prepared text), so unchanged articles are never embedded twice."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from ..progress import event
from .encoders import DenseEncoder


def cache_key(identity: dict[str, Any], text: str) -> str:
    """Stable key of one text under one encoder identity."""
    payload = json.dumps(identity, sort_keys=True) + "\x00" + text
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CacheFull(OSError):
    """The embedding cache cannot grow: the disk is full. The job fails (the published index stays)."""


class EmbeddingCache:
    """An SQLite file of float32 vectors; safe for several processes (WAL), cheap to look up in bulk.

    It is only a cache: opened on first use (a profile without dense signals never touches it), moved aside
    when damaged and bypassed when it cannot be written, each with one warning; only a full disk fails a job,
    because then the snapshot could not be written either.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self.bypassed = False

    def _connection(self) -> sqlite3.Connection | None:
        if self._db is None and not self.bypassed:
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as exc:
                self._raise_if_full(exc)
                if "not a database" in str(exc) or "malformed" in str(exc):
                    self._move_aside(exc)
                else:
                    self._bypass(f"cannot be opened for writing ({exc})")
            except OSError as exc:
                self._bypass(f"cannot be created ({exc.strerror or exc})")
        return self._db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")
            db.execute("SELECT 1 FROM vectors LIMIT 1").fetchall()
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, problem: Exception) -> None:
        """Keep the damaged file for a post-mortem under another name and start an empty cache."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._db = self._open()
        except (OSError, sqlite3.DatabaseError) as exc:
            self._bypass(f"is damaged ({problem}) and could not be replaced ({exc})")
            return
        _warn(f"embedding cache {self.path} was damaged ({problem}): moved aside to {aside.name}, starting empty",
              aside=str(aside))

    def _raise_if_full(self, exc: sqlite3.DatabaseError) -> None:
        if "full" in str(exc):  # SQLITE_FULL: "database or disk is full"
            raise CacheFull(errno.ENOSPC, f"embedding cache {self.path}: the disk is full ({exc})") from None

    def _bypass(self, why: str) -> None:
        self.bypassed, self._db = True, None
        _warn(f"embedding cache {self.path} {why}: embedding without it")

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among keys."""
        found: dict[str, np.ndarray] = {}
        db = self._connection()
        try:
            for start in range(0, len(keys), 500) if db is not None else ():
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                for key, dim, blob in db.execute(f"SELECT key, dim, vec FROM vectors WHERE key IN ({marks})", chunk):
                    found[key] = np.frombuffer(blob, dtype=np.float32, count=dim)
        except sqlite3.DatabaseError as exc:  # damaged past its first page: what was found so far is still good
            self.close()
            self._bypass(f"cannot be read ({exc})")
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors (one transaction); raises CacheFull when the disk is full."""
        db = self._connection()
        if db is None:
            return
        rows = [(k, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
        except sqlite3.DatabaseError as exc:
            self._raise_if_full(exc)
            self.close()
            self._bypass(f"cannot be written ({exc})")

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None


def _warn(message: str, **fields: Any) -> None:
    event("cache", message, logging.WARNING, **fields)


class BatchExecutor(Protocol):
    """Encodes batches of texts somewhere: in this process (LocalExecutor) or on a cluster (cluster.py)."""

    def map(self, encoder: DenseEncoder, batches: Sequence[list[str]]) -> Iterator[tuple[int, np.ndarray]]:
        """(batch number, vectors of shape (len(batch), dim), float32) for every batch, in any order."""
        ...


class LocalExecutor:
    """Encodes batch after batch in this process, with the encoder's own threads."""

    def map(self, encoder: DenseEncoder, batches: Sequence[list[str]]) -> Iterator[tuple[int, np.ndarray]]:
        """(batch number, vectors) in order, each computed when asked for."""
        for number, texts in enumerate(batches):
            yield number, encoder.encode(texts)


def encode_cached(
    encoder: DenseEncoder,
    texts: Sequence[str],
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
    executor: BatchExecutor | None = None,
) -> np.ndarray:
    """Vectors of shape (len(texts), dim), float32: from the cache where present, else encoded in batches.

    on_batch(n) is called after each batch with the number of texts it covered (cached ones included),
    for progress bars; batches are written to the cache as they finish, so an interrupted run resumes.
    executor decides where the batches are encoded (default: in this process).
    """
    identity = encoder.identity()
    keys = [cache_key(identity, t) for t in texts]
    cached = cache.get_many(keys) if cache is not None else {}
    if on_batch and cached:
        on_batch(sum(1 for k in keys if k in cached))
    first_row: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k not in cached:
            first_row.setdefault(k, i)
    todo = list(first_row.values())  # a text repeated in the input is embedded once
    # Rows, not distinct texts: a text repeated among the cached ones was counted once per row above.
    uncached_rows = len(keys) - sum(1 for k in keys if k in cached)
    if on_batch and uncached_rows > len(todo):
        on_batch(uncached_rows - len(todo))
    vectors: dict[str, np.ndarray] = dict(cached)
    batches = [todo[start:start + batch_size] for start in range(0, len(todo), batch_size)]
    runner = executor or LocalExecutor()
    for number, encoded in runner.map(encoder, [[texts[i] for i in batch] for batch in batches]):
        batch = batches[number]
        fresh = {keys[i]: encoded[j] for j, i in enumerate(batch)}
        if cache is not None:
            cache.put_many(fresh)
        vectors.update(fresh)
        if on_batch:
            on_batch(len(batch))
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False)
