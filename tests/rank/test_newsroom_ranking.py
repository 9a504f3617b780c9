"""Ranking a newsroom can steer: calibrated relatedness, relation labels, thresholds and fallbacks,
placements, freshness per section and evergreen articles, only_before, diversity and language preference."""
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
from conftest import make_article

from recommender.config import ConfigError, load_settings
from recommender.embed.encoders import TfidfModel
from recommender.embed.signals import SignalEncoder
from recommender.embed.vectors import SignalArrays
from recommender.engine import Recommender, UnknownPlacement
from recommender.index.graph import SearchLayout
from recommender.index.search import GraphSearch
from recommender.index.snapshot import Snapshot
from recommender.ingest.calibration import IDENTITY, SAME_STORY, Calibration
from recommender.ingest.profiles import (
    TFIDF_VIEW,
    USE_VIEW,
    Profile,
    SignalSpec,
    get_profile,
)
from recommender.rank.placements import (
    BUILT_IN,
    Options,
    PlacementError,
    check_option,
    placements_from,
)
from recommender.rank.ranking import Filters
from recommender.rank.relations import relation
from recommender.rank.selection import Selection, select

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
DAY = 86400.0
PROFILE = Profile("newsroom", (SignalSpec("use", "use", USE_VIEW, 1.0), SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 0.0)))


class StubEncoder(SignalEncoder):
    def __init__(self) -> None:
        super().__init__(PROFILE)


def unit(vectors):
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def newsroom():
    """An article (a0) with three pieces of its story (a similarity of about 0.95: one before it, one a day
    after, one ten days after), two related pieces (about 0.6), and unrelated stories: sport (one evergreen),
    English politics, and scheduled ones."""
    rng = np.random.default_rng(3)
    base = np.eye(8)[0]
    specs = [  # id, direction weight on the story axis, days ago (negative: after NOW), section, lang, evergreen
        ("a0", 1.0, 5, "Politik", "de", False),
        ("s-before", 0.95, 9, "Politik", "de", False),
        ("s-next-day", 0.95, 4, "Politik", "de", False),
        ("s-later", 0.95, 0, "Politik", "de", False),
        ("r1", 0.6, 30, "Politik", "de", False),
        ("r2", 0.6, 3, "Politik", "en", False),
        ("sport-new", 0.0, 1, "Sport", "de", False),
        ("sport-old", 0.0, 400, "Sport", "de", True),
        ("sport-mid", 0.0, 50, "Sport", "de", False),
        ("pol-en", 0.1, 2, "Politik", "en", False),
        ("pol-de", 0.1, 0.5, "Politik", "de", False),
    ]
    articles, vectors = [], []
    for i, (article_id, weight, days_ago, section, lang, evergreen) in enumerate(specs):
        other = np.eye(8)[1 + i % 7]
        vectors.append(weight * base + np.sqrt(max(1 - weight ** 2, 0)) * other + 0.01 * rng.normal(size=8))
        article = make_article(article_id, f"Titel {article_id}", f"Text {article_id} wort{i} mehr{i}.",
                               days_ago=days_ago, lang=lang, section=section, now=NOW)
        articles.append(replace(article, evergreen=evergreen))
    texts = [f"{a.title} {a.body}" for a in articles]
    model = TfidfModel().fit(texts)
    arrays = SignalArrays({"use": unit(vectors)}, {"tfidf": model.transform(texts)}, {"tfidf": model})
    return articles, arrays


def engine_over(articles, arrays, search=None, **settings):
    values = {"recency_weight": 0.0, "min_relatedness": 0.0, **settings}
    engine = Recommender(load_settings(environ={}, state_dir="", cache_dir="", **values),
                         Snapshot.in_memory(articles, arrays, search=search), PROFILE, StubEncoder())
    engine.clock = NOW.timestamp
    # Ages measured from NOW, not from the day the test runs.
    engine.options = lambda k=None, now=None: Recommender.options(engine, k, now or NOW)
    return engine


def test_the_calibration_maps_similarity_to_a_monotone_relatedness():
    default = get_profile("default")
    values = default.relatedness(np.linspace(-1, 1, 201))
    assert values.dtype == np.float32 and values.min() == 0.0 and values.max() == 1.0
    assert np.all(np.diff(values) >= 0)
    assert default.calibration.fitted_on == "semeval2022-dev" and default.calibration is not IDENTITY
    assert PROFILE.calibration is IDENTITY  # a profile without a fit: similarity, clipped
    assert PROFILE.relatedness(np.array([-0.2, 0.4, 1.3])).tolist() == pytest.approx([0.0, 0.4, 1.0])
    with pytest.raises(ValueError):
        Calibration((0.5, 0.2), (0.0, 1.0))


def test_relations_follow_relatedness_and_publication_order():
    assert relation(0.2, 0.0, 0.0, 2.0) == "related_topic"
    assert relation(SAME_STORY, 1 * DAY, 0.0, 2.0) == "same_story"
    assert relation(0.9, 3 * DAY, 0.0, 2.0) == "follow_up"
    assert relation(0.9, -3 * DAY, 0.0, 2.0) == "background"
    assert relation(0.9, -300 * DAY, None, 2.0) == "same_story"  # no date to compare with


def test_selection_prefers_a_language_caps_a_story_and_spreads_by_mmr():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert select(scores, 3, Selection()) == [0, 1, 2]
    preferred = np.array([False, True, False, True, False])
    assert select(scores, 3, Selection(prefer_lang="de"), preferred) == [1, 3, 0]
    same = np.ones((5, 5), dtype=bool)
    same[:, 4] = same[4, :] = False
    np.fill_diagonal(same, True)
    assert select(scores, 3, Selection(max_per_story=2), same_story=same) == [0, 1, 4]
    similarity = np.where(same, 0.95, 0.1)
    assert select(scores, 2, Selection(mmr_lambda=0.5), similarity=similarity) == [0, 4]


def test_placement_options_are_checked_with_their_bounds():
    assert check_option("k", 3, 50) == 3 and check_option("prefer_lang", "DE", 50) == "de"
    for name, value in [("k", 0), ("k", 51), ("k", True), ("min_relatedness", 1.5), ("mmr_lambda", 0.0),
                        ("fallback", "random"), ("only_before", "yes"), ("half_life_days", float("inf")),
                        ("prefer_lang", "deutsch"), ("section", ["x" * 101]), ("colour", 1)]:
        with pytest.raises(PlacementError):
            check_option(name, value, 50)
    placements = placements_from({"teaser_box": {"k": 2, "min_relatedness": 0.3}}, 50)
    assert set(placements) == {*BUILT_IN, "teaser_box"} and placements["teaser_box"].k == 2
    with pytest.raises(PlacementError, match="placement 'sidebar': unknown option 'kk'"):
        placements_from({"sidebar": {"kk": 2}}, 50)
    assert Options(k=2).over(Options(k=5, fallback="recent")) == Options(k=2, fallback="recent")


def test_a_placement_with_a_typo_stops_the_engine_at_start_up(newsroom):
    with pytest.raises(ConfigError, match="placements"):
        engine_over(*newsroom, placements={"sidebar": {"fallback": "sometimes"}})


def test_answers_carry_relatedness_and_labels_by_publication_order(newsroom):
    engine = engine_over(*newsroom)
    related = {s.id: s for s in engine.related("a0", 5).suggestions}
    assert set(list(related)[:3]) == {"s-next-day", "s-before", "s-later"}  # its own story first
    # a0 was published 5 days before NOW; the story window is 2 days.
    assert related["s-next-day"].relation == "same_story"  # a day after it
    assert related["s-before"].relation == "background"  # 4 days before it
    assert related["s-later"].relation == "follow_up"  # 5 days after it
    assert related["r1"].relation == "related_topic"
    for suggestion in related.values():
        assert 0.0 <= suggestion.relatedness <= 1.0
        assert suggestion.relatedness == pytest.approx(float(PROFILE.relatedness(suggestion.similarity)))


def test_the_story_window_decides_background_and_follow_up(newsroom):
    narrow = {s.id: s.relation for s in engine_over(*newsroom, story_window_days=0.5).related("a0", 3).suggestions}
    assert narrow == {"s-next-day": "follow_up", "s-before": "background", "s-later": "follow_up"}
    wide = {s.id: s.relation for s in engine_over(*newsroom, story_window_days=10).related("a0", 3).suggestions}
    assert set(wide.values()) == {"same_story"}


def test_min_relatedness_leaves_a_short_list_and_the_fallback_fills_it(newsroom):
    engine = engine_over(*newsroom)
    strict = engine.related("a0", 5, request=Options(min_relatedness=0.9))
    assert {s.id for s in strict.suggestions} == {"s-before", "s-next-day", "s-later"}
    assert strict.removed["min_relatedness"] > 0
    filled = engine.related("a0", 5, request=Options(min_relatedness=0.9, fallback="recent_same_section"))
    fallback = [s for s in filled.suggestions if s.relation == "fallback"]
    assert [s.id for s in filled.suggestions[:3]] == [s.id for s in strict.suggestions]
    # The newest Politik stories not listed yet: never the article, never another section.
    assert [s.id for s in fallback] == ["pol-de", "pol-en"]
    # A section filter names the sections the list wants: the fallback takes the newest of those.
    sport = engine.related("a0", 2, Filters(sections=("Sport",)),
                           request=Options(min_relatedness=0.9, fallback="recent_same_section"))
    assert [(s.id, s.relation) for s in sport.suggestions] == [("sport-new", "fallback"), ("sport-mid", "fallback")]
    anywhere = engine.related("a0", 5, request=Options(min_relatedness=0.9, fallback="recent"))
    assert [s.id for s in anywhere.suggestions if s.relation == "fallback"] == ["pol-de", "sport-new"]


def test_the_fallback_never_brings_an_excluded_or_scheduled_story(newsroom):
    articles, arrays = newsroom
    scheduled = make_article("scheduled", "Titel geplant", "Text geplant wort99.", days_ago=-1, now=NOW)
    engine = engine_over([*articles, scheduled], SignalArrays(
        {"use": np.vstack([arrays.dense["use"], arrays.dense["use"][-1:]])},
        {"tfidf": arrays.sparse_models["tfidf"].transform([f"{a.title} {a.body}" for a in [*articles, scheduled]])},
        arrays.sparse_models))
    ids = engine.related("a0", 6, Filters(exclude_ids=("pol-de",)),
                         request=Options(min_relatedness=0.9, fallback="recent")).ids
    assert "scheduled" not in ids and "pol-de" not in ids and "a0" not in ids and len(ids) == 6


def test_a_threshold_stops_a_graph_search_from_widening(newsroom):
    articles, arrays = newsroom
    graph = GraphSearch(["use"], SearchLayout(candidates=4, threads=1)).build(arrays.dense)
    engine = engine_over(articles, arrays, search=graph, candidates=4)
    drawn = []
    rounds = graph.rounds

    def recording(*args, **kwargs):
        for candidates in rounds(*args, **kwargs):
            drawn.append(candidates)
            yield candidates

    engine.snapshot.search.rounds = recording
    engine.related("a0", 5, request=Options(min_relatedness=0.9))
    assert len(drawn) == 1  # its own list reached below the threshold: nothing wider can pass it


def test_only_before_keeps_the_background(newsroom):
    engine = engine_over(*newsroom)
    published_a0 = engine.snapshot.published_at[engine.snapshot.row_of["a0"]]
    related = engine.related("a0", 8, request=Options(only_before=True))
    assert related.suggestions and all(engine.snapshot.published_at[s.row] < published_a0
                                       for s in related.suggestions)
    assert related.removed["only_before"] > 0


def test_evergreen_articles_and_section_half_lives_change_freshness(newsroom):
    engine = engine_over(*newsroom, recency_weight=0.5, section_half_life_days={"sport": 1.0})
    fresh = {s.id: s.freshness for s in engine.related("a0", 10, Filters(sections=("Sport",))).suggestions}
    assert fresh["sport-old"] == 1.0  # evergreen: no decay after 400 days
    assert fresh["sport-mid"] < 1e-6  # 50 days at a one-day half-life
    assert fresh["sport-new"] == pytest.approx(0.5, abs=0.01)
    default = engine_over(*newsroom, recency_weight=0.5)
    assert {s.id: s.freshness for s in default.related("a0", 10, Filters(sections=("Sport",))).suggestions}[
        "sport-mid"] == pytest.approx(0.5 ** (50 / 30), rel=1e-3)


def test_prefer_lang_puts_the_language_first_and_fills_with_others(newsroom):
    engine = engine_over(*newsroom)
    ids = engine.related("a0", 6, request=Options(prefer_lang="en")).ids
    assert ids[:2] == ["r2", "pol-en"] and len(ids) == 6


def test_max_per_story_caps_the_pieces_of_one_story(newsroom):
    engine = engine_over(*newsroom)
    ids = engine.related("a0", 4, request=Options(max_per_story=1)).ids
    assert len([i for i in ids if i.startswith("s-")]) == 1 and len(ids) == 4


def test_placements_apply_and_a_request_overrides_them(newsroom):
    engine = engine_over(*newsroom, placements={"box": {"k": 2, "section": ["Sport"]}})
    assert len(engine.related("a0", placement="box").suggestions) == 2
    assert all(s.id.startswith("sport") for s in engine.related("a0", placement="box").suggestions)
    assert len(engine.related("a0", 3, placement="box").suggestions) == 3
    assert len(engine.related("a0", placement="sidebar").suggestions) == 3
    with pytest.raises(UnknownPlacement, match="known: archive, article_bottom, box, sidebar"):
        engine.related("a0", placement="footer")


def test_the_fallback_finds_the_newest_among_loaded_and_live_rows(newsroom):
    from recommender.index.live import LiveRows, live_view

    articles, arrays = newsroom
    engine = engine_over(articles, arrays)
    fresh = make_article("live-news", "Titel live", "Text live wort77 ganz neu.", days_ago=0.1, now=NOW)
    vector = unit([np.eye(8)[7]])[0]
    engine.snapshot = live_view(engine.snapshot, [(fresh, {"use": vector})], 1,
                                LiveRows(engine.snapshot.sparse_models, engine.encoder.lexical_rows))
    filled = engine.related("a0", 5, request=Options(min_relatedness=0.9, fallback="recent"))
    assert [s.id for s in filled.suggestions if s.relation == "fallback"] == ["live-news", "pol-de"]
    # The loaded rows' order is sorted once and reused by every later live view of that snapshot.
    assert engine._newest is not None and engine._newest[0][1] == len(articles)


def test_a_half_life_the_request_names_holds_for_every_section(newsroom):
    engine = engine_over(*newsroom, recency_weight=0.5, section_half_life_days={"sport": 1.0})
    fresh = {s.id: s.freshness for s in engine.related("a0", 10, Filters(sections=("Sport",)),
                                                       request=Options(half_life_days=50.0)).suggestions}
    assert fresh["sport-mid"] == pytest.approx(0.5, rel=1e-3)  # 50 days at the request's 50-day half-life
