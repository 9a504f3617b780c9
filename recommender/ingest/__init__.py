"""Ingest: the article record, reading corpora, text preparation and the ranking profiles.

The first layer: it imports only the bottom modules (`config`, `jsonsafe`, `progress`, `stages`, `db`).
"""
from .corpus import (
    Article,
    CorpusError,
    LoadResult,
    Problem,
    ReadLimits,
    article_from_json,
    load_corpus,
)
from .profiles import (
    BASELINES,
    PROFILES,
    Profile,
    SignalSpec,
    UnknownProfile,
    get_profile,
)
from .textprep import (
    TEXTPREP_VERSION,
    TextView,
    detect_language,
    make_teaser,
    prepare,
    prepare_chunks,
)

__all__ = [
    "Article", "CorpusError", "LoadResult", "Problem", "ReadLimits", "article_from_json", "load_corpus",
    "BASELINES", "PROFILES", "Profile", "SignalSpec", "UnknownProfile", "get_profile",
    "TEXTPREP_VERSION", "TextView", "detect_language", "make_teaser", "prepare", "prepare_chunks",
]
