"""Lexical signals: TF-IDF (scikit-learn) over all words or over name-like tokens, fitted on the indexed corpus.

Names and rare words decide whether two articles report the same event rather than the same kind of
event, which dense encoders blur. The word signal is part of every profile: it also finds near-duplicate
versions of one text.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from ...ingest.textprep import name_tokens
from .base import package_version

TOKEN_PATTERN = r"(?u)\b\w\w+\b"
Analyzer = Literal["words", "names"]


class TfidfModel:
    """fit(texts) learns the vocabulary and IDF; transform(texts) gives L2-normalised sparse rows."""

    def __init__(self, analyzer: Analyzer = "words", sublinear_tf: bool = True, min_df: int = 1) -> None:
        self.analyzer = analyzer
        self.sublinear_tf = sublinear_tf
        self.min_df = min_df

    def _vectorizer_options(self) -> dict[str, Any]:
        if self.analyzer == "names":
            return {"analyzer": name_tokens}
        if self.analyzer == "words":
            return {"token_pattern": TOKEN_PATTERN}
        raise ValueError(f"unknown analyzer {self.analyzer!r} (known: words, names)")

    def identity(self) -> dict[str, Any]:
        """Parameters that determine the vectors (the fitted vocabulary is stored with the index)."""
        return {
            "backend": "scikit-learn",
            "version": package_version("scikit-learn"),
            "analyzer": self.analyzer,
            "sublinear_tf": self.sublinear_tf,
            "min_df": self.min_df,
            "token_pattern": TOKEN_PATTERN,
        }

    def fit(self, texts: Sequence[str]) -> "TfidfModel":
        """Learn vocabulary_ (list of terms) and idf_ (float32 array) from texts."""
        min_df = self.min_df if len(texts) >= self.min_df else 1
        vectorizer = TfidfVectorizer(sublinear_tf=self.sublinear_tf, min_df=min_df, **self._vectorizer_options())
        vectorizer.fit(texts)
        terms = vectorizer.get_feature_names_out()
        self.vocabulary_ = [str(t) for t in terms]
        self.idf_ = vectorizer.idf_.astype(np.float32)
        self._counter = None
        return self

    def set_fitted(self, vocabulary: list[str], idf: np.ndarray) -> "TfidfModel":
        """Restore a fitted model from a stored vocabulary and IDF array."""
        self.vocabulary_ = list(vocabulary)
        self.idf_ = np.asarray(idf, dtype=np.float32)
        self._counter = None
        return self

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Sparse matrix of shape (len(texts), len(vocabulary_)), float32, rows of unit length."""
        if getattr(self, "_counter", None) is None:
            self._counter = CountVectorizer(
                vocabulary={t: i for i, t in enumerate(self.vocabulary_)}, **self._vectorizer_options()
            )
        counts = self._counter.transform(list(texts)).astype(np.float32)
        if self.sublinear_tf:
            counts.data = 1.0 + np.log(counts.data)
        weighted = counts.multiply(self.idf_[np.newaxis, :]).tocsr()
        return normalize(weighted, norm="l2", copy=False).astype(np.float32)
