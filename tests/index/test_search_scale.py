"""Large-index search: graphs and precomputed candidate lists give the lists an exact scan gives."""
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import make_article

from recommender.config import load_settings
from recommender.embed.encoders import TfidfModel
from recommender.embed.signals import SignalEncoder
from recommender.embed.vectors import SignalArrays
from recommender.engine import Recommender
from recommender.index.graph import SearchLayout, graph_signals
from recommender.index.live import LiveRows, live_view
from recommender.index.search import ExactSearch, GraphSearch
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
from recommender.rank.ranking import Filters

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
PROFILE = Profile("scale", (SignalSpec("use", "use", USE_VIEW, 0.8), SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 0.0),
                            SignalSpec("names", "names", NAMES_VIEW, 0.2)))
STORIES, PER_STORY, DIM = 60, 10, 24
WORDS = [f"wort{i}" for i in range(400)]


def story_articles(rng):
    """Articles in stories: shared words and a shared direction per story; story 0 is in French."""
    articles, vectors = [], []
    centres = rng.normal(size=(STORIES, DIM))
    for story in range(STORIES):
        lang = "fr" if story == 0 else ("de" if story % 2 else "en")
        shared = rng.choice(WORDS, 6, replace=False)
        for member in range(PER_STORY):
            own = rng.choice(WORDS, 6, replace=False)
            title = f"Geschichte {story} Teil {member} " + " ".join(shared[:3])
            body = " ".join([*shared, *own, "Stadt", f"Ort{story}"]) + "."
            articles.append(make_article(f"s{story}-{member}", title, body, days_ago=story + member * 0.1,
                                         lang=lang, section="Politik" if member % 2 else "Wirtschaft", now=NOW))
            vectors.append(centres[story] + 0.6 * rng.normal(size=DIM))
    vectors = np.asarray(vectors, dtype=np.float32)
    return articles, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def engine_over(index_dir, articles, vectors, layout, settings):
    texts = [f"{a.title} {a.title} {a.body}" for a in articles]
    models = {"tfidf": TfidfModel().fit(texts), "names": TfidfModel("names").fit(texts)}
    encoder = SignalEncoder(PROFILE)  # models load on first use: never here
    identities = encoder.identities()
    arrays = SignalArrays({"use": vectors}, {n: m.transform(texts) for n, m in models.items()}, models)
    target = new_snapshot_dir(index_dir)
    write_snapshot(target, articles, arrays, PROFILE, identities, layout=layout)
    snapshot = load_snapshot(target, expansion_search=settings.ann_expansion)
    return Recommender(settings, snapshot, PROFILE, encoder)


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    rng = np.random.default_rng(7)
    articles, vectors = story_articles(rng)
    settings = load_settings(environ={}, state_dir="", cache_dir="", candidates=30, recency_weight=0.05,
                             min_relatedness=0.0)  # the widening under test, not the threshold
    place = tmp_path_factory.mktemp("scale")
    exact = engine_over(place / "exact", articles, vectors, SearchLayout(ann_min_articles=10_000), settings)
    graph = engine_over(place / "graph", articles, vectors, SearchLayout(ann_min_articles=100, candidates=30), settings)
    return exact, graph, articles, vectors


def test_a_large_index_has_graphs_lists_and_compact_memory_mapped_vectors(engines):
    exact, graph, articles, _ = engines
    snapshot = graph.snapshot
    assert isinstance(snapshot.search, GraphSearch) and snapshot.searched_by_graph
    assert list(snapshot.search.graphs_) == graph_signals(PROFILE) == ["use"]
    assert isinstance(snapshot.dense["use"], np.memmap) and snapshot.dense["use"].dtype == np.float16
    lists = snapshot.search.lists_
    assert isinstance(lists, np.memmap) and lists.shape == (len(articles), 30) and lists.dtype == np.int32
    rows = np.arange(len(articles))[:, None]
    assert not (lists == rows).any()  # never the article itself
    assert isinstance(exact.snapshot.search, ExactSearch) and not exact.snapshot.searched_by_graph


def test_graph_lists_match_the_exact_scan(engines):
    exact, graph, articles, _ = engines
    overlap = []
    for article in articles[::7]:
        want = exact.related(article.id, k=5).ids
        got = graph.related(article.id, k=5).ids
        overlap.append(len(set(want) & set(got)) / len(want))
        assert article.id not in got
    assert np.mean(overlap) >= 0.98


def test_filters_that_empty_the_lists_fall_back_to_a_wider_search(engines):
    exact, graph, articles, _ = engines
    # Only story 0 is French: the lists of a German article hold none of it.
    french = Filters(langs=("fr",))
    source = articles[15].id
    listed = [graph.snapshot.articles[int(r)]["id"] for r in graph.snapshot.search.lists_[15] if r >= 0]
    assert listed and not any(i.startswith("s0-") for i in listed)
    got = graph.related(source, k=5, filters=french).ids
    assert len(got) == 5 and all(i.startswith("s0-") for i in got)
    assert set(got) == set(exact.related(source, k=5, filters=french).ids)


def test_an_article_added_after_the_build_reaches_the_lists_of_old_ones(engines):
    _, graph, articles, vectors = engines
    fresh = make_article("s5-new", articles[50].title + " Neues", "Ganz neue Worte über Ort5.", days_ago=0, now=NOW)
    vector = (vectors[50] + vectors[51]) / np.linalg.norm(vectors[50] + vectors[51])
    view = live_view(graph.base, [(fresh, {"use": vector})],
                     1, LiveRows(graph.base.sparse_models, graph.encoder.lexical_rows))
    graph.snapshot = view
    try:
        assert "s5-new" in graph.related(articles[51].id, k=3).ids
        assert graph.related("s5-new", k=5).ids[0].startswith("s5-")  # a live row is searched through the graph
    finally:
        graph.snapshot = graph.base


def test_among_many_received_articles_the_related_one_still_reaches_old_lists(engines):
    _, graph, articles, vectors = engines
    rng = np.random.default_rng(5)
    others = [(make_article(f"x-{i}", f"Anderes {i}", f"Andere Worte {i}.", days_ago=0, now=NOW),
               {"use": (v := rng.normal(size=vectors.shape[1]).astype(np.float32)) / np.linalg.norm(v)})
              for i in range(150)]  # more than a round takes of them: only their nearest join a request
    fresh = make_article("s5-new", articles[50].title + " Neues", "Ganz neue Worte über Ort5.", days_ago=0, now=NOW)
    vector = (vectors[50] + vectors[51]) / np.linalg.norm(vectors[50] + vectors[51])
    graph.snapshot = live_view(graph.base, [*others, (fresh, {"use": vector})],
                     1, LiveRows(graph.base.sparse_models, graph.encoder.lexical_rows))
    try:
        assert "s5-new" in graph.related(articles[51].id, k=3).ids
        assert not any(i.startswith("x-") for i in graph.related(articles[51].id, k=3).ids)
    finally:
        graph.snapshot = graph.base


def test_editors_find_articles_by_id_or_title_words_newest_first(engines):
    _, graph, articles, _ = engines
    assert [m["id"] for m in graph.find("s7-3")] == ["s7-3"]
    found = graph.find("GESCHICHTE 7 teil 3", limit=1000)
    assert "s7-3" in [m["id"] for m in found]
    assert all(all(w in m["title"].casefold() for w in ("geschichte", "7", "teil", "3")) for m in found)
    assert [m["published_at"] for m in found] == sorted((m["published_at"] for m in found), reverse=True)
    assert graph.find("gibt es nicht") == [] and len(graph.find("Geschichte", limit=7)) == 7


def test_the_embargo_holds_on_precomputed_candidate_lists_of_a_large_index(tmp_path):
    articles, vectors = story_articles(np.random.default_rng(7))
    settings = load_settings(environ={}, state_dir="", cache_dir="", candidates=30, min_relatedness=0.0)
    engine = engine_over(tmp_path / "graph", articles, vectors, SearchLayout(ann_min_articles=100, candidates=30),
                         settings)
    assert engine.snapshot.searched_by_graph
    clock = (NOW - timedelta(days=3.05)).timestamp()  # s3-0 (3.0 days old at NOW) is scheduled
    engine.clock = lambda: clock
    hidden = engine.related("s3-5", k=9)
    published = {a.id: a.published_at.timestamp() for a in articles}
    assert hidden.ids and all(published[i] <= clock for i in hidden.ids) and hidden.removed["embargo"] > 0
    engine.clock = lambda: NOW.timestamp()
    assert "s3-0" in engine.related("s3-5", k=9).ids
