"""Answer models: what each endpoint answers, declared for /openapi.json.

The answers themselves are built by payloads.py (shared with the CLI's --json) and the views; the fuzz test
checks every answer it gets against these declarations, and tests/serve/test_models.py real answers too.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class Error(BaseModel):
    """Every error: a stable code for programs, a sentence for people."""

    error: str
    message: str


class Picture(BaseModel):
    """A story's picture (http or https), its text for screen readers and its size where known."""

    url: str
    alt: str
    width: int | None
    height: int | None


class Story(BaseModel):
    """What a reader's page shows of one story."""

    id: str
    title: str
    teaser: str
    url: str
    published_at: datetime
    section: str
    lang: str
    image: Picture | None


class Item(Story):
    """A related story: its score (what it was ranked by), its calibrated relatedness (0..1, the same scale in
    every index of a profile), how it relates to the article, and the click link that counts a click on it."""

    score: float
    relatedness: float
    relation: Literal["same_story", "follow_up", "background", "related_topic", "fallback"]
    click_url: str


class Related(BaseModel):
    """A related list (article_id is null for a draft), with the heading a reader's block shows above it in the
    article's language (lang: the article's, or English where there is no heading in it); rid: this answer's
    recommendation id (reader events name it), arm: the A/B arm of the placement it was ranked by."""

    article_id: str | None
    items: list[Item]
    index_version: str
    lang: str
    heading: str
    rid: str
    placement: str | None
    arm: str | None


class Overrides(BaseModel):
    """An article's pins and blocks, with their audit trail."""

    article_id: str
    overrides: list[dict[str, Any]]
    audit: list[dict[str, Any]]


class Explained(BaseModel):
    """A related list as readers see it, with every item's reasons."""

    article: Story
    items: list[dict[str, Any]]
    removed: dict[str, int]
    considered: int
    overrides: list[dict[str, Any]]
    index_version: str
    profile: str


class Written(BaseModel):
    """An article received through PUT."""

    article_id: str
    created: bool
    index_version: str


class TakenDown(BaseModel):
    """An article taken down."""

    article_id: str
    taken_down: bool
    in_index: bool


class Found(BaseModel):
    """The editors' search: up to 20 stories, newest first."""

    articles: list[Story]


class AuditTrail(BaseModel):
    """Audit entries, newest first."""

    entries: list[dict[str, Any]]


class Health(BaseModel):
    """The process answers."""

    status: str


class Ready(BaseModel):
    """An index with articles is loaded."""

    status: str
    index_version: str
    articles: int
    profile: str


class Accepted(BaseModel):
    """Reader events counted, and those ignored (a rid not drawn for their article and placement)."""

    accepted: int
    ignored: int


class ArmRate(BaseModel):
    """A rate of clicks in impressions with its 95 % interval (null without impressions)."""

    impressions: int
    clicks: int
    ctr: float | None
    ctr_low: float | None
    ctr_high: float | None


class ArmFigures(ArmRate):
    """An A/B arm under a profile, compared with the placement's first arm."""

    arm: str
    profile: str
    p_value: float | None
    verdict: str


class PositionRate(ArmRate):
    """Clicks at a position of the blocks that showed it."""

    position: int


class DayRate(ArmRate):
    """A day's rate (UTC)."""

    day: str


class PlacementFigures(ArmRate):
    """A placement's click-through, per arm, position and day."""

    placement: str
    note: str
    arms: list[ArmFigures]
    positions: list[PositionRate]
    days: list[DayRate]


class ClickFigures(BaseModel):
    """Click-through figures since a day (UTC)."""

    since: str
    placements: list[PlacementFigures]
