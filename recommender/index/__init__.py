"""Index: the snapshot format on disk, its metadata columns, the search contract (exact and graph) and the
live overlay.

Imports ingest, embed and the bottom modules, never rank, the engine or anything above.
"""
from .graph import SearchLayout
from .live import LiveStore, live_view
from .search import ExactSearch, GraphSearch, Search
from .snapshot import (
    FORMAT_VERSION,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    IndexProblem,
    Snapshot,
    load_snapshot,
    profile_fingerprint,
    publish,
    resolve_snapshot,
    write_snapshot,
)

__all__ = [
    "SearchLayout", "ExactSearch", "GraphSearch", "Search", "LiveStore", "live_view", "FORMAT_VERSION",
    "IndexCorrupt", "IndexMismatch", "IndexNotFound", "IndexProblem", "Snapshot", "load_snapshot", "profile_fingerprint", "publish", "resolve_snapshot",
    "write_snapshot",
]
