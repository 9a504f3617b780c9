"""Shared fixtures: settings in a temporary place, tiny corpora built in code, one index of corpus/ per session."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from recommender.config import load_settings
from recommender.ingest.corpus import Article

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
# Embeddings of corpus/ are cached beside the repository's own data (as `make run` does), so a second
# test run, or a test run after `make run`, embeds nothing again.
CACHE_DIR = REPO / "data" / "cache"


def make_article(article_id: str, title: str, body: str, days_ago: float = 1.0, lang: str = "de",
                 section: str = "Politik", teaser: str = "", now: datetime | None = None) -> Article:
    """An Article with sensible defaults for tests."""
    now = now or datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    return Article(id=article_id, title=title, body=body, published_at=now - timedelta(days=days_ago), lang=lang,
                   section=section, teaser=teaser, url=f"https://example.test/{article_id}")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records as JSON Lines."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def record(article_id: str, **changes) -> dict:
    """A valid corpus record, with fields changed or removed (value None removes)."""
    base = {
        "id": article_id, "url": f"https://example.test/{article_id}", "title": f"Titel {article_id}",
        "teaser": "Ein kurzer Vorspann.", "body": f"Der Text des Artikels {article_id}. Er hat zwei Sätze.",
        "published_at": "2026-03-01T08:00:00+01:00", "section": "Politik", "lang": "de",
        "tags": ["Test"], "author": "Redaktion",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def settings(tmp_path):
    """Settings pointing at a temporary index, with the repository's embedding cache."""
    return load_settings(environ={}, index_dir=str(tmp_path / "index"), cache_dir=str(CACHE_DIR),
                         state_dir=str(tmp_path / "state"))


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory):
    """The sample corpus indexed once per session with the default profile: (settings, index_dir)."""
    from recommender.jobs.index_job import build_index

    index_dir = tmp_path_factory.mktemp("corpus-index") / "index"
    settings = load_settings(environ={}, index_dir=str(index_dir), cache_dir=str(CACHE_DIR),
                             state_dir=str(index_dir.parent / "state"))
    build_index([CORPUS], index_dir, settings)
    return settings, index_dir


@pytest.fixture(scope="session")
def corpus_engine(corpus_index):
    """A Recommender over the session's index of corpus/."""
    from recommender.engine import Recommender

    settings, index_dir = corpus_index
    return Recommender.open(settings, index_dir)


@pytest.fixture(scope="session")
def stories() -> dict[str, dict]:
    """corpus/stories.json: story label -> {title, articles}."""
    return json.loads((CORPUS / "stories.json").read_text(encoding="utf-8"))


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """n random unit vectors of size dim, float32."""
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
