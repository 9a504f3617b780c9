"""How a suggestion relates to the article it is shown under: one label per link, from calibrated relatedness
and publication order.

* same_story : relatedness ≥ SAME_STORY (rated "somewhat the same story" or closer, see ingest/calibration.py)
  and published within the story window of the article (the same event or development)
* follow_up : the same story, published more than the window after the article
* background : the same story, published more than the window before the article (its antecedents)
* related_topic : below SAME_STORY: the same subject, another event
* fallback : not chosen for its relatedness: a fresh story filling a list that had too few (fallback.py)

The threshold is SemEval's "same story" point, fixed before any test; on ECB+ dev (never fitted on) the
default profile's same-story labels are 0.918 precise with 0.827 recall over each article's top 10
(`bench/fit_relatedness.py`, docs/quality.md).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from ..ingest.calibration import SAME_STORY

Relation = Literal["same_story", "follow_up", "background", "related_topic", "fallback"]
RELATIONS: tuple[str, ...] = ("same_story", "follow_up", "background", "related_topic", "fallback")
SAME_STORY_RELATIONS = frozenset({"same_story", "follow_up", "background"})
SECONDS_PER_DAY = 86400.0


def relation(relatedness: float, published_at: float, reference: float | None, window_days: float) -> Relation:
    """The label of one suggestion; reference is the article's publication time (None: not known, so the
    order cannot tell a follow-up from background and the link is the same story or a related topic)."""
    if relatedness < SAME_STORY:
        return "related_topic"
    if reference is None:
        return "same_story"
    delta = (published_at - reference) / SECONDS_PER_DAY
    if delta > window_days:
        return "follow_up"
    if delta < -window_days:
        return "background"
    return "same_story"


def same_story(relatedness: np.ndarray) -> np.ndarray:
    """For each relatedness, whether the pair counts as one story (labels same_story, follow_up, background)."""
    return np.asarray(relatedness) >= SAME_STORY
