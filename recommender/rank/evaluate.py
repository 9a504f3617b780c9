"""Ranking quality on labelled data: Pearson on rated pairs, precision@5 and nDCG@10 on same-label neighbours."""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import ndcg_score

from ..embed.signals import SignalEncoder
from ..embed.vectors import SignalArrays
from ..ingest.corpus import Article
from ..ingest.profiles import Profile, SignalSpec
from ..progress import Progress, no_progress
from .relations import same_story
from .selection import Selection, select

LABEL_FIELDS = ("cluster", "category")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class DatasetError(ValueError):
    """The evaluation folder is missing or malformed."""


@dataclass(frozen=True)
class RatedPair:
    """Two articles and how related people found them (higher = more related)."""

    left: str
    right: str
    relevance: float
    langs: str


@dataclass
class Dataset:
    """Articles plus their ground truth: rated pairs and/or label fields."""

    name: str
    articles: list[Article]
    pairs: list[RatedPair] = field(default_factory=list)
    labels: dict[str, list[str | None]] = field(default_factory=dict)
    topics: list[str | None] | None = None


def load_dataset(folder: str | Path) -> Dataset:
    """Read DIR/articles.jsonl (id, title, text, lang, optional cluster/category/topic) and DIR/pairs.tsv."""
    folder = Path(folder)
    source = folder / "articles.jsonl"
    if not source.is_file():
        raise DatasetError(f"{source} not found: an evaluation folder holds articles.jsonl (and optionally pairs.tsv)")
    articles: list[Article] = []
    labels: dict[str, list[str | None]] = defaultdict(list)
    topics: list[str | None] = []
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row.get("text") or row.get("body") or ""
                articles.append(Article(id=str(row["id"]), title=row.get("title") or "", body=text,
                                        published_at=EPOCH, lang=row.get("lang") or "und"))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(f"{source}:{number}: not a valid article record ({exc})") from None
            for name in LABEL_FIELDS:
                labels[name].append(None if row.get(name) is None else str(row[name]))
            topics.append(None if row.get("topic") is None else str(row["topic"]))
    present = {name: values for name, values in labels.items() if any(v is not None for v in values)}
    pairs = _read_pairs(folder / "pairs.tsv", {a.id for a in articles})
    if not pairs and not present:
        raise DatasetError(f"{folder}: neither pairs.tsv nor a cluster/category field: nothing to evaluate against")
    has_topics = any(t is not None for t in topics) and "cluster" in present
    return Dataset(folder.name, articles, pairs, present, topics if has_topics else None)


def _read_pairs(path: Path, known: set[str]) -> list[RatedPair]:
    if not path.is_file():
        return []
    pairs = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle, delimiter="\t"), start=2):
            try:
                left, right = row["id1"], row["id2"]
                # SemEval-2022 task 8: 1 = same story ... 4 = unrelated.
                relevance = 5.0 - float(row["score"])
                langs = f"{row.get('lang1', 'und')}-{row.get('lang2', 'und')}"
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"{path}:{number}: bad pair row ({exc})") from None
            if left in known and right in known:
                pairs.append(RatedPair(left, right, relevance, langs))
    return pairs


def union_profile(profiles: Sequence[Profile]) -> Profile:
    """One profile holding every distinct signal of the given ones (so each is computed once)."""
    signals: dict[str, SignalSpec] = {}
    for profile in profiles:
        for signal in profile.signals:
            known = signals.get(signal.name)
            if known is not None and (known.kind, known.view) != (signal.kind, signal.view):
                raise ValueError(f"signal {signal.name!r} differs between profiles; give it another name")
            signals.setdefault(signal.name, signal)
    return Profile("union", tuple(signals.values()))


def pair_similarities(arrays: SignalArrays, rows_left: np.ndarray, rows_right: np.ndarray) -> dict[str, np.ndarray]:
    """Cosine similarity of each pair, per signal."""
    sims = {name: np.einsum("ij,ij->i", v[rows_left], v[rows_right]) for name, v in arrays.dense.items()}
    for name, matrix in arrays.sparse.items():
        sims[name] = np.asarray(matrix[rows_left].multiply(matrix[rows_right]).sum(axis=1)).ravel()
    return sims


def weighted(profile: Profile, sims: dict[str, Any]) -> Any:
    """The profile's weighted mean of per-signal similarities (vectors or matrices)."""
    total = sum(s.weight for s in profile.signals)
    return sum((s.weight / total) * sims[s.name] for s in profile.signals if s.weight)


def pair_metrics(dataset: Dataset, profile: Profile, sims: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Pearson correlation between fused similarity and human relevance, per language pair and 'all'."""
    fused = weighted(profile, sims)
    relevance = np.array([p.relevance for p in dataset.pairs])
    groups: dict[str, np.ndarray] = {"all": np.ones(len(dataset.pairs), dtype=bool)}
    langs = np.array([p.langs for p in dataset.pairs])
    for value in sorted(set(langs)):
        groups[value] = langs == value
    result = {}
    for name, mask in groups.items():
        if mask.sum() >= 3:
            result[name] = {"pearson": round(float(pearsonr(fused[mask], relevance[mask]).statistic), 4),
                            "n": int(mask.sum())}
    return result


def label_metrics(dataset: Dataset, similarity: np.ndarray, label: str,
                  profile: Profile | None = None) -> dict[str, float]:
    """precision@5 and nDCG@10 of same-label neighbours (an article is never its own neighbour);
    with a topic field also the share of the top 5 that is the same topic but another label; with a profile,
    for the cluster label, how well its same-story relation labels (relations.py) match the clusters."""
    values = np.array(["" if v is None else v for v in dataset.labels[label]])
    has = values != ""
    rows = np.flatnonzero(has)
    sim = similarity[np.ix_(rows, rows)].astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    same = values[rows][:, None] == values[rows][None, :]
    np.fill_diagonal(same, False)
    keep = same.any(axis=1)  # an article alone in its label has no right answer
    sim, same = sim[keep], same[keep]
    top5 = np.argsort(-sim, axis=1)[:, : min(5, len(rows) - 1)]  # the article itself is never a neighbour
    precision = float(np.take_along_axis(same, top5, axis=1).mean())
    finite = np.where(np.isinf(sim), -1e9, sim)
    ndcg = float(ndcg_score(same.astype(float), finite, k=10))
    result = {"precision@5": round(precision, 4), "ndcg@10": round(ndcg, 4), "n": int(keep.sum())}
    if dataset.topics is not None and label == "cluster":
        topics = np.array(["" if t is None else t for t in dataset.topics])[rows][keep]
        all_topics = np.array(["" if t is None else t for t in dataset.topics])[rows]
        other = (all_topics[top5] == topics[:, None]) & ~np.take_along_axis(same, top5, axis=1)
        result["same_topic_other_event@5"] = round(float(other.mean()), 4)
    if profile is not None and label == "cluster":
        result.update(same_story_metrics(profile, sim, same))
    return result


def same_story_metrics(profile: Profile, sim: np.ndarray, same: np.ndarray, top: int = 10) -> dict[str, float]:
    """Over each article's top neighbours: the share of links labelled same story (same_story, follow_up or
    background) that are the same cluster (precision), and of same-cluster links that got such a label
    (recall). The data has no dates, so order cannot tell the three apart; only the threshold is tested."""
    nearest = np.argsort(-sim, axis=1)[:, :top]
    labelled = same_story(profile.relatedness(np.take_along_axis(sim, nearest, axis=1)))
    truth = np.take_along_axis(same, nearest, axis=1)
    precision = float(truth[labelled].mean()) if labelled.any() else 0.0
    recall = float(labelled[truth].mean()) if truth.any() else 0.0
    return {"same_story_precision": round(precision, 4), "same_story_recall": round(recall, 4)}


# Diversity settings measured by `evaluate` on data with clusters: off, caps per story, and MMR.
DIVERSITY_VARIANTS: dict[str, Selection] = {
    "off": Selection(), "max_per_story=2": Selection(max_per_story=2), "max_per_story=1": Selection(max_per_story=1),
    "mmr_lambda=0.7": Selection(mmr_lambda=0.7), "mmr_lambda=0.5": Selection(mmr_lambda=0.5),
}


def diversity_metrics(dataset: Dataset, profile: Profile, similarity: np.ndarray, k: int = 5,
                      pool: int = 30) -> dict[str, dict[str, float]]:
    """For each diversity variant: precision@k of same-cluster links and the mean fused similarity between the
    k stories of a list (lower = more varied), over every article with a cluster; lists chosen by
    selection.select from each article's pool nearest, as the ranking does."""
    values = np.array(["" if v is None else v for v in dataset.labels["cluster"]])
    rows = np.flatnonzero(values != "")
    sim = similarity[np.ix_(rows, rows)].astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    related = profile.relatedness(np.where(np.isinf(sim), -1.0, sim))
    result = {}
    for name, selection in DIVERSITY_VARIANTS.items():
        precision, spread = [], []
        for i in range(len(rows)):
            nearest = np.argsort(-sim[i])[:pool]
            pairs = sim[np.ix_(nearest, nearest)]
            chosen = nearest[select(sim[i, nearest], k, selection, similarity=pairs,
                                    same_story=same_story(related[np.ix_(nearest, nearest)]))]
            precision.append(float(np.mean(values[rows][chosen] == values[rows][i])))
            inner = sim[np.ix_(chosen, chosen)][np.triu_indices(len(chosen), 1)]
            spread.append(float(inner.mean()) if inner.size else 0.0)
        result[name] = {f"precision@{k}": round(float(np.mean(precision)), 4),
                        "mean_pairwise_similarity": round(float(np.mean(spread)), 4)}
    return result


def full_similarities(arrays: SignalArrays) -> dict[str, np.ndarray]:
    """All-pairs cosine similarity matrices, per signal."""
    sims = {name: v @ v.T for name, v in arrays.dense.items()}
    for name, matrix in arrays.sparse.items():
        sims[name] = (matrix @ matrix.T).toarray()
    return sims


def profile_metrics(dataset: Dataset, profile: Profile, pair_sims: dict | None, full: dict | None) -> dict[str, Any]:
    """Pair and label metrics of one profile."""
    result: dict[str, Any] = {}
    if pair_sims is not None:
        result["pairs"] = pair_metrics(dataset, profile, pair_sims)
    if full is not None:
        fused = weighted(profile, full)
        result["labels"] = {label: label_metrics(dataset, fused, label, profile) for label in dataset.labels}
    return result


def evaluate(
    dataset: Dataset,
    profile: Profile,
    baselines: Sequence[Profile],
    encoder: SignalEncoder,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Metrics of profile and of each baseline on dataset; encoder must cover the union of their signals."""
    arrays = encoder.embed_articles(dataset.articles, progress)
    pair_sims = None
    if dataset.pairs:
        row = {a.id: i for i, a in enumerate(dataset.articles)}
        left = np.array([row[p.left] for p in dataset.pairs])
        right = np.array([row[p.right] for p in dataset.pairs])
        pair_sims = pair_similarities(arrays, left, right)
    full = full_similarities(arrays) if dataset.labels else None
    report: dict[str, Any] = {
        "config": {"dataset": dataset.name, "articles": len(dataset.articles), "profile": profile.to_json()},
        **profile_metrics(dataset, profile, pair_sims, full),
        "baselines": {b.name: profile_metrics(dataset, b, pair_sims, full) for b in baselines},
    }
    if full is not None and "cluster" in dataset.labels:
        report["diversity"] = diversity_metrics(dataset, profile, weighted(profile, full))
    return report
