"""Calibrated relatedness: a profile's fused similarity mapped to a number in [0, 1] that means the same thing
in every index of that profile.

The map is an isotonic (monotone, piecewise linear) fit of human judgements: SemEval-2022 Task 8 dev pairs,
rated 1 (same story) ... 4 (unrelated), as relatedness = (4 - rating) / 3. So relatedness 1.0 means "people
rate such pairs the same story", 0.0 "unrelated", and 0.5 "halfway: on average rated 2.5, between somewhat
the same story and somewhat different". It is fitted per profile by `bench/fit_relatedness.py`, stored in
`relatedness.json` beside this module, and never part of an index: refitting changes no vector.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

CALIBRATION_FILE = Path(__file__).with_name("relatedness.json")
# relatedness ≥ 2/3 ⇔ pairs at this similarity are rated 2 ("somewhat the same story") or closer on average:
# the point of SemEval's scale where a pair becomes one story. Chosen on the scale, not tuned on a test set.
SAME_STORY = 2.0 / 3.0


@dataclass(frozen=True)
class Calibration:
    """A monotone piecewise-linear map from fused similarity to relatedness.

    similarity, relatedness : the knots, increasing; values outside are clipped to the end knots
    """

    similarity: tuple[float, ...]
    relatedness: tuple[float, ...]
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if len(self.similarity) < 2 or len(self.similarity) != len(self.relatedness):
            raise ValueError("a calibration needs at least two knots, as many similarities as relatedness values")
        if np.any(np.diff(self.similarity) < 0) or np.any(np.diff(self.relatedness) < 0):
            raise ValueError("calibration knots must be non-decreasing")
        if not 0.0 <= min(self.relatedness) <= max(self.relatedness) <= 1.0:
            raise ValueError("calibration relatedness values must lie in [0, 1]")
        # The knots as arrays once: np.interp would convert the tuples on every call (every request).
        object.__setattr__(self, "_x", np.asarray(self.similarity, dtype=np.float64))
        object.__setattr__(self, "_y", np.asarray(self.relatedness, dtype=np.float64))

    def __call__(self, similarity: Any) -> np.ndarray:
        """Relatedness of each fused similarity: ndarray of the same shape, float32 in [0, 1]."""
        # Within [0, 1] by the knots (checked above): interpolation never leaves their range, so no clip.
        return np.interp(similarity, self._x, self._y).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        """Plain values for relatedness.json."""
        return {"similarity": list(self.similarity), "relatedness": list(self.relatedness),
                "fitted_on": self.fitted_on}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Calibration":
        """The calibration stored by to_json."""
        return cls(tuple(float(v) for v in data["similarity"]), tuple(float(v) for v in data["relatedness"]),
                   str(data.get("fitted_on", "")))


# Without a fitted map (a profile added since the last fit): similarity taken as relatedness, clipped.
IDENTITY = Calibration((0.0, 1.0), (0.0, 1.0), "identity (not fitted)")


@lru_cache(maxsize=1)
def stored_calibrations(path: Path = CALIBRATION_FILE) -> dict[str, Calibration]:
    """Profile name -> its fitted calibration, as shipped with the package."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {name: Calibration.from_json(entry) for name, entry in data.get("profiles", {}).items()}
