"""The engine over in-memory snapshots: it ranks the rounds its snapshot's search gives, only as many as it
needs, and a graph-searched snapshot answers like the exactly scanned one."""
from datetime import datetime, timezone

import numpy as np
import pytest
from conftest import make_article

from recommender.config import load_settings
from recommender.embed.encoders import TfidfModel
from recommender.embed.signals import RawText, SignalEncoder
from recommender.embed.vectors import SignalArrays
from recommender.engine import Recommender, UnknownArticle
from recommender.index.graph import SearchLayout
from recommender.index.live import LiveRows, live_view
from recommender.index.search import ExactSearch, GraphSearch
from recommender.index.snapshot import Snapshot
from recommender.ingest.profiles import (
    NAMES_VIEW,
    TFIDF_VIEW,
    USE_VIEW,
    Profile,
    SignalSpec,
)
from recommender.rank.ranking import Filters

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
PROFILE = Profile("engine", (SignalSpec("use", "use", USE_VIEW, 0.8), SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 0.0),
                             SignalSpec("names", "names", NAMES_VIEW, 0.2)))
STORIES, PER_STORY, DIM, CANDIDATES = 24, 8, 16, 8
# No relatedness threshold: these tests follow the search rounds, which a threshold would end early.
SETTINGS = load_settings(environ={}, state_dir="", cache_dir="", candidates=CANDIDATES, recency_weight=0.05,
                         min_relatedness=0.0)


class StubEncoder(SignalEncoder):
    """The profile's lexical models, and for a draft the dense vector given for its title (no model loads)."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        super().__init__(PROFILE)
        self.vectors = vectors

    def embed_dense(self, text):
        return {"use": self.vectors[text.title]}


class Recording:
    """A search that records which rounds the engine drew and what the filters allowed."""

    def __init__(self, inner):
        self.inner, self.drawn, self.allowed = inner, [], []
        self.approximate = inner.approximate

    def rounds(self, query, count, n_rows, row=None, allowed=None, added=None):
        def asked():
            self.allowed.append(np.flatnonzero(allowed()))
            return allowed()

        for candidates in self.inner.rounds(query, count, n_rows, row, asked, added):
            self.drawn.append(candidates)
            yield candidates


def story_articles(rng):
    """Articles in stories, a direction and a few words shared per story; story 0 alone is in French."""
    articles, vectors, words = [], [], [f"wort{i}" for i in range(300)]
    centres = rng.normal(size=(STORIES, DIM))
    for story in range(STORIES):
        lang = "fr" if story == 0 else ("de" if story % 2 else "en")
        shared = rng.choice(words, 5, replace=False)
        for member in range(PER_STORY):
            own = rng.choice(words, 5, replace=False)
            body = " ".join([*shared, *own, f"Ort{story}"]) + "."
            articles.append(make_article(f"s{story}-{member}", f"Geschichte {story} Teil {member}", body,
                                         days_ago=story + member * 0.1, lang=lang, now=NOW))
            vectors.append(centres[story] + 0.5 * rng.normal(size=DIM))
    vectors = np.asarray(vectors, dtype=np.float32)
    return articles, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def corpus():
    articles, vectors = story_articles(np.random.default_rng(5))
    texts = [f"{a.title} {a.body}" for a in articles]
    models = {"tfidf": TfidfModel().fit(texts), "names": TfidfModel("names").fit(texts)}
    arrays = SignalArrays({"use": vectors}, {n: m.transform(texts) for n, m in models.items()}, models)
    return articles, arrays


def engine_of(snapshot, vectors=None):
    engine = Recommender(SETTINGS, snapshot, PROFILE, StubEncoder(vectors or {}))
    engine.clock = NOW.timestamp
    return engine


@pytest.fixture(scope="module")
def engines(corpus):
    articles, arrays = corpus
    graph = GraphSearch(["use"], SearchLayout(candidates=CANDIDATES, threads=1)).build(arrays.dense)
    return (engine_of(Snapshot.in_memory(articles, arrays)),
            engine_of(Snapshot.in_memory(articles, arrays, search=graph)))


def test_an_in_memory_snapshot_has_its_columns_and_an_exact_search(corpus):
    articles, arrays = corpus
    snapshot = Snapshot.in_memory(articles, arrays, name="test")
    assert isinstance(snapshot.search, ExactSearch) and not snapshot.searched_by_graph
    assert len(snapshot) == len(articles) and snapshot.version == "test" and snapshot.row_of["s3-2"] == 26
    assert snapshot.lang_values[snapshot.lang_codes[0]] == "fr" and snapshot.lang_mask(np.arange(8), ["fr"]).all()
    assert snapshot.section_mask(np.array([0]), ["POLITIK"]).all()
    assert 26 in snapshot.titles.rows_with(["GESCHICHTE", "3", "teil", "2"]).tolist()
    assert snapshot.published_at[0] == int(articles[0].published_at.timestamp())


def test_an_exact_snapshot_is_ranked_in_one_scan(corpus):
    articles, arrays = corpus
    snapshot = Snapshot.in_memory(articles, arrays)
    snapshot.search = recording = Recording(snapshot.search)
    ids = engine_of(snapshot).related("s3-2", 5, Filters(langs=("fr",))).ids
    assert recording.drawn == [None] and recording.allowed == []  # every row scanned, no second round
    assert len(ids) == 5 and all(i.startswith("s0-") for i in ids)


def test_the_engine_draws_rounds_only_while_it_has_fewer_than_k(corpus, engines):
    articles, arrays = corpus
    _, graph = engines
    snapshot = Snapshot.in_memory(articles, arrays, search=Recording(graph.snapshot.search))
    engine = engine_of(snapshot)
    engine.related("s3-2", 5)
    assert len(snapshot.search.drawn) == 1  # the article's own list is enough
    snapshot.search.drawn.clear()
    # Only story 0 is French, and the list of an article of story 3 holds none of it: wider, then exact.
    ids = engine.related("s3-2", 5, Filters(langs=("fr",))).ids
    assert len(snapshot.search.drawn) == 3 and len(ids) == 5 and all(i.startswith("s0-") for i in ids)
    assert snapshot.search.allowed[-1].tolist() == list(range(PER_STORY))  # what the filters allow, no more


def test_graph_and_exact_snapshots_answer_alike(corpus, engines):
    articles, _ = corpus
    exact, graph = engines
    for article in articles[::5]:
        for filters in (Filters(), Filters(langs=("fr",)), Filters(langs=("en",), max_age_days=12)):
            want = exact.related(article.id, 5, filters)
            got = graph.related(article.id, 5, filters)
            assert article.id not in got.ids
            # Each call measures ages from its own present: scores agree to float32 precision, not bit for bit.
            assert got.ids == want.ids
            assert [s.score for s in got.suggestions] == pytest.approx([s.score for s in want.suggestions], abs=1e-6)


def test_filters_that_allow_nothing_give_an_empty_list(engines):
    for engine in engines:
        assert engine.related("s3-2", 5, Filters(sections=("Kultur",))).suggestions == []


def test_a_draft_is_searched_through_the_graph(corpus, engines):
    articles, arrays = corpus
    exact, graph = engines
    draft = RawText(title="Entwurf", body=articles[40].body)
    vectors = {"Entwurf": arrays.dense["use"][40]}
    for engine in (exact, graph):
        engine.encoder = StubEncoder(vectors)
    want = exact.related_to_text(draft, 5, now=NOW).ids
    assert graph.related_to_text(draft, 5, now=NOW).ids == want and all(i.startswith("s5-") for i in want)


def test_articles_added_after_the_build_are_candidates_of_every_query(corpus, engines):
    articles, arrays = corpus
    _, graph = engines
    fresh = make_article("s9-new", "Geschichte 9 neu", articles[72].body + " Neu.", days_ago=0, now=NOW)
    vector = arrays.dense["use"][72] + arrays.dense["use"][73]
    view = live_view(graph.base, [(fresh, {"use": vector / np.linalg.norm(vector)})],
                     1, LiveRows(graph.base.sparse_models, graph.encoder.lexical_rows))
    engine = engine_of(view)
    assert view.search is graph.base.search and view.search.n_rows_ == len(view) - 1
    assert "s9-new" in engine.related("s9-2", 3).ids
    assert engine.related("s9-new", 5).ids[0].startswith("s9-")  # a live row searches the graph


def test_unknown_articles_are_refused(engines):
    with pytest.raises(UnknownArticle, match="not in the index"):
        engines[1].related("nope")


def test_newest_order_keeps_row_order_among_equal_dates():
    """Newest first, ties in row order, over the rows the snapshot was loaded with (not those laid over it)."""
    from types import SimpleNamespace

    from recommender.engine import newest_order

    stamps = np.random.default_rng(5).integers(-50, 50, size=5_000) * 86_400 + 1_700_000_000  # many ties
    snapshot = SimpleNamespace(manifest={"n_articles": 4_000}, published_at=stamps)  # 1,000 rows laid over
    expected = np.argsort(-stamps[:4_000], kind="stable")
    assert np.array_equal(newest_order(snapshot), expected) and newest_order(snapshot).dtype == np.int32


def test_warming_up_ranks_articles_spread_over_the_snapshot_and_never_raises(corpus, monkeypatch):
    articles, arrays = corpus
    engine = engine_of(Snapshot.in_memory(articles, arrays))
    ranked, real = [], engine.related

    def related(article_id, *args, **kwargs):
        ranked.append(article_id)
        if len(ranked) == 2:  # one broken article: the others are still ranked
            raise RuntimeError("broken row")
        return real(article_id, *args, **kwargs)

    def refresh(*args, **kwargs):
        raise OSError("state: disk I/O error")  # logged: the worker still boots

    monkeypatch.setattr(engine, "related", related)
    monkeypatch.setattr(engine, "refresh", refresh)
    engine.warm_up(count=5)
    ids = [article.id for article in articles]
    assert ranked == [ids[round(i * (len(ids) - 1) / 4)] for i in range(5)] and ranked[-1] == ids[-1]
    engine_of(Snapshot.in_memory(articles[:1], SignalArrays({"use": arrays.dense["use"][:1]}, {}, {}))).warm_up()
