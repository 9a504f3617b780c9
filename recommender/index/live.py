"""Articles added or changed through the API between two index builds, and the combined view over both.

A PUT stores the article with its dense vectors (an SQLite file in state_dir, or the PostgreSQL database of
state_url: durable, shared by all workers and replicas); each worker lays these rows over its read-only
snapshot (`live_view`) when the store's version changed. The snapshot itself is never modified: the view is a
new object, swapped in whole.
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import sparse

from ..ingest.corpus import Article, article_from_stored
from ..state import Cursor, open_state
from .metadata import ArticleTable, RowLookup, codes_of
from .snapshot import Snapshot, article_metadata

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS live_articles (
    id TEXT PRIMARY KEY, record TEXT NOT NULL, vectors BLOB NOT NULL, updated_at TEXT NOT NULL,
    changed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state VALUES ('version', 0);
"""
# `changed` is the store's change counter at an article's last write: a worker reads again only the articles
# changed since the counter it saw last (reading and decoding all 500 of a busy day took 70 ms per PUT).
# SQLite files made before it get the column by UPGRADES; never change a shipped entry of either list.
UPGRADES = ("ALTER TABLE live_articles ADD COLUMN changed INTEGER NOT NULL DEFAULT 0",)
# The same in PostgreSQL, as numbered migrations (pg.migrate): never change one that has shipped, add the next.
MIGRATIONS = ("""
CREATE TABLE live_articles (
    id TEXT COLLATE "C" PRIMARY KEY, record TEXT NOT NULL, vectors BYTEA NOT NULL, updated_at TEXT NOT NULL
);
INSERT INTO state VALUES ('live', 0) ON CONFLICT DO NOTHING;
""", "ALTER TABLE live_articles ADD COLUMN changed BIGINT NOT NULL DEFAULT 0;")

Received = tuple[Article, dict[str, np.ndarray]]


@dataclass(frozen=True)
class LiveRead:
    """What a read of the store found: its change counter, the ids it holds, and the articles (with vectors)
    changed since the counter given to the read (all of them for a first read)."""

    version: int
    ids: frozenset[str]
    changed: dict[str, Received]


class LiveStore:
    """Articles received through the API, with their vectors, in their database (state.open_state)."""

    def __init__(self, where: str | Path) -> None:
        self.where = where
        self.db = open_state(where, "live", SCHEMA, MIGRATIONS, upgrades=UPGRADES)

    def version(self) -> int:
        """The number of changes ever made."""
        return int(self.db.one("SELECT value FROM state WHERE key = ?", (self.db.version_key,))[0])

    def put(self, article: Article, vectors: dict[str, np.ndarray]) -> bool:
        """Store (insert or replace) an article and its vectors; True if it was new to this store."""
        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(v, dtype=np.float32) for name, v in vectors.items()})
        record = json.dumps(article.to_json(), ensure_ascii=False)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")

        def apply(db: Cursor) -> bool:
            # The counter first: its row lock orders concurrent PUTs, so "new" is decided by one at a time.
            db.execute("UPDATE state SET value = value + 1 WHERE key = ?", (self.db.version_key,))
            version = db.execute("SELECT value FROM state WHERE key = ?", (self.db.version_key,)).fetchone()[0]
            new = db.execute("SELECT 1 FROM live_articles WHERE id = ?", (article.id,)).fetchone() is None
            db.execute("INSERT INTO live_articles (id, record, vectors, updated_at, changed) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (id) DO UPDATE SET record = excluded.record, vectors = excluded.vectors, "
                       "updated_at = excluded.updated_at, changed = excluded.changed",
                       (article.id, record, buffer.getvalue(), now, version))
            return new

        return self.db.write(apply)  # StateUnavailable if the database refuses

    def articles(self) -> tuple[int, list[Received]]:
        """(version, every stored article with its vectors), read in one transaction."""
        read = self.read()
        return read.version, [read.changed[i] for i in sorted(read.changed)]

    def read(self, since: int = -1) -> LiveRead:
        """The counter, every id, and the articles changed after counter `since` (-1: all), in one read
        transaction (one snapshot of the database: an article written after the counter read is not seen, and
        is read with the next counter)."""
        def read(db: Cursor) -> tuple[int, list[Any]]:
            version = int(db.execute("SELECT value FROM state WHERE key = ?", (self.db.version_key,)).fetchone()[0])
            rows = db.execute("SELECT id, CASE WHEN changed > ? OR ? < 0 THEN record END, "
                              "CASE WHEN changed > ? OR ? < 0 THEN vectors END FROM live_articles",
                              (since, since, since, since)).fetchall()
            return version, rows

        version, rows = self.db.read(read)
        changed = {}
        for article_id, record, blob in rows:
            if record is not None:
                with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as arrays:
                    changed[article_id] = (article_from_stored(json.loads(record)),
                                           {k: arrays[k] for k in arrays.files})
        return LiveRead(version, frozenset(row[0] for row in rows), changed)

    def close(self) -> None:
        """Close the database."""
        self.db.close()


class Stacked:
    """Rows of a base matrix followed by extra rows, without copying the base (often memory-mapped).

    Supports what ranking needs: `@ vector`, row selection with an int or an index array, and shape.
    """

    def __init__(self, base: Any, extra: Any) -> None:
        self.base, self.extra = base, extra
        self.is_sparse = sparse.issparse(base)
        # Rows of a memory-mapped array are read through a plain ndarray view: np.memmap's own indexing wraps
        # every result in a new memmap object, several times the cost of the read itself for a hundred rows.
        self._rows = base.view(np.ndarray) if isinstance(base, np.ndarray) else base
        self.shape = (base.shape[0] + extra.shape[0], base.shape[1])

    def __matmul__(self, vector: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(self.base @ vector).ravel(), np.asarray(self.extra @ vector).ravel()])

    def __getitem__(self, rows: Any) -> Any:
        n = self.base.shape[0]
        if isinstance(rows, (int, np.integer)):
            return self.base[int(rows)] if rows < n else self.extra[int(rows) - n]
        rows = np.asarray(rows)
        in_base = rows < n
        # The usual request reads only indexed rows (graph candidates, lists): no stacking, no reordering, so a
        # few received articles cost nothing per request (vstack + reorder of sparse rows doubled its time).
        if in_base.all():
            return self._rows[rows]
        if not in_base.any():
            return self.extra[rows - n] if self.is_sparse else self.extra[rows - n].astype(self._rows.dtype)
        if not self.is_sparse:  # each part into its place, in the base's type: no concatenation, no reordering
            out = self._rows[rows.clip(max=n - 1)]  # a copy: the base rows, placeholders for the rest
            added = np.flatnonzero(~in_base)
            out[added] = self.extra[rows[added] - n]
            return out
        parts = [self.base[rows[in_base]], self.extra[rows[~in_base] - n]]
        stacked = sparse.vstack(parts).tocsr()
        # Put the rows back in the order they were asked for.
        order = np.argsort(np.concatenate([np.flatnonzero(in_base), np.flatnonzero(~in_base)]), kind="stable")
        return stacked[order]


class LiveRows:
    """What a view needs of each live article (metadata with teaser and content hash; lexical rows against one
    snapshot's fitted models), computed once per article as read from the store. Every view lays all live
    articles again, but a PUT changes one: recomputing 500 cost 60 ms of a reader's request per PUT."""

    def __init__(self, models: dict[str, Any],
                 compute: Callable[[list[Article], dict[str, Any]], dict[str, sparse.csr_matrix]]) -> None:
        self.models, self.compute = models, compute
        # Keyed by the article object (kept in the value, so its id() is not reused): a changed article is a
        # new object from the store, and the engine keeps the unchanged ones from read to read.
        self._metadata: dict[int, tuple[Article, dict[str, Any]]] = {}
        self._lexical: dict[int, tuple[Article, dict[str, sparse.csr_matrix]]] = {}
        self._placed: dict[int, tuple[Article, bool, int | None]] = {}
        self._placed_in: Snapshot | None = None

    def placed(self, article: Article, base: Snapshot) -> tuple[bool, int | None]:
        """(whether the article is new to base's index or says something else than its indexed version, its
        row in base's index or None)."""
        if base is not self._placed_in:
            self._placed, self._placed_in = {}, base
        kept = self._placed.get(id(article))
        if kept is None or kept[0] is not article:
            row = base.row_of.get(article.id)
            fresh = row is None or base.articles[row]["content_hash"] != self.metadata(article)["content_hash"]
            kept = self._placed[id(article)] = (article, fresh, row)
        return kept[1], kept[2]

    def metadata(self, article: Article) -> dict[str, Any]:
        """The article's snapshot metadata (snapshot.article_metadata)."""
        kept = self._metadata.get(id(article))
        if kept is None or kept[0] is not article:
            kept = self._metadata[id(article)] = (article, article_metadata(article))
        return kept[1]

    def lexical(self, articles: list[Article]) -> dict[str, sparse.csr_matrix]:
        """Signal name -> csr_matrix with a row per article (at least one), in order."""
        missing = [a for a in articles if self._lexical.get(id(a), (None,))[0] is not a]
        if missing:
            computed = self.compute(missing, self.models)
            for i, article in enumerate(missing):
                self._lexical[id(article)] = (article, {name: m[i] for name, m in computed.items()})
        rows = [self._lexical[id(a)][1] for a in articles]
        return {name: stack_rows([row[name] for row in rows]) for name in rows[0]}

    def keep_only(self, articles: list[Article]) -> None:
        """Forget every article but these (an article changed again, or gone from the store)."""
        wanted = {id(a) for a in articles}
        self._metadata = {key: value for key, value in self._metadata.items() if key in wanted}
        self._lexical = {key: value for key, value in self._lexical.items() if key in wanted}
        self._placed = {key: value for key, value in self._placed.items() if key in wanted}


def stack_rows(rows: list[sparse.csr_matrix]) -> sparse.csr_matrix:
    """One-row csr matrices (at least one) stacked into one, built from their arrays (sparse.vstack of 500
    rows: 20 ms)."""
    width = rows[0].shape[1]
    indptr = np.concatenate([[0], np.cumsum([row.nnz for row in rows])])
    return sparse.csr_matrix((np.concatenate([row.data for row in rows]), np.concatenate([row.indices for row in rows]),
                              indptr), shape=(len(rows), width))


def live_view(
    base: Snapshot,
    live: list[Received],
    version: int,
    rows: LiveRows,
) -> Snapshot:
    """The snapshot with the live articles laid over it: new ids appended, changed ones shadowing their
    indexed version. Live articles identical to their indexed version (a re-index caught up) are skipped.

    rows : the live articles' metadata and lexical rows against base's models, kept from the last view.
    """
    dims = {name: matrix.shape[1] for name, matrix in base.dense.items()}
    usable = [(a, v) for a, v in live if all(name in v and v[name].shape == (dim,) for name, dim in dims.items())]
    if len(usable) < len(live):
        # Embedded under another profile: they come back with the next PUT or index run of those articles.
        log.warning("%d live article(s) lack vectors for this index's signals and are not served",
                    len(live) - len(usable))
    rows.keep_only([a for a, _ in usable])
    fresh = [(a, v) for a, v in usable if rows.placed(a, base)[0]]
    if not fresh:
        return base
    articles = [a for a, _ in fresh]
    dense = {name: Stacked(matrix, np.stack([v[name] for _, v in fresh]).astype(np.float32))
             for name, matrix in base.dense.items()}
    lexical = rows.lexical(articles)
    matrices = {name: Stacked(matrix, lexical[name]) for name, matrix in base.sparse.items()}
    stamps = np.concatenate([base.published_at, [int(a.published_at.timestamp()) for a in articles]]).astype(np.int64)
    shadowed = np.zeros(len(base) + len(articles), dtype=bool)
    for article in articles:
        row = rows.placed(article, base)[1]
        if row is not None:
            shadowed[row] = True
    added = [rows.metadata(a) for a in articles]
    table = base.articles.extended(added) if isinstance(base.articles, ArticleTable) else [*base.articles, *added]
    new_rows = {a.id: len(base) + i for i, a in enumerate(articles)}
    row_of = (base.row_of.extended(new_rows, table) if isinstance(base.row_of, RowLookup)
              else {**base.row_of, **new_rows})
    langs = [*base.lang_values, *sorted({a.lang for a in articles} - set(base.lang_values))]
    sections = [*base.section_values,
                *sorted({a.section.casefold() for a in articles} - set(base.section_values))]
    lang_codes = np.concatenate([base.lang_codes, codes_of([a.lang for a in articles], langs)]).astype(np.uint32)
    section_codes = np.concatenate(
        [base.section_codes, codes_of([a.section.casefold() for a in articles], sections)]).astype(np.uint32)
    manifest = {**base.manifest, "snapshot": f"{base.version}+live{version}"}
    evergreen = None
    if base.evergreen is not None or any(a.evergreen for a in articles):
        old = base.evergreen if base.evergreen is not None else np.zeros(len(base), dtype=bool)
        evergreen = np.concatenate([old, [a.evergreen for a in articles]]).astype(bool)
    return replace(base, manifest=manifest, articles=table, titles=base.titles.extended([a.title for a in articles]),
                   dense=dense, sparse=matrices, published_at=stamps, shadowed=shadowed if shadowed.any() else None,
                   row_of=row_of, lang_codes=lang_codes, lang_values=langs, section_codes=section_codes,
                   section_values=sections, evergreen=evergreen)
