"""Jobs: the offline index job (incremental, resumable, guarded, published atomically) and how it reports.

Imports the engine and everything below it, never serve.
"""
from .index_job import BuildSummary, Guards, IndexLocked, PublishRefused, build_index

__all__ = ["BuildSummary", "Guards", "IndexLocked", "PublishRefused", "build_index"]
