"""Embed: encoders, the signals of a profile for articles and queries, the embedding cache, cluster runs.

Imports ingest and the bottom modules, never index, rank or anything above.
"""
from .cache import CacheFull, EmbeddingCache
from .cluster import ClusterAddressError, ClusterError, dask_executor
from .encoders import DenseEncoder, EncoderUnavailable, TfidfModel
from .signals import RawText, SignalEncoder
from .vectors import QueryVectors, SignalArrays

__all__ = [
    "CacheFull", "EmbeddingCache", "ClusterAddressError", "ClusterError", "dask_executor",
    "DenseEncoder", "EncoderUnavailable", "TfidfModel", "RawText", "SignalEncoder", "QueryVectors", "SignalArrays",
]
