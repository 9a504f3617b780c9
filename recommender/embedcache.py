"""Embeddings cached by (encoder identity, prepared text), so unchanged articles are never embedded twice."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from .encoders import DenseEncoder


def cache_key(identity: dict[str, Any], text: str) -> str:
    """Stable key of one text under one encoder identity."""
    payload = json.dumps(identity, sort_keys=True) + "\x00" + text
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """An SQLite file of float32 vectors; safe for several processes (WAL), cheap to look up in bulk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among keys."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for key, dim, blob in self._db.execute(f"SELECT key, dim, vec FROM vectors WHERE key IN ({marks})", chunk):
                found[key] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors (one transaction)."""
        rows = [(k, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        """Close the database."""
        self._db.close()


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
    if on_batch and len(keys) - len(cached) > len(todo):
        on_batch(len(keys) - len(cached) - len(todo))
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
