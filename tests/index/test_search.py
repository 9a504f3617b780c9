"""The search contract: GraphSearch against the ExactSearch reference (recall@k), save/load, and the rounds of
candidates a query is ranked over."""
import numpy as np
import pytest

from recommender.index.graph import SearchLayout
from recommender.index.search import WIDEN, ExactSearch, GraphSearch, open_search

N, DIM, CLUSTERS, K = 3000, 32, 40, 10
LAYOUT = SearchLayout(candidates=20, threads=1)


def clustered_unit_rows(rng, n, dim=DIM, clusters=CLUSTERS, spread=0.5):
    """n unit vectors around `clusters` random centres, float32: what article embeddings look like."""
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(clusters, size=n)] + spread * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def dense():
    return {"v": clustered_unit_rows(np.random.default_rng(11), N)}


@pytest.fixture(scope="module")
def searches(dense):
    return ExactSearch().build(dense), GraphSearch(["v"], LAYOUT).build(dense)


def recall_at(k, found, truth):
    return np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)])


def test_exact_search_is_the_brute_force_top_k(dense):
    exact = ExactSearch().build(dense)
    queries = clustered_unit_rows(np.random.default_rng(1), 5)
    found = exact.search({"v": queries}, K)
    assert found.shape == (5, K) and found.dtype == np.int64
    scores = queries @ dense["v"].T
    for i in range(5):
        np.testing.assert_array_equal(found[i], np.argsort(-scores[i], kind="stable")[:K])
    # More asked for than there are rows: every row, as the graphs answer; one query as a plain vector.
    small = ExactSearch().build({"v": dense["v"][:3]})
    assert sorted(small.search({"v": queries[0]}, 5)[0]) == [0, 1, 2]


def test_graph_search_finds_what_the_exact_search_finds(searches):
    exact, graph = searches
    queries = {"v": clustered_unit_rows(np.random.default_rng(2), 200)}
    truth, found = exact.search(queries, K), graph.search(queries, K)
    assert found.shape == truth.shape == (200, K)
    assert recall_at(K, found, truth) >= 0.95


def test_candidate_lists_are_each_rows_nearest_others(searches, dense):
    exact, graph = searches
    lists = graph.lists_
    assert lists.shape == (N, LAYOUT.candidates) and lists.dtype == np.int32
    assert not (lists == np.arange(N)[:, None]).any()  # never the article itself
    sample = np.arange(0, N, 37)
    truth = exact.search({"v": dense["v"][sample]}, LAYOUT.candidates + 1)[:, 1:]  # the row itself first
    assert recall_at(LAYOUT.candidates, lists[sample], truth) >= 0.95


def test_save_and_load_give_the_same_search(searches, dense, tmp_path):
    _, graph = searches
    entries = graph.save(tmp_path)
    assert entries == {"graphs": ["v"], "candidates": LAYOUT.candidates}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates.npy", "graph_v.usearch"]
    manifest = {**entries, "n_articles": N}
    loaded = open_search(tmp_path, manifest, dense, expansion_search=LAYOUT.expansion_search)
    assert isinstance(loaded, GraphSearch) and isinstance(loaded.lists_, np.memmap) and loaded.n_rows_ == N
    np.testing.assert_array_equal(loaded.lists_, graph.lists_)
    queries = {"v": dense["v"][:20]}
    np.testing.assert_array_equal(loaded.search(queries, K), graph.search(queries, K))
    exact_entries = ExactSearch().save(tmp_path)
    assert exact_entries == {"graphs": [], "candidates": 0}
    assert isinstance(open_search(tmp_path, {**exact_entries, "n_articles": N}, dense), ExactSearch)


def test_exact_rounds_are_one_scan_of_every_row(searches, dense):
    exact, _ = searches
    assert list(exact.rounds({"v": dense["v"][0]}, 20, N + 5, row=0, allowed=lambda: 1 / 0)) == [None]


def test_graph_rounds_widen_then_scan_what_the_filters_allow(searches, dense):
    _, graph = searches
    query, live = {"v": dense["v"][7]}, np.arange(N, N + 3)  # three articles added after the build
    asked = []

    def allowed():
        asked.append(True)
        mask = np.zeros(N + 3, dtype=bool)
        mask[[5, 50, N + 1]] = True
        return mask

    rounds = graph.rounds(query, 20, N + 3, row=7, allowed=allowed)
    np.testing.assert_array_equal(next(rounds), np.concatenate([graph.lists_[7], live]))
    np.testing.assert_array_equal(next(rounds), np.concatenate([graph.search(query, WIDEN * 20).ravel(), live]))
    assert not asked  # the filters are only evaluated when the exact round is needed
    np.testing.assert_array_equal(next(rounds), [5, 50, N + 1])
    assert next(rounds, "done") == "done"


def test_graph_rounds_of_a_text_or_a_long_count_search_the_graph(searches, dense):
    _, graph = searches
    query = {"v": dense["v"][7]}
    first = next(graph.rounds(query, 20, N))
    np.testing.assert_array_equal(first, graph.search(query, 20).ravel())
    longer = next(graph.rounds(query, 30, N, row=7))  # more than a list holds
    np.testing.assert_array_equal(longer, graph.search(query, 30).ravel())


def test_no_exact_round_when_the_filters_allow_too_many_rows(dense):
    graph = GraphSearch(["v"], LAYOUT, exact_fallback_rows=100).build({"v": dense["v"][:500]})
    few, many = np.zeros(500, dtype=bool), np.ones(500, dtype=bool)
    few[:100] = True
    assert len(list(graph.rounds({"v": dense["v"][0]}, 5, 500, row=0, allowed=lambda: many))) == 2
    assert len(list(graph.rounds({"v": dense["v"][0]}, 5, 500, row=0, allowed=lambda: few))) == 3
    # Without a mask every row is allowed.
    assert len(list(graph.rounds({"v": dense["v"][0]}, 5, 500, row=0))) == 2


def test_a_served_graph_keeps_its_file_mapped_as_long_as_it_lives(searches, dense, tmp_path):
    import gc
    import weakref

    from recommender.index.graph import open_graph

    _, graph = searches
    graph.save(tmp_path)
    served = open_graph(tmp_path / "graph_v.usearch", LAYOUT.expansion_search)
    mapping = weakref.ref(served.mapped_file)
    gc.collect()  # nothing but the graph holds the mapping its nodes point into
    queries = dense["v"][:20]
    np.testing.assert_array_equal(served.search(queries, K).keys, graph.graphs_["v"].search(queries, K).keys)
    del served
    assert mapping() is None  # unmapped with the graph, by its reference count alone
