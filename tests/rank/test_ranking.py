from datetime import datetime, timezone

import numpy as np
import pytest
from conftest import make_article

from recommender.embed.encoders import TfidfModel
from recommender.embed.vectors import SignalArrays
from recommender.index.snapshot import (
    load_snapshot,
    new_snapshot_dir,
    write_snapshot,
)
from recommender.ingest.profiles import (
    NAMES_VIEW,
    TFIDF_VIEW,
    USE_VIEW,
    Profile,
    SignalSpec,
)
from recommender.rank.ranking import (
    Filters,
    RankOptions,
    dense_similarities,
    freshness,
    query_from_row,
    rank,
    rank_rounds,
)

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
# One dense signal with hand-made topic vectors and the two lexical signals.
PROFILE = Profile("test", (SignalSpec("use", "use", USE_VIEW, 0.6), SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 0.3),
                           SignalSpec("names", "names", NAMES_VIEW, 0.1)))

# id, text, topic vector axis, days ago, lang, section
ROWS = [
    ("flut-1", "Hochwasser an der Donau: Passau evakuiert die Altstadt", 0, 10, "de", "Panorama"),
    ("flut-2", "Donau-Hochwasser: Pegel in Passau sinkt langsam", 0, 8, "de", "Panorama"),
    ("flut-3", "Versicherer rechnen nach der Donau-Flut mit Milliardenschäden", 0, 2, "de", "Wirtschaft"),
    ("flut-3b", "Versicherer rechnen nach der Donau-Flut mit Milliardenschäden", 0, 1, "de", "Wirtschaft"),
    ("flood-en", "Danube floods: Passau evacuates its old town", 0, 9, "en", "World"),
    ("wahl-1", "Landtagswahl in Bayern: CSU verliert Stimmen", 1, 3, "de", "Politik"),
    ("wahl-2", "Nach der Landtagswahl beginnen Sondierungen in München", 1, 1, "de", "Politik"),
    ("tennis", "Finale in Wimbledon endet im fünften Satz", 2, 400, "en", "Sport"),
]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    articles = [make_article(i, t, t + " Weitere Einzelheiten folgen.", days_ago=d, lang=l, section=s, now=NOW)
                for i, t, _axis, d, l, s in ROWS]
    dense = np.zeros((len(ROWS), 4), dtype=np.float32)
    for row, (_i, _t, axis, *_rest) in enumerate(ROWS):
        dense[row, axis] = 1.0
        dense[row, 3] = 0.1 * row  # small differences inside a topic
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    texts = [a.title + " " + a.body for a in articles]
    models = {"tfidf": TfidfModel().fit(texts), "names": TfidfModel("names").fit(texts)}
    target = new_snapshot_dir(tmp_path_factory.mktemp("ranking"))
    identities = {"use": {"backend": "test"}, "tfidf": models["tfidf"].identity(), "names": models["names"].identity()}
    arrays = SignalArrays({"use": dense}, {n: m.transform(texts) for n, m in models.items()}, models)
    write_snapshot(target, articles, arrays, PROFILE, identities)
    return load_snapshot(target)


def related(snapshot, article_id, filters=Filters(), **options):
    row = snapshot.row_of[article_id]
    options = {"now": NOW, "k": 5, **options}
    return rank(snapshot, PROFILE, query_from_row(snapshot, row), filters, RankOptions(**options), self_row=row)


def test_never_the_article_itself_and_same_story_first(snapshot):
    ids = related(snapshot, "flut-1").ids
    assert "flut-1" not in ids
    assert set(ids[:3]) <= {"flut-2", "flut-3b", "flood-en"}


def test_versions_collapse_to_the_newest(snapshot):
    result = related(snapshot, "flut-1", k=8)
    assert "flut-3b" in result.ids and "flut-3" not in result.ids
    shown = next(s for s in result.suggestions if s.id == "flut-3b")
    assert shown.hidden_versions == ("flut-3",)
    assert result.removed["duplicate_versions"] == 1


def test_a_version_of_the_query_is_never_suggested(snapshot):
    ids = related(snapshot, "flut-3", k=8).ids
    assert "flut-3b" not in ids and "flut-3" not in ids


def test_filters_language_section_age_and_excluded_ids(snapshot):
    assert all(snapshot.articles[snapshot.row_of[i]]["lang"] == "en" for i in related(snapshot, "flut-1", Filters(langs=("en",))).ids)
    assert related(snapshot, "flut-1", Filters(langs=("en",))).ids[0] == "flood-en"
    assert set(related(snapshot, "flut-1", Filters(sections=("politik",))).ids) == {"wahl-1", "wahl-2"}
    assert "tennis" not in related(snapshot, "flut-1", Filters(max_age_days=30), k=8).ids
    result = related(snapshot, "flut-1", Filters(exclude_ids=("flut-2", "unknown-id")), k=8)
    assert "flut-2" not in result.ids and result.removed["exclude"] == 1


def test_k_limits_the_list(snapshot):
    assert len(related(snapshot, "flut-1", k=2).ids) == 2


def test_recency_prefers_fresh_articles_when_similarity_ties():
    fresh = freshness(np.array([NOW.timestamp(), NOW.timestamp() - 30 * 86400, NOW.timestamp() + 3600]), NOW, 30.0)
    np.testing.assert_allclose(fresh, [1.0, 0.5, 0.5 ** (1 / 24 / 30)], rtol=1e-6)  # a future date: distance


def test_recency_weight_changes_the_order(snapshot):
    without = related(snapshot, "wahl-1", recency_weight=0.0, k=8)
    heavy = related(snapshot, "wahl-1", recency_weight=1.0, k=8)
    assert heavy.suggestions[0].freshness >= max(s.freshness for s in heavy.suggestions)
    assert without.ids != heavy.ids
    assert all(s.score == pytest.approx(s.similarity) for s in without.suggestions)


def test_fuse_is_the_weighted_mean_of_the_signals():
    sims = {"use": np.array([1.0, 0.0, 0.0]), "tfidf": np.array([0.0, 1.0, 0.0]), "names": np.array([0.0, 0.0, 1.0])}
    np.testing.assert_allclose(PROFILE.fuse(sims), [0.6, 0.3, 0.1])


def test_empty_result_when_filters_remove_everything(snapshot):
    result = related(snapshot, "flut-1", Filters(sections=("Kultur",)))
    assert result.suggestions == [] and result.removed["section"] > 0


def test_no_candidates_at_all_give_an_empty_list_and_pins_stay(snapshot):
    # The exact round of a graph search when the filters allow no row: an empty array of candidates.
    row = snapshot.row_of["flut-1"]
    query, options = query_from_row(snapshot, row), RankOptions(now=NOW, k=3)
    none = np.zeros(0, dtype=np.int64)
    assert rank(snapshot, PROFILE, query, Filters(), options, row, candidates=none).suggestions == []
    pinned = rank(snapshot, PROFILE, query, Filters(), options, row, pins=[(1, "tennis")], candidates=none)
    assert pinned.ids == ["tennis"] and pinned.suggestions[0].pinned


def test_rank_rounds_stops_at_the_first_round_with_k_suggestions(snapshot):
    row = snapshot.row_of["flut-1"]
    query, options = query_from_row(snapshot, row), RankOptions(now=NOW, k=2)
    drawn = []

    def rounds():
        for candidates in (np.array([row, snapshot.row_of["tennis"]]), None, np.array([-1])):
            drawn.append(candidates)
            yield candidates

    found = rank_rounds(snapshot, PROFILE, query, rounds(), Filters(), options, row)
    assert len(drawn) == 2 and found.ids == related(snapshot, "flut-1", k=2).ids
    # Never enough: the last round's list, however short.
    short = rank_rounds(snapshot, PROFILE, query, iter([np.array([snapshot.row_of["tennis"]]), np.array([-1])]),
                        Filters(), options, row)
    assert short.suggestions == []


def test_similarities_of_no_rows_in_a_float16_matrix_are_empty():
    matrix = np.eye(4, dtype=np.float16)
    vector = np.array([1, 0, 0, 0], dtype=np.float32)
    assert dense_similarities(matrix, np.zeros(0, dtype=np.int64), vector).shape == (0,)
    np.testing.assert_allclose(dense_similarities(matrix, np.array([2, 0]), vector), [0.0, 1.0])
