"""Article metadata of a snapshot, read on demand: a million articles must not be parsed at start-up.

`articles.jsonl` is memory-mapped and a row's line is decoded when asked for (a few microseconds); ids are
found through a sorted array of 64-bit id hashes (a binary search, then the line is checked); languages and
sections are small integer codes, so filters compare integers over the candidate rows only.
"""
from __future__ import annotations

import json
import mmap
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import xxhash


def map_file(path: Path) -> Any:
    """A file's bytes, memory-mapped read-only (an empty file cannot be mapped: b"")."""
    if not path.stat().st_size:
        return b""
    with path.open("rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def lines_with_offsets(lines: Sequence[bytes]) -> tuple[bytes, np.ndarray]:
    """Lines joined, and the byte offset of each (n + 1 values, the last is the total length)."""
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum([len(line) for line in lines], out=offsets[1:])
    return b"".join(lines), offsets


def id_hash(article_id: str) -> int:
    """The 64-bit hash an id is looked up by."""
    return xxhash.xxh3_64_intdigest(article_id.encode("utf-8"))


class ArticleTable(Sequence[dict[str, Any]]):
    """Metadata dicts by row: the snapshot's lines, decoded on access, then rows appended in memory."""

    def __init__(self, blob: Any, offsets: np.ndarray, extra: Sequence[dict[str, Any]] = ()) -> None:
        self._blob, self._offsets, self._extra = blob, offsets, list(extra)
        self._base = int(offsets.shape[0]) - 1

    @classmethod
    def open(cls, jsonl: Path, offsets: np.ndarray) -> "ArticleTable":
        """The table of a snapshot's articles.jsonl with its line offsets."""
        return cls(map_file(jsonl), offsets)

    def __len__(self) -> int:
        return self._base + len(self._extra)

    def __getitem__(self, row: Any) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        if not isinstance(row, (int, np.integer)):
            raise TypeError("an article table is indexed by row number")
        row = int(row)
        if row < 0:
            row += len(self)
        if 0 <= row < self._base:
            return json.loads(self._blob[int(self._offsets[row]):int(self._offsets[row + 1])])
        if self._base <= row < len(self):
            return self._extra[row - self._base]
        raise IndexError(f"row {row} out of range")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in range(len(self)):
            yield self[row]

    def extended(self, extra: Sequence[dict[str, Any]]) -> "ArticleTable":
        """A table with more rows after these (the base is shared, not copied)."""
        return ArticleTable(self._blob, self._offsets, [*self._extra, *extra])


class RowLookup(Mapping[str, int]):
    """id -> row: a binary search in the snapshot's sorted id hashes (verified against the row's id), with
    rows added later (live articles) in a small dict that takes precedence."""

    def __init__(self, hashes: np.ndarray, rows: np.ndarray, articles: Sequence[dict[str, Any]],
                 extra: Mapping[str, int] | None = None) -> None:
        self._hashes, self._rows, self._articles = hashes, rows, articles
        self._extra = dict(extra or {})

    def __getitem__(self, article_id: str) -> int:
        if not isinstance(article_id, str):
            raise KeyError(article_id)
        row = self._extra.get(article_id)
        if row is None:
            row = self._base_row(article_id)
        if row is None:
            raise KeyError(article_id)
        return row

    def _base_row(self, article_id: str) -> int | None:
        wanted = np.uint64(id_hash(article_id))
        at = int(np.searchsorted(self._hashes, wanted))
        while at < self._hashes.shape[0] and self._hashes[at] == wanted:
            row = int(self._rows[at])
            if self._articles[row]["id"] == article_id:
                return row
            at += 1
        return None

    def __contains__(self, article_id: object) -> bool:
        return isinstance(article_id, str) and self.get(article_id) is not None

    def __len__(self) -> int:
        return int(self._hashes.shape[0]) + sum(1 for i in self._extra if self._base_row(i) is None)

    def __iter__(self) -> Iterator[str]:
        for row in self._rows:
            yield self._articles[int(row)]["id"]
        yield from (i for i in self._extra if self._base_row(i) is None)

    def extended(self, extra: Mapping[str, int], articles: Sequence[dict[str, Any]]) -> "RowLookup":
        """A lookup that also knows these ids (over the extended article table)."""
        return RowLookup(self._hashes, self._rows, articles, {**self._extra, **extra})


def sorted_id_hashes(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes ascending as uint64, the row of each) for a RowLookup."""
    hashes = np.fromiter((id_hash(i) for i in ids), dtype=np.uint64, count=len(ids))
    order = np.argsort(hashes, kind="stable")
    return hashes[order], order.astype(np.int64)


def jsonl_with_offsets(records: Sequence[Mapping[str, Any]]) -> tuple[bytes, np.ndarray]:
    """Records as JSON lines and the byte offset of each line (n + 1 values, the last is the length)."""
    return lines_with_offsets([(json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8") for r in records])


def encode_column(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Strings as small integer codes into a list of the distinct values (in first-seen order)."""
    table: dict[str, int] = {}
    codes = np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int64, count=len(values))
    dtype = np.uint16 if len(table) < 1 << 16 else np.uint32
    return codes.astype(dtype), list(table)


def codes_of(wanted: Sequence[str], values: Sequence[str]) -> list[int]:
    """The codes of those wanted values that occur at all."""
    position = {v: i for i, v in enumerate(values)}
    return [position[w] for w in wanted if w in position]


class TitleIndex:
    """Casefolded titles, one a line, searched for substrings: an editor's "words of the title" lookup costs
    one pass over the titles (tens of milliseconds at a million), not decoding every article."""

    def __init__(self, blob: Any, offsets: np.ndarray, extra: Sequence[str] = ()) -> None:
        self._blob, self._offsets, self._extra = blob, offsets, [t.casefold() for t in extra]
        self._base = int(offsets.shape[0]) - 1

    @classmethod
    def build(cls, titles: Sequence[str]) -> "TitleIndex":
        """An index of these titles in memory."""
        blob, offsets = cls.encode(titles)
        return cls(blob, offsets)

    @staticmethod
    def encode(titles: Sequence[str]) -> tuple[bytes, np.ndarray]:
        """The file contents of an index: casefolded titles as lines, and each line's byte offset."""
        return lines_with_offsets([(" ".join(t.casefold().split()) + "\n").encode("utf-8") for t in titles])

    @classmethod
    def open(cls, path: Path, offsets: np.ndarray) -> "TitleIndex":
        """The index stored in a snapshot."""
        return cls(map_file(path), offsets)

    def extended(self, titles: Sequence[str]) -> "TitleIndex":
        """An index that also holds these titles, as the next rows."""
        return TitleIndex(self._blob, self._offsets, [*self._extra, *titles])

    def rows_with(self, words: Sequence[str]) -> np.ndarray:
        """Rows whose title contains every one of words (case-insensitive substrings), ascending."""
        words = [w.casefold() for w in words if w.strip()]
        if not words:
            return np.zeros(0, dtype=np.int64)
        found: np.ndarray | None = None
        for word in sorted(words, key=len, reverse=True):  # a long word is usually the rarest
            rows = self._rows_with(word)
            found = rows if found is None else np.intersect1d(found, rows, assume_unique=True)
            if found.size == 0:
                break
        extra = [self._base + i for i, title in enumerate(self._extra) if all(w in title for w in words)]
        return np.concatenate([found, np.asarray(extra, dtype=np.int64)]) if extra else found

    def _rows_with(self, word: str) -> np.ndarray:
        needle = word.encode("utf-8")
        positions = []
        at = self._blob.find(needle)
        while at != -1:
            positions.append(at)
            row_end = int(self._offsets[np.searchsorted(self._offsets, at, side="right")])
            at = self._blob.find(needle, row_end)  # one hit per title is enough
        rows = np.searchsorted(self._offsets, np.asarray(positions, dtype=np.int64), side="right") - 1
        return rows.astype(np.int64)
