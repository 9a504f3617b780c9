"""Ranking quality on the real evaluation data in ../shared/data (slow: minutes of embedding on 2 cores).

Thresholds sit a little below the figures measured for docs/quality.md, so that an encoder update that
costs a point fails here instead of passing unnoticed.
"""
from pathlib import Path

import pytest
from conftest import CACHE_DIR

from recommender.config import load_settings
from recommender.engine import signal_encoder
from recommender.ingest.profiles import BASELINES, get_profile
from recommender.rank.evaluate import evaluate, load_dataset, union_profile

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DATA / "semeval2022-dev").is_dir(), reason=f"evaluation data not found at {DATA}"),
]


def report_for(folder: str, profile: str = "default") -> dict:
    settings = load_settings(environ={}, cache_dir=str(CACHE_DIR))
    baselines = [get_profile(name) for name in BASELINES]
    chosen = get_profile(profile)
    encoder = signal_encoder(settings, union_profile([chosen, *baselines]))
    return evaluate(load_dataset(DATA / folder), chosen, baselines, encoder)


@pytest.fixture(scope="module")
def semeval() -> dict:
    return report_for("semeval2022-dev")


@pytest.fixture(scope="module")
def ecb() -> dict:
    return report_for("ecbplus-dev")


def test_default_profile_on_semeval_pairs(semeval):
    assert semeval["pairs"]["de-de"]["pearson"] >= 0.84
    assert semeval["pairs"]["en-en"]["pearson"] >= 0.88
    for baseline in BASELINES:
        assert semeval["pairs"]["de-de"]["pearson"] > semeval["baselines"][baseline]["pairs"]["de-de"]["pearson"]


def test_default_profile_on_ecb_same_event(ecb):
    cluster = ecb["labels"]["cluster"]
    tfidf = ecb["baselines"]["tfidf"]["labels"]["cluster"]
    assert cluster["precision@5"] >= 0.95
    assert cluster["precision@5"] > tfidf["precision@5"]
    assert cluster["same_topic_other_event@5"] < tfidf["same_topic_other_event@5"]


def test_fast_profile_on_semeval_pairs():
    report = report_for("semeval2022-dev", "fast")
    assert report["pairs"]["de-de"]["pearson"] >= 0.77
