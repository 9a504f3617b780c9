"""A synthetic index with the real dimensions of a profile and real-looking metadata, for load tests.

    .venv/bin/python bench/synthetic.py --articles 100000 --index /tmp/synthetic-index [--profile default]

Vectors are clustered (stories of a few articles around a shared direction) and unit length; the lexical
rows are sparse TF-IDF-like rows over a made-up vocabulary. Nothing is embedded, so 100,000 articles take
seconds. The snapshot is published like a real one and is accepted by `recommender serve` with the same
profile.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from scipy import sparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.embed.encoders import TfidfModel  # noqa: E402
from recommender.embed.signals import SignalEncoder  # noqa: E402
from recommender.embed.vectors import SignalArrays
from recommender.index.graph import SearchLayout  # noqa: E402
from recommender.index.snapshot import (  # noqa: E402
    new_snapshot_dir,
    publish,
    write_snapshot,
)
from recommender.ingest.corpus import Article  # noqa: E402
from recommender.ingest.profiles import get_profile  # noqa: E402
from recommender.stages import StageClock  # noqa: E402

SECTIONS = {"de": ["Politik", "Wirtschaft", "Sport", "Kultur", "Wissen", "Panorama", "Digital"],
            "en": ["Politics", "World", "Business", "Sport", "Culture", "Science", "Technology"]}
DIMS = {"e5": 384, "sbert": 384, "use": 512}


def clustered(rng: np.random.Generator, story: np.ndarray, n_stories: int, dim: int) -> np.ndarray:
    """Unit vectors: each article near its story's direction."""
    centres = rng.normal(size=(n_stories, dim)).astype(np.float32)
    vectors = centres[story] + 0.8 * rng.normal(size=(story.size, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def lexical(rng: np.random.Generator, story: np.ndarray, terms: int, per_row: int) -> sparse.csr_matrix:
    """Sparse unit rows: half of each row's terms shared with its story, half its own."""
    n = story.size
    shared = (story[:, None] * 7919 + np.arange(per_row // 2)[None, :] * 104729) % terms
    own = rng.integers(0, terms, size=(n, per_row - per_row // 2))
    columns = np.concatenate([shared, own], axis=1)
    values = rng.random(size=columns.shape).astype(np.float32) + 0.1
    matrix = sparse.csr_matrix((values.ravel(), columns.ravel(), np.arange(0, n * per_row + 1, per_row)),
                               shape=(n, terms))
    matrix.sum_duplicates()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sparse.diags(1.0 / norms).dot(matrix).tocsr().astype(np.float32)


def build(n: int, index_dir: Path, profile_name: str, seed: int = 0, ann_min_articles: int = 5_000) -> Path:
    """Write and publish a synthetic snapshot of n articles; returns its directory."""
    rng = np.random.default_rng(seed)
    profile = get_profile(profile_name)
    story = rng.integers(0, max(n // 5, 1), size=n)
    now = datetime(2026, 11, 25, tzinfo=timezone.utc)
    ages = rng.exponential(scale=200.0, size=n)
    articles = []
    for i in range(n):
        lang = "de" if i % 3 else "en"
        articles.append(Article(
            id=f"syn-{i:07d}", title=f"Synthetic story {story[i]} report {i}", body="(synthetic)",
            published_at=now - timedelta(days=float(ages[i])), lang=lang,
            url=f"https://www.example.test/{i}", teaser=f"Teaser of synthetic article {i}.",
            section=SECTIONS[lang][i % 7], author="bench"))
    arrays = SignalArrays()
    for signal in profile.dense:
        arrays.dense[signal.name] = clustered(rng, story, max(n // 5, 1), DIMS[signal.kind])
    for signal in profile.sparse:
        terms = 200_000 if signal.kind == "tfidf" else 50_000
        model = TfidfModel("names" if signal.kind == "names" else "words")
        model.set_fitted([f"t{j}" for j in range(terms)], np.ones(terms, dtype=np.float32))
        arrays.sparse[signal.name] = lexical(rng, story, terms, 120 if signal.kind == "tfidf" else 20)
        arrays.sparse_models[signal.name] = model
    target = new_snapshot_dir(index_dir)
    clock = StageClock()
    with clock.running(), clock.stage("write"):
        write_snapshot(target, articles, arrays, profile, SignalEncoder(profile).identities(),
                       extra={"synthetic": True}, layout=SearchLayout(ann_min_articles=ann_min_articles))
    print("write stages: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in clock.seconds.items()),
          file=sys.stderr)
    publish(index_dir, target, keep=1)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--index", required=True)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--ann-min-articles", type=int, default=5_000,
                        help="build graphs and candidate lists from this size on (setting ann_min_articles)")
    args = parser.parse_args()
    print(build(args.articles, Path(args.index), args.profile, ann_min_articles=args.ann_min_articles))


if __name__ == "__main__":
    main()
