import json
import os

import numpy as np
import pytest
from conftest import make_article, unit_rows

from recommender.embed.encoders import TfidfModel
from recommender.embed.vectors import SignalArrays
from recommender.index.search import ExactSearch
from recommender.index.snapshot import (
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    load_snapshot,
    new_snapshot_dir,
    profile_fingerprint,
    publish,
    resolve_snapshot,
    write_snapshot,
)
from recommender.ingest.profiles import get_profile

PROFILE = get_profile("fast")
IDENTITIES = {"use": {"backend": "test"}, "minilm": {"backend": "test"}, "tfidf": TfidfModel().identity(),
              "names": TfidfModel("names").identity()}


def build(index_dir, articles, seed=0):
    texts = [f"{a.title} {a.body}" for a in articles]
    rng = np.random.default_rng(seed)
    words, names = TfidfModel().fit(texts), TfidfModel("names").fit(texts)
    arrays = SignalArrays({"use": unit_rows(rng, len(articles), 8), "minilm": unit_rows(rng, len(articles), 4)},
                          {"tfidf": words.transform(texts), "names": names.transform(texts)},
                          {"tfidf": words, "names": names})
    target = new_snapshot_dir(index_dir)
    write_snapshot(target, articles, arrays, PROFILE, IDENTITIES)
    return target, arrays


@pytest.fixture
def articles():
    return [make_article(f"a{i}", f"Titel {i}", f"Text über Thema {i % 3}.", days_ago=i) for i in range(6)]


def test_round_trip_keeps_vectors_metadata_and_configuration(tmp_path, articles):
    target, arrays = build(tmp_path, articles)
    snapshot = load_snapshot(target, expected=profile_fingerprint(PROFILE, IDENTITIES))
    assert len(snapshot) == 6 and snapshot.row_of["a3"] == 3
    # Stored as float16; a small (exactly scanned) index is widened to float32 in memory at load.
    assert snapshot.manifest["vector_dtype"] == "float16" and snapshot.dense["use"].dtype == np.float32
    np.testing.assert_allclose(snapshot.dense["use"], arrays.dense["use"], atol=1e-3)
    assert not snapshot.searched_by_graph and isinstance(snapshot.search, ExactSearch)
    for name in ("tfidf", "names"):
        assert (snapshot.sparse[name] != arrays.sparse[name]).nnz == 0
    assert snapshot.sparse_models["names"].analyzer == "names"
    assert snapshot.articles[0]["teaser"] == "Text über Thema 0." and snapshot.articles[0]["teaser_generated"]
    assert snapshot.published_at[2] == int(articles[2].published_at.timestamp())
    assert "nope" not in snapshot.row_of and [a["id"] for a in snapshot.articles] == [a.id for a in articles]
    query = snapshot.sparse_models["tfidf"].transform(["Titel 1 Text über Thema 1."])
    assert abs((query @ arrays.sparse["tfidf"][1].T).toarray()[0, 0] - 1.0) < 1e-5


def test_flipped_byte_is_refused(tmp_path, articles):
    target, _ = build(tmp_path, articles)
    vectors = target / "dense_use.npy"
    data = bytearray(vectors.read_bytes())
    data[-3] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="dense_use.npy does not match its checksum"):
        load_snapshot(target)


def test_missing_file_and_edited_manifest_are_refused(tmp_path, articles):
    target, _ = build(tmp_path, articles)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"]["published_at.npy"]["bytes"] += 1
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="checksum does not match its file list"):
        load_snapshot(target)
    target2, _ = build(tmp_path, articles)
    (target2 / "sparse_tfidf_idf.npy").unlink()
    with pytest.raises(IndexCorrupt, match="sparse_tfidf_idf.npy is missing"):
        load_snapshot(target2)


def test_other_configuration_is_refused(tmp_path, articles):
    target, _ = build(tmp_path, articles)
    other = profile_fingerprint(get_profile("default"), IDENTITIES)
    with pytest.raises(IndexMismatch, match="profile 'fast' vs 'default'"):
        load_snapshot(target, expected=other)
    newer = profile_fingerprint(PROFILE, {**IDENTITIES, "use": {"backend": "test", "version": "2"}})
    with pytest.raises(IndexMismatch, match="encoder models or versions"):
        load_snapshot(target, expected=newer)


def test_publish_swaps_current_and_keeps_the_newest_snapshots(tmp_path, articles):
    with pytest.raises(IndexNotFound, match="recommender index"):
        resolve_snapshot(tmp_path)
    published = []
    for seed in range(4):
        target, _ = build(tmp_path, articles, seed)
        publish(tmp_path, target, keep=2)
        published.append(target)
        assert resolve_snapshot(tmp_path) == target.resolve()
        assert os.readlink(tmp_path / "current") == os.path.join("snapshots", target.name)
    remaining = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert remaining == sorted(p.name for p in published[-2:])
    assert load_snapshot(tmp_path).version == published[-1].name


def test_link_to_a_missing_snapshot_is_reported(tmp_path):
    os.symlink("snapshots/gone", tmp_path / "current")
    with pytest.raises(IndexCorrupt, match="holds no manifest.json"):
        resolve_snapshot(tmp_path)


def test_a_large_index_of_a_profile_without_dense_signals_is_scanned_exactly(tmp_path, articles):
    from recommender.index.graph import SearchLayout

    texts = [f"{a.title} {a.body}" for a in articles]
    words = TfidfModel().fit(texts)
    arrays = SignalArrays({}, {"tfidf": words.transform(texts)}, {"tfidf": words})
    target = write_snapshot(new_snapshot_dir(tmp_path), articles, arrays, get_profile("tfidf"),
                            {"tfidf": words.identity()}, layout=SearchLayout(ann_min_articles=2))
    snapshot = load_snapshot(target)
    assert not snapshot.searched_by_graph and snapshot.manifest["graphs"] == [] and len(snapshot) == 6
