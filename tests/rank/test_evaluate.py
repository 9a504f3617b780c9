import json

import numpy as np
import pytest

from recommender.embed.signals import SignalEncoder
from recommender.ingest.profiles import get_profile
from recommender.rank.evaluate import (
    Dataset,
    DatasetError,
    evaluate,
    label_metrics,
    load_dataset,
    union_profile,
)

ARTICLES = [
    {"id": "1", "title": "Erdbeben in Japan", "text": "Ein starkes Erdbeben erschüttert Tokio und Yokohama.", "lang": "de", "cluster": "quake", "topic": "t1"},
    {"id": "2", "title": "Nachbeben in Tokio", "text": "Nach dem Erdbeben in Tokio gibt es weitere Nachbeben.", "lang": "de", "cluster": "quake", "topic": "t1"},
    {"id": "3", "title": "Erdbeben in Chile", "text": "Ein Erdbeben trifft Santiago de Chile, Häuser stürzen ein.", "lang": "de", "cluster": "chile", "topic": "t1"},
    {"id": "4", "title": "Beben in Santiago", "text": "In Santiago de Chile suchen Helfer nach dem Beben Verschüttete.", "lang": "de", "cluster": "chile", "topic": "t1"},
    {"id": "5", "title": "Zinsentscheid der EZB", "text": "Die Europäische Zentralbank senkt die Zinsen.", "lang": "de", "cluster": "ecb", "topic": "t2"},
    {"id": "6", "title": "EZB senkt Leitzins", "text": "Die Zentralbank in Frankfurt senkt erneut die Zinsen.", "lang": "de", "cluster": "ecb", "topic": "t2"},
]
PAIRS = "id1\tid2\tscore\tlang1\tlang2\n1\t2\t1.0\tde\tde\n3\t4\t1.5\tde\tde\n1\t5\t4.0\tde\tde\n2\t6\t3.5\tde\tde\n5\t6\t1.0\tde\tde\n"


@pytest.fixture
def dataset_dir(tmp_path):
    (tmp_path / "articles.jsonl").write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")
    (tmp_path / "pairs.tsv").write_text(PAIRS, encoding="utf-8")
    return tmp_path


def test_load_dataset_reads_pairs_labels_and_topics(dataset_dir):
    dataset = load_dataset(dataset_dir)
    assert len(dataset.articles) == 6 and len(dataset.pairs) == 5
    assert dataset.pairs[0].relevance == 4.0 and dataset.pairs[0].langs == "de-de"
    assert set(dataset.labels) == {"cluster"} and dataset.topics[0] == "t1"


def test_evaluate_reports_pearson_and_label_metrics_for_profile_and_baselines(dataset_dir):
    dataset = load_dataset(dataset_dir)
    tfidf = get_profile("tfidf")
    report = evaluate(dataset, tfidf, [tfidf], SignalEncoder(union_profile([tfidf])))
    assert report["config"]["articles"] == 6
    assert set(report["pairs"]) == {"all", "de-de"} and report["pairs"]["all"]["n"] == 5
    assert report["pairs"]["all"]["pearson"] > 0.8  # related pairs share words, unrelated ones do not
    labels = report["labels"]["cluster"]
    assert 0 < labels["precision@5"] <= 1 and 0 < labels["ndcg@10"] <= 1
    assert "same_topic_other_event@5" in labels
    assert report["baselines"]["tfidf"]["pairs"] == report["pairs"]


def test_label_metrics_by_hand():
    dataset = Dataset("hand", articles=[None] * 4, labels={"cluster": ["a", "a", "b", "b"]}, topics=["t", "t", "t", "t"])
    # 0 and 2 rank each other first (wrong) and their partner second; 1 and 3 find their partner first.
    sim = np.array([[1, .5, .9, .1], [.5, 1, .1, .1], [.9, .1, 1, .8], [.1, .1, .8, 1]])
    metrics = label_metrics(dataset, sim, "cluster")
    # top-5 of 4 articles holds the 3 others: one right of three for everyone.
    assert metrics["precision@5"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["ndcg@10"] == pytest.approx((2 / np.log2(3) + 2) / 4, abs=1e-4)
    assert metrics["same_topic_other_event@5"] == pytest.approx(2 / 3, abs=1e-4)


def test_missing_or_unlabelled_dataset_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="articles.jsonl"):
        load_dataset(tmp_path)
    (tmp_path / "articles.jsonl").write_text(json.dumps({"id": "1", "text": "x"}) + "\n")
    with pytest.raises(DatasetError, match="nothing to evaluate"):
        load_dataset(tmp_path)
    (tmp_path / "articles.jsonl").write_text("{broken\n")
    with pytest.raises(DatasetError, match=":1: not a valid article"):
        load_dataset(tmp_path)


def test_union_profile_computes_each_signal_once():
    union = union_profile([get_profile("default"), get_profile("use"), get_profile("tfidf")])
    names = [s.name for s in union.signals]
    assert len(names) == len(set(names)) and {"use", "tfidf"} <= set(names)
