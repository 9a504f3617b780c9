"""Click-through figures from the stored counts: per placement, each A/B arm's rate with a 95 % interval and
whether it differs from the first arm yet, and the rates by position and by day."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from .events import Count

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # a difference with a two-sided p-value below this is called significant


@dataclass(frozen=True)
class Rate:
    """Clicks out of impressions, with the 95 % Wilson interval of the rate (None without impressions)."""

    impressions: int
    clicks: int
    ctr: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, clicks: int, impressions: int) -> "Rate":
        """The rate of clicks in impressions (more clicks than impressions count as a rate of 1)."""
        if impressions <= 0:
            return cls(impressions, clicks, None, None, None)
        # scipy comes with scikit-learn; imported only when figures are asked for.
        from scipy.stats import binomtest

        hits = min(clicks, impressions)  # clicks on a block a CDN answered can outnumber the impressions sent
        interval = binomtest(hits, impressions).proportion_ci(CONFIDENCE, method="wilson")
        return cls(impressions, clicks, round(hits / impressions, 6), round(float(interval.low), 6),
                   round(float(interval.high), 6))


@dataclass(frozen=True)
class ArmFigures:
    """One arm (under one ranking profile) of a placement: its rate and how it compares with the first arm."""

    arm: str
    profile: str
    rate: Rate
    p_value: float | None = None  # of the difference to the first arm; None for the first arm itself
    verdict: str = ""


@dataclass(frozen=True)
class PlacementFigures:
    """A placement's figures: blocks seen, items clicked, per arm, per position and per day."""

    placement: str
    total: Rate
    arms: list[ArmFigures]
    positions: list[tuple[int, Rate]] = field(default_factory=list)
    days: list[tuple[str, Rate]] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain values for the API."""
        return {"placement": self.placement, **_rate(self.total), "note": self.note,
                "arms": [{"arm": a.arm, "profile": a.profile, **_rate(a.rate), "p_value": a.p_value,
                          "verdict": a.verdict} for a in self.arms],
                "positions": [{"position": p, **_rate(r)} for p, r in self.positions],
                "days": [{"day": d, **_rate(r)} for d, r in self.days]}


def _rate(rate: Rate) -> dict[str, Any]:
    return {"impressions": rate.impressions, "clicks": rate.clicks, "ctr": rate.ctr,
            "ctr_low": rate.low, "ctr_high": rate.high}


def p_value(first: Rate, other: Rate) -> float | None:
    """Two-sided p-value that two rates differ (chi-squared test of the 2x2 table); None if it cannot be told."""
    from scipy.stats import chi2_contingency

    table = [[min(r.clicks, r.impressions), r.impressions - min(r.clicks, r.impressions)] for r in (first, other)]
    if any(sum(row) == 0 for row in table) or any(sum(col) == 0 for col in zip(*table)):
        return None  # an arm without impressions, or no click (or no miss) anywhere: nothing to compare yet
    return round(float(chi2_contingency(table, correction=False).pvalue), 6)


def _verdict(first: ArmFigures, arm: ArmFigures, p: float | None) -> str:
    if p is None:
        return "not enough data yet"
    if p >= SIGNIFICANCE:
        return f"not yet significant (p = {p:.2g}): keep both running"
    better = (arm.rate.ctr or 0) > (first.rate.ctr or 0)
    return f"{'higher' if better else 'lower'} than {first.arm}, significant (p = {p:.2g})"


def click_figures(counts: Iterable[Count], arm_order: dict[str, list[str]] | None = None) -> list[PlacementFigures]:
    """The figures of every placement in counts; arm_order names each placement's arms in their configured
    order (the first is the one the others are compared with)."""
    blocks: dict[str, dict[tuple[Any, ...], int]] = defaultdict(lambda: defaultdict(int))
    for c in counts:
        table = blocks[c.placement]
        if c.kind == "impression":
            table["seen", c.arm, c.profile, c.day] += c.n
            table["shown", c.position] += c.n  # blocks that showed this many items
        else:
            table["clicked", c.arm, c.profile, c.day] += c.n
            table["click_at", c.position] += c.n
    return [_placement(name, table, (arm_order or {}).get(name, [])) for name, table in sorted(blocks.items())]


def _sum(table: dict[tuple[Any, ...], int], kind: str, index: int, value: Any) -> int:
    return sum(n for key, n in table.items() if key[0] == kind and key[index] == value)


def _placement(name: str, table: dict[tuple[Any, ...], int], order: list[str]) -> PlacementFigures:
    seen = sum(n for key, n in table.items() if key[0] == "seen")
    clicked = sum(n for key, n in table.items() if key[0] == "clicked")
    variants = sorted({key[1:3] for key in table if key[0] in ("seen", "clicked")},
                      key=lambda v: (order.index(v[0]) if v[0] in order else len(order), v))
    arms = [ArmFigures(arm, profile, Rate.of(
        sum(n for key, n in table.items() if key[0] == "clicked" and key[1:3] == (arm, profile)),
        sum(n for key, n in table.items() if key[0] == "seen" and key[1:3] == (arm, profile))))
        for arm, profile in variants]
    if len(arms) > 1:
        first = arms[0]
        arms = [first] + [ArmFigures(a.arm, a.profile, a.rate, p, _verdict(first, a, p))
                          for a in arms[1:] for p in [p_value(first.rate, a.rate)]]
    most = max((key[1] for key in table if key[0] in ("shown", "click_at")), default=0)
    # A block that showed 5 items offered positions 1 to 5: position p was seen by the blocks of p items or more.
    positions = [(p, Rate.of(table.get(("click_at", p), 0),
                             sum(n for key, n in table.items() if key[0] == "shown" and key[1] >= p)))
                 for p in range(1, most + 1)]
    days = sorted({key[3] for key in table if key[0] in ("seen", "clicked")})
    by_day = [(d, Rate.of(_sum(table, "clicked", 3, d), _sum(table, "seen", 3, d))) for d in days]
    note = ""
    if len(arms) > 1 and all("not" in a.verdict for a in arms[1:]):
        note = "no arm differs significantly from the first yet; the intervals overlap or the numbers are small"
    return PlacementFigures(name, Rate.of(clicked, seen), arms, positions, by_day, note)
