"""Products of a few rows of a large sparse matrix, in numpy.

scipy's row indexing and sparse products cost 50-400 microseconds each for a few dozen rows, mostly in
validation and in transposes that walk the whole vocabulary (10^5 terms); a related-by-id request needs
several. Gathering the rows' non-zeros directly and matching them against the query's sorted terms takes a
few microseconds and gives the same numbers.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse


def gather(matrix: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zeros of matrix[rows] as (position of the row in rows, column, value) arrays."""
    if not isinstance(matrix, sparse.csr_matrix):
        matrix, rows = matrix[rows], np.arange(len(rows))  # a stacked view: let it assemble the rows
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


def pairwise(matrix: Any, rows: np.ndarray) -> np.ndarray:
    """Dot products of matrix[rows] with each other: (len(rows), len(rows)) float32."""
    owner, columns, values = gather(matrix, rows)
    products = np.zeros((len(rows), len(rows)), dtype=np.float64)
    # The diagonal is each row's squared norm; off it, only terms held by two or more rows count.
    np.fill_diagonal(products, np.bincount(owner, weights=values * values, minlength=len(rows)))
    order = np.argsort(columns, kind="stable")
    columns, owner, values = columns[order], owner[order], values[order]
    shared = np.zeros(columns.size, dtype=bool)
    shared[1:] = columns[1:] == columns[:-1]
    shared[:-1] |= shared[1:]
    if shared.any():
        columns, owner, values = columns[shared], owner[shared], values[shared]
        slot = np.cumsum(np.concatenate([[True], columns[1:] != columns[:-1]])) - 1
        dense = np.zeros((len(rows), int(slot[-1]) + 1), dtype=np.float64)
        dense[owner, slot] = values  # a row holds each term once
        cross = dense @ dense.T
        np.fill_diagonal(cross, 0.0)
        products += cross
    return products.astype(np.float32)


def row(matrix: Any, index: int) -> sparse.csr_matrix:
    """One row as a (1, n_terms) matrix, without scipy's general indexing (a tenth of the time)."""
    if not isinstance(matrix, sparse.csr_matrix):
        return matrix[index]
    start, end = int(matrix.indptr[index]), int(matrix.indptr[index + 1])
    return sparse.csr_matrix((np.asarray(matrix.data[start:end]), np.asarray(matrix.indices[start:end]),
                              np.array([0, end - start])), shape=(1, matrix.shape[1]))
