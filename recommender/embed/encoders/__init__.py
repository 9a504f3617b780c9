"""Encoders behind one interface: dense neural encoders and the lexical TF-IDF model."""
from __future__ import annotations

from .base import DenseEncoder, EncoderUnavailable, l2_normalize
from .tfidf import TfidfModel

DENSE_KINDS = ("e5", "use", "sbert")


def make_dense_encoder(kind: str, threads: int = 2, model: str = "") -> DenseEncoder:
    """A dense encoder of the given kind; the backend package is imported only when it first encodes."""
    if kind == "e5":
        from .e5 import E5Encoder

        return E5Encoder(threads)
    if kind == "use":
        from .use import UseEncoder

        return UseEncoder(threads)
    if kind == "sbert":
        from .sbert import SentenceTransformerEncoder

        return SentenceTransformerEncoder(threads, model=model)
    raise ValueError(f"unknown encoder kind {kind!r} (known: {', '.join(DENSE_KINDS)})")


__all__ = ["DENSE_KINDS", "DenseEncoder", "EncoderUnavailable", "TfidfModel", "l2_normalize", "make_dense_encoder"]
