"""recommender: related-content engine for news sites.

The flow goes one way, one subpackage per step (docs/architecture.md):
ingest (corpus, text preparation, profiles) → embed (encoders, signals, cache, cluster) → index (snapshot
format, search structures, metadata, live overlay) → rank (ranking, explanations, editorial rules,
evaluation) → engine → serve (HTTP) and jobs (index job); the command line (cli) sits on top.
The public names are re-exported here; the package imports without Flask.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .config import ConfigError, Settings, load_settings  # noqa: E402
from .embed import RawText, SignalEncoder  # noqa: E402
from .engine import Recommender, UnknownArticle  # noqa: E402
from .index import IndexProblem, Snapshot, load_snapshot, write_snapshot  # noqa: E402
from .ingest import Article, Profile, get_profile, load_corpus  # noqa: E402
from .jobs import build_index  # noqa: E402
from .rank import Filters, RankOptions, Related, Suggestion, evaluate, rank  # noqa: E402

__all__ = [
    "__version__", "ConfigError", "Settings", "load_settings", "RawText", "SignalEncoder", "Recommender",
    "UnknownArticle", "IndexProblem", "Snapshot", "load_snapshot", "write_snapshot", "Article", "Profile",
    "get_profile", "load_corpus", "build_index", "Filters", "RankOptions", "Related", "Suggestion", "evaluate",
    "rank",
]
