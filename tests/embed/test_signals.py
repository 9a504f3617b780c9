import numpy as np
from conftest import make_article
from test_encoders import CountingEncoder

from recommender.embed.signals import RawText, SignalEncoder, mean_of_chunks
from recommender.ingest.profiles import TFIDF_VIEW, Profile, SignalSpec
from recommender.ingest.textprep import TextView

PROFILE = Profile("chunked", (SignalSpec("use", "use", TextView(head_chars=40, chunks=2), 0.7),
                              SignalSpec("tfidf", "tfidf", TFIDF_VIEW, 0.3)))


def test_mean_of_chunks_gives_the_average_pair_similarity():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 5))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.normal(size=(1, 5))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    means = mean_of_chunks(np.vstack([a, b]), [2, 1])
    assert means.shape == (2, 5)
    assert np.isclose(means[0] @ means[1], np.mean(a @ b[0]))


def test_articles_and_queries_are_embedded_chunk_by_chunk():
    encoder = SignalEncoder(PROFILE)
    fake = CountingEncoder()
    encoder.encoders["use"] = fake
    long_body = "Ein langer Text über die Flut an der Donau und die Helfer in Passau am Inn."
    articles = [make_article("a", "Flut", long_body), make_article("b", "Wahl", "Kurz.")]
    seen = []

    class Bar:
        def update(self, n):
            seen.append(n)

    from contextlib import nullcontext

    arrays = encoder.embed_articles(articles, progress=lambda description, total: nullcontext(Bar()))
    assert fake.encoded == 3  # two chunks for the long article, one for the short
    assert sum(seen) == 2  # progress counts articles
    assert arrays.dense["use"].shape == (2, 3)
    assert set(arrays.sparse) == {"tfidf"}
    query = encoder.embed_query(RawText("Flut", long_body), arrays.sparse_models)
    np.testing.assert_allclose(query.dense["use"], arrays.dense["use"][0], rtol=1e-6)
    assert query.sparse["tfidf"].shape == (1, len(arrays.sparse_models["tfidf"].vocabulary_))
