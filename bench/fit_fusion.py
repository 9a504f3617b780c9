"""Fit the fusion weights of a profile's signals on SemEval-2022 dev pairs; check them on ECB+.

    .venv/bin/python bench/fit_fusion.py --profile default [--data ../shared/data] [--step 0.05]

Two fits over the profile's signals, German and English pairs weighted equally:
1. non-negative least squares (scikit-learn), with 5-fold cross-validated Pearson, the honest estimate;
2. a grid over the weight simplex, listing the best weight vectors by mean Pearson with their ECB+
   precision@5 (same event) and the share of same-topic-other-event links in the top 5.
Only the pairs are fitted; ECB+ is read to choose among near-ties and to report. docs/quality.md explains
how the weights in recommender/profiles.py were picked from this output.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.config import load_settings  # noqa: E402
from recommender.engine import signal_encoder  # noqa: E402
from recommender.ingest.profiles import get_profile  # noqa: E402
from recommender.rank.evaluate import (  # noqa: E402
    full_similarities,
    label_metrics,
    load_dataset,
    pair_similarities,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()

    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, cross_val_predict

    profile = get_profile(args.profile)
    names = [s.name for s in profile.signals]
    encoder = signal_encoder(load_settings(), profile)

    semeval = load_dataset(Path(args.data) / "semeval2022-dev")
    keep = [p for p in semeval.pairs if p.langs in ("de-de", "en-en")]
    used = {p.left for p in keep} | {p.right for p in keep}
    articles = [a for a in semeval.articles if a.id in used]
    arrays = encoder.embed_articles(articles)
    row = {a.id: i for i, a in enumerate(articles)}
    sims = pair_similarities(arrays, np.array([row[p.left] for p in keep]), np.array([row[p.right] for p in keep]))
    features = np.column_stack([sims[n] for n in names])
    target = np.array([p.relevance for p in keep])
    langs = np.array([p.langs for p in keep])
    balance = np.where(langs == "de-de", 1.0 / np.sum(langs == "de-de"), 1.0 / np.sum(langs == "en-en"))

    def pearson(pred: np.ndarray) -> tuple[float, float]:
        return tuple(float(np.corrcoef(pred[langs == l], target[langs == l])[0, 1]) for l in ("de-de", "en-en"))

    model = LinearRegression(positive=True).fit(features, target, sample_weight=balance)
    weights = model.coef_ / model.coef_.sum()
    cv = np.mean([pearson(cross_val_predict(LinearRegression(positive=True), features, target,
                                            cv=KFold(5, shuffle=True, random_state=seed),
                                            params={"sample_weight": balance})) for seed in range(5)], axis=0)
    print(f"signals: {names}")
    print(f"least squares weights {np.round(weights, 3).tolist()}: in-sample de/en {np.round(pearson(features @ weights), 4).tolist()}, "
          f"5-fold CV de/en {np.round(cv, 4).tolist()}")

    ecb = load_dataset(Path(args.data) / "ecbplus-dev")
    ecb_sims = full_similarities(encoder.embed_articles(ecb.articles))
    grid = [w for w in itertools.product(np.arange(0, 1 + 1e-9, args.step), repeat=len(names) - 1) if sum(w) <= 1 + 1e-9]
    scored = []
    for partial in grid:
        w = [*partial, 1.0 - sum(partial)]
        de, en = pearson(features @ np.array(w))
        scored.append(((de + en) / 2, de, en, w))
    scored.sort(key=lambda item: -item[0])
    print(f"best weight vectors by mean Pearson (grid step {args.step}):")
    for mean, de, en, w in scored[: args.top]:
        fused = sum(wi * ecb_sims[n] for wi, n in zip(w, names))
        metrics = label_metrics(ecb, fused, "cluster")
        print(f"  {[round(x, 2) for x in w]}  de {de:.4f}  en {en:.4f}  ECB+ p@5 {metrics['precision@5']:.4f}  "
              f"same-topic-other-event@5 {metrics['same_topic_other_event@5']:.4f}")


if __name__ == "__main__":
    main()
