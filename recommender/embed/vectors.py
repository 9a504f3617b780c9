"""What embedding produces: every article's vectors per signal (SignalArrays, what an index stores) and one
query's vectors (QueryVectors, what ranking scores with). Plain containers, so the index and ranking layers
above use them without depending on the encoders."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from .encoders import TfidfModel


@dataclass
class SignalArrays:
    """The computed representation of every article for each signal of a profile.

    dense : signal name -> ndarray of shape (n_articles, dim), float32, rows of unit length
    sparse : signal name -> csr_matrix of shape (n_articles, n_terms), float32, rows of unit length
    sparse_models : signal name -> the fitted TfidfModel that made the sparse rows
    """

    dense: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: dict[str, sparse.csr_matrix] = field(default_factory=dict)
    sparse_models: dict[str, TfidfModel] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryVectors:
    """The query in every signal of a profile: dense unit vectors and sparse (1, n_terms) rows (csr_matrix
    or sparserows.SparseRow)."""

    dense: dict[str, np.ndarray]
    sparse: dict[str, Any]
