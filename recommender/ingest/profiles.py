"""Named ranking profiles: which signals an index holds, what each reads, and how they are fused.

The weights of `default` and `fast` were fitted on SemEval-2022 dev pairs (German and English) and
checked on ECB+; docs/quality.md has the numbers and the command that produced them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

import numpy as np

from .calibration import IDENTITY, Calibration, stored_calibrations
from .textprep import TextView

SignalKind = Literal["e5", "use", "sbert", "tfidf", "names"]
SPARSE_KINDS = ("tfidf", "names")


@dataclass(frozen=True)
class SignalSpec:
    """One similarity signal: an encoder kind, the view of the article it reads, its weight in the fusion."""

    name: str
    kind: SignalKind
    view: TextView
    weight: float

    def to_json(self) -> dict[str, Any]:
        """Plain values for the index manifest."""
        return {"name": self.name, "kind": self.kind, "view": self.view.to_json(), "weight": self.weight}


@dataclass(frozen=True)
class Profile:
    """A set of signals fused by a weighted sum of cosine similarities."""

    name: str
    signals: tuple[SignalSpec, ...]
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain values for the index manifest (compared on load)."""
        return {"name": self.name, "signals": [s.to_json() for s in self.signals]}

    @property
    def calibration(self) -> Calibration:
        """The map from this profile's fused similarity to relatedness (calibration.py); identity if unfitted."""
        return stored_calibrations().get(self.name, IDENTITY)

    def relatedness(self, similarity: Any) -> np.ndarray:
        """Calibrated relatedness in [0, 1] of fused similarities: float32, same shape."""
        return self.calibration(similarity)

    @property
    def weighted(self) -> tuple[SignalSpec, ...]:
        """The signals that count in the fused score."""
        return tuple(s for s in self.signals if s.weight)

    def fuse(self, sims: Mapping[str, np.ndarray]) -> np.ndarray:
        """Weighted mean of the signal similarities (only the weighted signals need to be present)."""
        total = sum(s.weight for s in self.signals)
        fused = np.zeros_like(sims[self.weighted[0].name], dtype=np.float32)
        for signal in self.weighted:
            fused += (signal.weight / total) * sims[signal.name]
        return fused

    @property
    def dense(self) -> tuple[SignalSpec, ...]:
        """The signals that need a neural encoder."""
        return tuple(s for s in self.signals if s.kind not in SPARSE_KINDS)

    @property
    def sparse(self) -> tuple[SignalSpec, ...]:
        """The lexical signals (TF-IDF models fitted on the indexed corpus)."""
        return tuple(s for s in self.signals if s.kind in SPARSE_KINDS)


# What each encoder reads. e5 costs time per token and is best on short inputs, so it reads the title with
# each of the first two 600-character pieces of the body and averages them; MiniLM truncates at 256 word
# pieces, so more text would be thrown away.
E5_VIEW = TextView(title_repeat=1, head_chars=600, tail_chars=0, chunks=2)
USE_VIEW = TextView(title_repeat=1, head_chars=2000, tail_chars=0)
MINILM_VIEW = TextView(title_repeat=1, head_chars=1000, tail_chars=0)
TFIDF_VIEW = TextView(title_repeat=2, head_chars=20000, tail_chars=0)
NAMES_VIEW = TextView(title_repeat=1, head_chars=20000, tail_chars=0)

# The lexical signal is in every profile: it is also the near-duplicate detector.
TFIDF = SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 1.0)


def _single(name: str, kind: SignalKind, view: TextView, description: str) -> Profile:
    return Profile(name, (SignalSpec(name, kind, view, 1.0), replace(TFIDF, weight=0.0)), description)


PROFILES: dict[str, Profile] = {
    "default": Profile(
        "default",
        (
            SignalSpec("e5", "e5", E5_VIEW, 0.90),
            SignalSpec("use", "use", USE_VIEW, 0.05),
            SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 0.0),
            SignalSpec("names", "names", NAMES_VIEW, 0.05),
        ),
        "multilingual-e5-small + multilingual USE + TF-IDF over words and names: best quality",
    ),
    "fast": Profile(
        "fast",
        (
            SignalSpec("use", "use", USE_VIEW, 0.30),
            SignalSpec("minilm", "sbert", MINILM_VIEW, 0.35),
            SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 0.25),
            SignalSpec("names", "names", NAMES_VIEW, 0.10),
        ),
        "multilingual USE + MiniLM + TF-IDF over words and names: for very large archives",
    ),
    "tfidf": Profile("tfidf", (TFIDF,), "TF-IDF alone (baseline)"),
    "e5": _single("e5", "e5", E5_VIEW, "multilingual-e5-small alone (baseline)"),
    "use": _single("use", "use", USE_VIEW, "multilingual USE alone (baseline)"),
    "minilm": _single("minilm", "sbert", MINILM_VIEW, "all-MiniLM-L6-v2 (or the configured model) alone (baseline)"),
}

BASELINES = ("tfidf", "e5", "use", "minilm")


class UnknownProfile(ValueError):
    """No profile has this name."""


def get_profile(name: str) -> Profile:
    """The profile called name; UnknownProfile listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None
