"""Fit each profile's relatedness calibration on SemEval-2022 dev pairs; check the same-story labels on ECB+.

    .venv/bin/python bench/fit_relatedness.py [--data ../shared/data] [--write]

For every profile (default, fast and the single-signal baselines): the fused similarity of the 774 rated
SemEval dev pairs, an isotonic regression of (4 - rating) / 3 on it (scikit-learn, monotone increasing,
clipped to [0, 1]), and its knots. Then, on ECB+ dev (never fitted on), each article's 10 nearest
neighbours: how many pairs with relatedness ≥ SAME_STORY are the same event (precision), and how many
same-event pairs reach it (recall); and on the SemEval pairs themselves the same for ratings ≤ 2.
--write stores the knots in recommender/ingest/relatedness.json (the file the package ships).
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.config import load_settings  # noqa: E402
from recommender.engine import signal_encoder  # noqa: E402
from recommender.ingest.calibration import CALIBRATION_FILE, SAME_STORY, Calibration  # noqa: E402
from recommender.ingest.profiles import PROFILES  # noqa: E402
from recommender.rank.evaluate import (  # noqa: E402
    full_similarities,
    load_dataset,
    pair_similarities,
    union_profile,
    weighted,
)


def fit(similarity: np.ndarray, rating: np.ndarray) -> Calibration:
    """Isotonic fit of (4 - rating) / 3 on similarity, as knots."""
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(similarity, (4.0 - rating) / 3.0)
    return Calibration(tuple(round(float(x), 5) for x in model.X_thresholds_),
                       tuple(round(float(y), 5) for y in model.y_thresholds_), "semeval2022-dev")


def threshold_table(profile, pair_sims, rating, full, ecb) -> None:
    """What each candidate default of min_relatedness keeps and removes, on both data sets."""
    calibration = fit(weighted(profile, pair_sims), rating)
    related = calibration(weighted(profile, pair_sims))
    fused = weighted(profile, full)
    np.fill_diagonal(fused, -np.inf)
    top = np.argsort(-fused, axis=1)[:, :10]
    ecb_related = calibration(np.take_along_axis(fused, top, axis=1))
    clusters, topics = np.array(ecb.labels["cluster"]), np.array(ecb.topics)
    same, same_topic = clusters[top] == clusters[:, None], topics[top] == topics[:, None]
    print("min_relatedness  SemEval kept: same story (<=2) / related (<=3); removed: unrelated (>=3.5)   "
          "ECB+ top-10 kept: same event / same topic other event; removed: other topic")
    for threshold in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3):
        keep, ecb_keep = related >= threshold, ecb_related >= threshold
        print(f"  {threshold:4.2f}  {keep[rating <= 2].mean():.3f} / {keep[rating <= 3].mean():.3f}; "
              f"{(~keep)[rating >= 3.5].mean():.3f}      {ecb_keep[same].mean():.3f} / "
              f"{ecb_keep[same_topic & ~same].mean():.3f}; {(~ecb_keep)[~same_topic].mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--write", action="store_true", help=f"store the knots in {CALIBRATION_FILE.name}")
    args = parser.parse_args()
    settings = load_settings(cache_dir=str(REPO / "data" / "cache"))
    encoder = signal_encoder(settings, union_profile(list(PROFILES.values())))
    semeval = load_dataset(Path(args.data) / "semeval2022-dev")
    arrays = encoder.embed_articles(semeval.articles)
    row = {a.id: i for i, a in enumerate(semeval.articles)}
    pair_sims = pair_similarities(arrays, np.array([row[p.left] for p in semeval.pairs]),
                                  np.array([row[p.right] for p in semeval.pairs]))
    rating = np.array([5.0 - p.relevance for p in semeval.pairs])
    ecb = load_dataset(Path(args.data) / "ecbplus-dev")
    full = full_similarities(encoder.embed_articles(ecb.articles))
    clusters = np.array(ecb.labels["cluster"])
    fitted = {}
    for name, profile in PROFILES.items():
        calibration = fit(weighted(profile, pair_sims), rating)
        fitted[name] = calibration.to_json()
        related = calibration(weighted(profile, pair_sims))
        same_story, labelled = rating <= 2.0, related >= SAME_STORY
        fused = weighted(profile, full)
        np.fill_diagonal(fused, -np.inf)
        top = np.argsort(-fused, axis=1)[:, :10]
        ecb_labelled = calibration(np.take_along_axis(fused, top, axis=1)) >= SAME_STORY
        ecb_same = clusters[top] == clusters[:, None]
        print(f"{name:8} knots {len(calibration.similarity):3}  relatedness 0.5 at similarity "
              f"{np.interp(0.5, calibration.relatedness, calibration.similarity):.3f}  "
              f"SemEval rating<=2: precision {same_story[labelled].mean():.3f} recall {labelled[same_story].mean():.3f}  "
              f"ECB+ top-10 same event: precision {ecb_same[ecb_labelled].mean():.3f} "
              f"recall {ecb_labelled[ecb_same].mean():.3f}")
    threshold_table(PROFILES["default"], pair_sims, rating, full, ecb)
    if args.write:
        document = {"about": "relatedness = isotonic fit of (4 - SemEval rating) / 3 on each profile's fused "
                             "similarity; written by bench/fit_relatedness.py",
                    "fitted": date.today().isoformat(), "profiles": fitted}
        CALIBRATION_FILE.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {CALIBRATION_FILE}")


if __name__ == "__main__":
    main()
