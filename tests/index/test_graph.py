"""usearch graphs and candidate lists: which signals get a graph, padding, never the article itself."""
import numpy as np
from conftest import unit_rows

from recommender.index.graph import (
    NO_NEIGHBOUR,
    SearchLayout,
    _unique_per_row,
    build_graph,
    candidate_lists,
    graph_signals,
    search_graphs,
)
from recommender.ingest.profiles import (
    TFIDF_VIEW,
    USE_VIEW,
    Profile,
    SignalSpec,
    get_profile,
)


def test_graphs_go_to_the_signals_that_carry_the_score():
    assert graph_signals(get_profile("default")) == ["e5"]
    assert graph_signals(get_profile("tfidf")) == []
    spread = Profile("spread", (SignalSpec("a", "use", USE_VIEW, 0.1), SignalSpec("b", "use", USE_VIEW, 0.15),
                                SignalSpec("w", "tfidf", TFIDF_VIEW, 0.75)))
    assert graph_signals(spread) == ["b"]  # none reaches the share: the heaviest dense one


def test_repeated_rows_and_the_row_itself_are_dropped_in_order():
    found = np.array([[3, 1, 3, 2], [1, 0, 1, NO_NEIGHBOUR]])
    assert _unique_per_row(found, np.array([2, 0])).tolist() == [[3, 1, NO_NEIGHBOUR, NO_NEIGHBOUR],
                                                               [1, NO_NEIGHBOUR, NO_NEIGHBOUR, NO_NEIGHBOUR]]


def test_lists_of_a_tiny_index_are_padded_after_the_real_rows():
    vectors = {"v": unit_rows(np.random.default_rng(0), 5, 8)}
    layout = SearchLayout(candidates=6, threads=1)
    graphs = {"v": build_graph(vectors["v"], layout)}
    found = search_graphs(graphs, {"v": vectors["v"][:2]}, 8)
    assert found.shape == (2, 5) and (found[:, 0] == [0, 1]).all()  # at most the rows there are
    lists = candidate_lists(vectors, graphs, layout)
    assert lists.shape == (5, 6) and lists.dtype == np.int32
    for row, listed in enumerate(lists):
        assert sorted(listed[:4]) == sorted(set(range(5)) - {row}) and (listed[4:] == NO_NEIGHBOUR).all()
