"""Placements: named sets of ranking options for the places a list appears (under an article, in a sidebar,
on an archive page), declared in the configuration; a request names one and may override single options.

Every option is checked here, once, with its bounds: a placement in the configuration file at start-up, the
overrides of a request when it arrives. Options a placement leaves out come from the settings.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from .ranking import FALLBACKS

MAX_HALF_LIFE_DAYS = 36_500.0
MAX_VALUES = 100
_LANG = re.compile(r"[a-z]{2,3}")


class PlacementError(ValueError):
    """An option of a placement or of a request is unknown or out of its bounds."""


@dataclass(frozen=True)
class Options:
    """Ranking options of a placement or a request; None = not given (inherited).

    k : stories in the list; min_relatedness : threshold on calibrated relatedness, 0..1
    fallback : none, recent_same_section or recent (what fills a short list)
    recency_weight : share of freshness in the score, 0..1; half_life_days : its half-life
    max_per_story : cap on suggestions of one story (0 = none); mmr_lambda : 0 < lambda <= 1 (1 = off)
    prefer_lang : this language first; only_before : only stories published before the article
    lang, section, max_age_days : filters, as in a request
    """

    k: int | None = None
    min_relatedness: float | None = None
    fallback: str | None = None
    recency_weight: float | None = None
    half_life_days: float | None = None
    max_per_story: int | None = None
    mmr_lambda: float | None = None
    prefer_lang: str | None = None
    only_before: bool | None = None
    lang: tuple[str, ...] | None = None
    section: tuple[str, ...] | None = None
    max_age_days: float | None = None

    def over(self, base: "Options") -> "Options":
        """These options where given, base's elsewhere."""
        return replace(base, **{f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None})

    def to_json(self) -> dict[str, Any]:
        """The options that are set, as plain values."""
        return {f.name: (list(v) if isinstance(v, tuple) else v) for f in fields(self)
                if (v := getattr(self, f.name)) is not None}


OPTION_NAMES = tuple(f.name for f in fields(Options))

# What a newsroom gets without configuring any: a list under the article that never stays short, a compact
# sidebar with one piece per story, and an archive box of background only.
BUILT_IN: dict[str, Options] = {
    "article_bottom": Options(fallback="recent_same_section"),
    "sidebar": Options(k=3, max_per_story=1, fallback="recent"),
    "archive": Options(only_before=True, recency_weight=0.0),
}


def _number(name: str, value: Any, low: float, high: float, integer: bool = False, open_low: bool = False) -> Any:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)) \
            or not math.isfinite(value) or value > high or value < low or (open_low and value == low):
        bound = f"{'above' if open_low else 'from'} {low:g} to {high:g}"
        raise PlacementError(f"{name} must be {kind} {bound}")
    return int(value) if integer else float(value)


def _strings(name: str, value: Any, limit: int) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise PlacementError(f"{name} must be a string or a list of strings")
    if len(value) > MAX_VALUES or any(len(v) > limit for v in value):
        raise PlacementError(f"{name}: at most {MAX_VALUES} values of at most {limit} characters")
    return tuple(value)


def check_option(name: str, value: Any, max_k: int) -> Any:
    """value as the typed option name, or PlacementError saying what it may be."""
    if name == "k":
        return _number(name, value, 1, max_k, integer=True)
    if name == "max_per_story":
        return _number(name, value, 0, max_k, integer=True)
    if name in ("min_relatedness", "recency_weight"):
        return _number(name, value, 0.0, 1.0)
    if name == "mmr_lambda":
        return _number(name, value, 0.0, 1.0, open_low=True)
    if name in ("half_life_days", "max_age_days"):
        return _number(name, value, 0.0, MAX_HALF_LIFE_DAYS, open_low=True)
    if name == "fallback":
        if value not in FALLBACKS:
            raise PlacementError(f"fallback must be one of {', '.join(FALLBACKS)}")
        return value
    if name == "only_before":
        if not isinstance(value, bool):
            raise PlacementError("only_before must be true or false")
        return value
    if name == "prefer_lang":
        if not isinstance(value, str) or not _LANG.fullmatch(value.lower()):
            raise PlacementError("prefer_lang must be an ISO 639 code such as de or en")
        return value.lower()
    if name == "lang":
        return tuple(v.lower() for v in _strings(name, value, 16))
    if name == "section":
        return _strings(name, value, 100)
    raise PlacementError(f"unknown option {name!r} (known: {', '.join(OPTION_NAMES)})")


def options_from(values: Mapping[str, Any], max_k: int) -> Options:
    """Options from plain values (a TOML table or a request's parameters), each checked."""
    return Options(**{name: check_option(name, value, max_k) for name, value in values.items()})


def placements_from(configured: Mapping[str, Any], max_k: int) -> dict[str, Options]:
    """The built-in placements with the configured ones laid over them (a configured name replaces a built-in
    one whole); PlacementError naming the placement at fault. A placement's `arms` table: arms_from."""
    placements = dict(BUILT_IN)
    for name, values in configured.items():
        if not isinstance(values, Mapping):
            raise PlacementError(f"placement {name!r} must be a table of options")
        if not _NAME.fullmatch(name):
            raise PlacementError(f"placement name {name!r}: lower-case letters, digits, _ and -, at most 50")
        try:
            placements[name] = options_from({k: v for k, v in values.items() if k != "arms"}, max_k)
        except PlacementError as exc:
            raise PlacementError(f"placement {name!r}: {exc}") from None
    return placements


_NAME = re.compile(r"[a-z0-9_-]{1,50}")
MAX_ARMS = 10


@dataclass(frozen=True)
class Arm:
    """A variant of a placement in an A/B test: its share of the traffic (weight, relative to the other arms'),
    the ranking options laid over the placement's, and optionally another ranking profile (whose signals the
    index must hold)."""

    name: str
    weight: float
    options: Options
    profile: str | None = None


def arms_from(configured: Mapping[str, Any], max_k: int) -> dict[str, tuple[Arm, ...]]:
    """Placement -> its A/B arms in configured order, from each placement's `arms` table
    ([placements.NAME.arms.ARM] with weight, profile and ranking options); PlacementError naming the arm."""
    found = {}
    for placement, values in configured.items():
        table = values.get("arms") if isinstance(values, Mapping) else None
        if table is None:
            continue
        if not isinstance(table, Mapping) or not 2 <= len(table) <= MAX_ARMS:
            raise PlacementError(f"placement {placement!r}: arms must be a table of 2 to {MAX_ARMS} named arms")
        arms = []
        for name, arm in table.items():
            where = f"placement {placement!r}, arm {name!r}"
            if not _NAME.fullmatch(name) or not isinstance(arm, Mapping):
                raise PlacementError(f"{where}: a name of lower-case letters, digits, _ and - with a table of options")
            options = {k: v for k, v in arm.items() if k not in ("weight", "profile")}
            profile = arm.get("profile")
            if profile is not None and (not isinstance(profile, str) or not _NAME.fullmatch(profile)):
                raise PlacementError(f"{where}: profile must be a profile's name")
            try:
                weight = _number("weight", arm.get("weight", 1), 0.0, 1e6, open_low=True)
                arms.append(Arm(name, weight, options_from(options, max_k), profile))
            except PlacementError as exc:
                raise PlacementError(f"{where}: {exc}") from None
        found[placement] = tuple(arms)
    return found


def choose_arm(arms: tuple[Arm, ...], placement: str, seed: str) -> Arm:
    """The arm a list with this rid seed gets: a stable hash of placement and seed, split by the arms' weights
    (the same seed always gets the same arm; across seeds each arm's share is its weight's)."""
    digest = hashlib.sha256(f"{placement}\x00{seed}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(arm.weight for arm in arms)
    for arm in arms:
        point -= arm.weight
        if point < 0:
            return arm
    return arms[-1]
