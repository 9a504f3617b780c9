"""Incremental search structures: an update of the previous snapshot's graph and lists matches a full rebuild."""
from dataclasses import replace

import numpy as np
import pytest
from conftest import make_article

from recommender.config import load_settings
from recommender.embed.encoders import TfidfModel
from recommender.embed.signals import SignalEncoder
from recommender.embed.vectors import SignalArrays
from recommender.engine import Recommender
from recommender.index.graph import SearchLayout, graph_signals
from recommender.index.incremental import SearchPlan, list_overlap, plan_search
from recommender.index.snapshot import (
    load_snapshot,
    new_snapshot_dir,
    profile_fingerprint,
    write_snapshot,
)
from recommender.ingest.profiles import TFIDF_VIEW, USE_VIEW, Profile, SignalSpec
from recommender.jobs.index_job import compare_rows

PROFILE = Profile("incr", (SignalSpec("use", "use", USE_VIEW, 0.9), SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 0.1)))
N, STORIES, DIM = 2000, 400, 24
LAYOUT = SearchLayout(ann_min_articles=100, candidates=20, vector_dtype="float32", threads=1)  # deterministic


def unit(vectors):
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def write(index_dir, articles, vectors, plan=SearchPlan()):
    texts = [f"{a.title} {a.body}" for a in articles]
    model = TfidfModel().fit(texts)
    arrays = SignalArrays({"use": vectors}, {"tfidf": model.transform(texts)}, {"tfidf": model})
    target = write_snapshot(new_snapshot_dir(index_dir), articles, arrays, PROFILE, SignalEncoder(PROFILE).identities(),
                            layout=LAYOUT, plan=plan)
    return load_snapshot(target)


def plan_for(published, articles, max_share=0.2, rebuild=False):
    compared = compare_rows(published, articles)
    return plan_search(published.manifest, published.path, compared.old_to_new, compared.fresh,
                       compared.counts["deleted"], profile_fingerprint(PROFILE, SignalEncoder(PROFILE).identities()),
                       graph_signals(PROFILE), LAYOUT, max_share, rebuild)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A published snapshot, then 3 % of it changed: the incremental and the full snapshot of the new corpus."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(STORIES, DIM))
    story = rng.integers(0, STORIES, size=N)
    vectors = unit(centres[story] + 0.5 * rng.normal(size=(N, DIM)))
    articles = [make_article(f"a{i}", f"Story {story[i]} part {i}", f"Text {story[i]} {i}.", days_ago=i / 100)
                for i in range(N)]
    place = tmp_path_factory.mktemp("incr")
    published = write(place / "index", articles, vectors)
    # 1 % deleted, 1 % changed (text and vector), 1 % new: one of them a near copy of article a5 (a follow-up).
    deleted = set(range(7, N, 100))
    changed = set(range(11, N, 100))
    kept = [i for i in range(N) if i not in deleted]
    new_articles = [replace(articles[i], body=articles[i].body + " Update.") if i in changed else articles[i]
                    for i in kept]
    new_vectors = np.array([unit(vectors[i:i + 1] + 0.3 * rng.normal(size=(1, DIM)))[0] if i in changed else vectors[i]
                            for i in kept])
    extra = unit(centres[rng.integers(0, STORIES, size=N // 100)] + 0.5 * rng.normal(size=(N // 100, DIM)))
    extra[0] = unit(vectors[5:6] + 0.01 * rng.normal(size=(1, DIM)))[0]
    fresh = [make_article(f"n{j}", f"New story {j}", f"New text {j}.", days_ago=0.01) for j in range(N // 100)]
    # A new article in the middle too: rows move both ways between the snapshots.
    new_articles = new_articles[:500] + fresh[:1] + new_articles[500:] + fresh[1:]
    new_vectors = np.concatenate([new_vectors[:500], extra[:1], new_vectors[500:], extra[1:]])
    plan = plan_for(published, new_articles)
    incremental = write(place / "index", new_articles, new_vectors, plan)
    full = write(place / "full", new_articles, new_vectors)
    return published, incremental, full, new_articles, plan


def test_an_update_is_recorded_in_the_manifest(runs):
    published, incremental, full, _, plan = runs
    assert plan.previous is not None and abs(plan.previous.changed_share - 0.03) < 0.001
    assert published.manifest["search_build"]["mode"] == "full"
    record = incremental.manifest["search_build"]
    assert record["mode"] == "incremental" and record["from"] == published.version
    assert record["runs_since_full"] == 1 and abs(record["changed_since_full"] - 0.03) < 0.001
    assert full.manifest["search_build"] == {"mode": "full", "reason": "no previous search structures",
                                             "runs_since_full": 0, "changed_since_full": 0.0}


def test_updated_lists_match_a_full_rebuild(runs):
    _, incremental, full, _, _ = runs
    lists, reference = np.asarray(incremental.search.lists_), np.asarray(full.search.lists_)
    assert lists.shape == reference.shape
    vectors = incremental.dense["use"]
    assert list_overlap(lists, reference, vectors, k=10) >= 0.99  # the best of each list: what queries rank
    # Whole lists: a deleted neighbour leaves a hole that a full build fills with the next one (measured at scale
    # by bench/incremental_search.py).
    assert list_overlap(lists, reference, vectors) >= 0.98
    assert not any(row in set(found) for row, found in enumerate(lists))  # never the article itself


def test_the_updated_graph_has_every_article_under_its_new_row(runs):
    _, incremental, _, articles, _ = runs
    graph = incremental.search.graphs_["use"]
    assert len(graph) == len(articles)
    rows = np.arange(0, len(articles), 37)
    found = graph.search(np.asarray(incremental.dense["use"][rows], dtype=np.float32), 1).keys[:, 0]
    assert np.mean(found == rows) >= 0.99


def test_a_new_story_appears_under_the_old_story_it_follows(runs):
    _, incremental, _, articles, _ = runs
    new_row, old_row = incremental.row_of["n0"], incremental.row_of["a5"]
    assert new_row in set(np.asarray(incremental.search.lists_[old_row]))
    settings = load_settings(environ={}, state_dir="", cache_dir="", candidates=LAYOUT.candidates, min_relatedness=0.0)
    engine = Recommender(settings, incremental, PROFILE, SignalEncoder(PROFILE))
    assert "n0" in engine.related("a5", k=5).ids


def test_rebuild_and_large_changes_build_anew(runs):
    published, _, _, articles, _ = runs
    assert plan_for(published, articles, rebuild=True).reason == "asked for (--rebuild)"
    large = plan_for(published, articles, max_share=0.02)
    assert large.previous is None and "incremental_max_share" in large.reason


def test_a_chain_of_updates_counts_the_change_since_the_full_build(runs, tmp_path):
    _, incremental, _, articles, _ = runs
    plan = plan_for(incremental, articles[:-10])  # 10 more deleted after 3 %: 3.5 % since the full build
    assert plan.previous is not None
    assert plan.record()["runs_since_full"] == 2 and abs(plan.record()["changed_since_full"] - 0.035) < 0.001
    assert plan_for(incremental, articles[:-10], max_share=0.034).previous is None
