"""Products of a few rows of a large sparse matrix, in numpy.

scipy's row indexing and sparse products cost 50-400 microseconds each for a few dozen rows, mostly in
validation and in transposes that walk the whole vocabulary (10^5 terms); a related-by-id request needs
several. Gathering the rows' non-zeros directly and matching them against the query's sorted terms takes a
few microseconds and gives the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse


def gather(matrix: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zeros of matrix[rows] as (position of the row in rows, column, value) arrays."""
    if hasattr(matrix, "extra"):  # a snapshot's rows with received articles' after them (index.live.Stacked)
        rows = np.asarray(rows, dtype=np.int64)
        in_base = rows < matrix.base.shape[0]
        parts = [(np.flatnonzero(in_base), gather(matrix.base, rows[in_base])),
                 (np.flatnonzero(~in_base), gather(matrix.extra, rows[~in_base] - matrix.base.shape[0]))]
        return tuple(np.concatenate(arrays) for arrays in  # type: ignore[return-value]
                     zip(*[(at[owner], columns, values) for at, (owner, columns, values) in parts]))
    if not isinstance(matrix, sparse.csr_matrix):
        matrix, rows = matrix[rows], np.arange(len(rows))
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    lengths = (ends - starts).astype(np.int64)
    owner = np.repeat(np.arange(rows.size), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts.astype(np.int64), lengths) + offsets
    return owner, np.asarray(matrix.indices[positions]), np.asarray(matrix.data[positions], dtype=np.float32)


def similarities_to(matrix: Any, rows: np.ndarray, query: sparse.csr_matrix) -> np.ndarray:
    """Dot product of each of matrix[rows] with a (1, n_terms) sparse query: (len(rows),) float32."""
    owner, columns, values = gather(matrix, rows)
    order = np.argsort(query.indices)
    terms, weights = query.indices[order], np.asarray(query.data, dtype=np.float32)[order]
    if terms.size == 0 or columns.size == 0:
        return np.zeros(len(rows), dtype=np.float32)
    at = np.minimum(np.searchsorted(terms, columns), terms.size - 1)
    hit = terms[at] == columns
    return np.bincount(owner[hit], weights=values[hit] * weights[at[hit]], minlength=len(rows)).astype(np.float32)


def gram(matrix: Any, rows: np.ndarray, query: sparse.csr_matrix | None = None) -> np.ndarray:
    """Dot products of matrix[rows] with each other, float32; with a (1, n_terms) query, that comes first:
    (1 + len(rows)) square, row and column 0 being the query's products with the rows."""
    owner, columns, values = gather(matrix, rows)
    size = len(rows)
    if query is not None:
        owner = np.concatenate([np.zeros(query.indices.size, dtype=owner.dtype), owner + 1])
        columns = np.concatenate([query.indices, columns])
        values = np.concatenate([np.asarray(query.data, dtype=np.float32), values])
        size += 1
    products = np.zeros((size, size), dtype=np.float32)
    # The diagonal is each row's squared norm; off it, only terms held by two or more rows count.
    np.fill_diagonal(products, np.bincount(owner, weights=values * values, minlength=size))
    order = np.argsort(columns)
    columns, owner, values = columns[order], owner[order], values[order]
    shared = np.zeros(columns.size, dtype=bool)
    shared[1:] = columns[1:] == columns[:-1]
    shared[:-1] |= shared[1:]
    if shared.any():
        # Every pair of entries in one column adds its product: a few thousand pairs, where a dense
        # (rows x shared terms) product would multiply millions of zeros.
        columns, owner, values = columns[shared], owner[shared], values[shared]
        starts = np.flatnonzero(np.concatenate([[True], columns[1:] != columns[:-1]]))
        sizes = np.diff(np.append(starts, columns.size))
        per_entry = np.repeat(sizes, sizes)
        left = np.repeat(np.arange(columns.size), per_entry)
        first = np.repeat(np.repeat(starts, sizes), per_entry)
        right = first + np.arange(left.size) - np.repeat(np.cumsum(per_entry) - per_entry, per_entry)
        other = left != right
        left, right = left[other], right[other]
        cross = np.bincount(owner[left] * size + owner[right], weights=values[left] * values[right],
                            minlength=size * size)
        products += cross.reshape(size, size).astype(np.float32)
    return products


@dataclass(frozen=True)
class SparseRow:
    """One row of a sparse matrix as its terms and weights: what the functions here read of a query
    (a csr_matrix of one row works as well, but costs ~100 us to build)."""

    indices: np.ndarray
    data: np.ndarray
    n_terms: int

    def toarray(self) -> np.ndarray:
        """The row as a dense (1, n_terms) array."""
        dense = np.zeros((1, self.n_terms), dtype=np.float32)
        dense[0, self.indices] = self.data
        return dense


def row(matrix: Any, index: int) -> Any:
    """Row index of matrix as a SparseRow (a csr_matrix for other matrix types)."""
    if not isinstance(matrix, sparse.csr_matrix):
        return matrix[index]
    start, end = int(matrix.indptr[index]), int(matrix.indptr[index + 1])
    return SparseRow(np.asarray(matrix.indices[start:end]), np.asarray(matrix.data[start:end]), matrix.shape[1])
