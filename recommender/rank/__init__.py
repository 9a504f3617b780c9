"""Rank: related stories from a snapshot (fusion, filters, freshness, versions), explanations, the editors'
rules and the evaluation on labelled data.

Imports index, embed, ingest and the bottom modules, never the engine, serve or jobs.
"""
from .editorial import EditorialStore, Rules
from .evaluate import DatasetError, evaluate, load_dataset
from .explain import explain
from .ranking import Filters, RankOptions, Related, Suggestion, rank, rank_rounds

__all__ = [
    "EditorialStore", "Rules", "DatasetError", "evaluate", "load_dataset", "explain",
    "Filters", "RankOptions", "Related", "Suggestion", "rank", "rank_rounds",
]
