"""Snapshots written before the restructure (tests/fixtures) load unchanged and answer exactly as they did.

tests/fixtures/index-exact and index-graph hold the 12 articles of corpus/ under the default profile (the
graph one built with ann_min_articles=6, candidates=4); expected_related.json holds, per article, its related
list for k=5 without filters and for k=3 with lang=en ("<id>|en"), computed at a fixed moment.
"""
import json
from datetime import datetime
from pathlib import Path

import pytest

from recommender.config import load_settings
from recommender.engine import Recommender
from recommender.index.snapshot import FORMAT_VERSION, load_snapshot
from recommender.rank.ranking import Filters

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected_related.json").read_text(encoding="utf-8"))
NOW = datetime.fromisoformat(EXPECTED["now"])
SETTINGS = {"exact": {}, "graph": {"ann_min_articles": 6, "candidates": 4}}


class FixedTime(Recommender):
    """A recommender whose ages and embargo are measured from NOW, the moment the answers were computed at."""

    def options(self, k=None, now=None):
        return super().options(k, now or NOW)


@pytest.fixture(scope="module", params=["exact", "graph"])
def engine(request):
    kind = request.param
    # min_relatedness 0: the lists were written before the threshold existed (its effect: docs/quality.md).
    settings = load_settings(environ={}, index_dir=str(FIXTURES / f"index-{kind}"), cache_dir="", state_dir="",
                             min_relatedness=0.0, **SETTINGS[kind])
    engine = FixedTime.open(settings)
    engine.clock = NOW.timestamp
    return kind, engine


@pytest.mark.parametrize("kind", ["exact", "graph"])
def test_the_fixtures_load_verified_in_todays_format(kind):
    snapshot = load_snapshot(FIXTURES / f"index-{kind}", verify=True)
    assert snapshot.manifest["format_version"] == FORMAT_VERSION and len(snapshot) == 12
    assert snapshot.searched_by_graph == (kind == "graph")


def test_related_lists_and_scores_are_those_of_the_code_that_wrote_them(engine):
    kind, engine = engine
    answers = EXPECTED["answers"][kind]
    assert len(answers) == 24
    for key, want in answers.items():
        article_id, _, lang = key.partition("|")
        if lang:
            got = engine.related(article_id, 3, Filters(langs=(lang,)))
        else:
            got = engine.related(article_id, EXPECTED["k"])
        assert [s.id for s in got.suggestions] == [i for i, _ in want], key
        assert [s.score for s in got.suggestions] == pytest.approx([s for _, s in want], abs=1e-6), key
