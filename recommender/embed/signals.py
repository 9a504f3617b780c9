"""Turning articles and raw queries into the signals of a profile (encoders loaded once, cache used)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..ingest.profiles import Profile, SignalSpec
from ..ingest.textprep import HasText, prepare, prepare_chunks
from ..progress import Progress, no_progress
from .cache import BatchExecutor, EmbeddingCache, encode_cached
from .encoders import DenseEncoder, TfidfModel, make_dense_encoder
from .vectors import QueryVectors, SignalArrays


@dataclass(frozen=True)
class RawText:
    """An article that is not in the index (a draft): what a query by text reads."""

    title: str
    body: str
    teaser: str = ""


class SignalEncoder:
    """Holds one encoder per dense signal of a profile; models load on first use and stay loaded.

    executor decides where batches of uncached texts are encoded: in this process (None) or on a cluster.
    """

    def __init__(
        self,
        profile: Profile,
        threads: int = 2,
        batch_size: int = 32,
        cache: EmbeddingCache | None = None,
        sentence_transformer_model: str = "",
        executor: BatchExecutor | None = None,
    ) -> None:
        self.profile = profile
        self.batch_size = batch_size
        self.cache = cache
        self.executor = executor
        self.encoders: dict[str, DenseEncoder] = {
            s.name: make_dense_encoder(s.kind, threads=threads, model=sentence_transformer_model)
            for s in profile.dense
        }

    def identities(self) -> dict[str, Any]:
        """Signal name -> identity of its encoder (what the vectors depend on)."""
        identities = {name: encoder.identity() for name, encoder in self.encoders.items()}
        identities.update({s.name: _lexical_model(s).identity() for s in self.profile.sparse})
        return identities

    def embed_articles(self, articles: Sequence[HasText], progress: Progress = no_progress) -> SignalArrays:
        """Every signal of the profile for every article; the lexical models are fitted on these articles."""
        arrays = SignalArrays()
        self.embed_dense_signals(articles, arrays, progress)
        self.fit_lexical(articles, arrays)
        return arrays

    def embed_dense_signals(self, articles: Sequence[HasText], arrays: SignalArrays,
                            progress: Progress = no_progress) -> None:
        """Fill arrays.dense: signal name -> (n_articles, dim) float32, one progress bar per signal."""
        for signal in self.profile.dense:
            chunks = [prepare_chunks(a, signal.view) for a in articles]
            with progress(f"embedding ({signal.name})", len(articles)) as bar:
                arrays.dense[signal.name] = self._embed_chunked(signal, chunks, bar.update)

    def fit_lexical(self, articles: Sequence[HasText], arrays: SignalArrays) -> None:
        """Fill arrays.sparse and arrays.sparse_models: TF-IDF models fitted on these articles, and their rows."""
        for signal in self.profile.sparse:
            texts = [prepare(a, signal.view) for a in articles]
            model = _lexical_model(signal).fit(texts)
            arrays.sparse_models[signal.name] = model
            arrays.sparse[signal.name] = model.transform(texts)

    def _embed_chunked(
        self, signal: SignalSpec, chunks: list[list[str]], on_done: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """(n_articles, dim) float32: each article's chunks embedded (cached) and averaged."""
        flat = [text for texts in chunks for text in texts]
        counts = [len(texts) for texts in chunks]
        if all(n == 1 for n in counts):
            return encode_cached(self.encoders[signal.name], flat, self.cache, self.batch_size, on_done, self.executor)
        # Progress counts articles, not chunks: scale what the cache reports (integer maths, exact at the end).
        embedded = reported = 0

        def report(n: int) -> None:
            nonlocal embedded, reported
            embedded += n
            articles_done = embedded * len(chunks) // len(flat)
            if on_done is not None and articles_done > reported:
                on_done(articles_done - reported)
                reported = articles_done

        vectors = encode_cached(self.encoders[signal.name], flat, self.cache, self.batch_size, report, self.executor)
        return mean_of_chunks(vectors, counts)

    def embed_dense(self, text: HasText) -> dict[str, np.ndarray]:
        """The dense signals of one article: signal name -> (dim,) float32."""
        return {s.name: self._embed_chunked(s, [prepare_chunks(text, s.view)])[0] for s in self.profile.dense}

    def lexical_rows(self, texts: Sequence[HasText], sparse_models: dict[str, TfidfModel]) -> dict[str, Any]:
        """The lexical signals of articles that are not in the index, against an index's fitted models:
        signal name -> csr_matrix of shape (len(texts), n_terms)."""
        return {s.name: sparse_models[s.name].transform([prepare(t, s.view) for t in texts])
                for s in self.profile.sparse}

    def embed_query(self, text: HasText, sparse_models: dict[str, TfidfModel]) -> QueryVectors:
        """The signals of one article that is not in the index, against an index's fitted lexical models."""
        return QueryVectors(self.embed_dense(text), self.lexical_rows([text], sparse_models))


def mean_of_chunks(vectors: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Per article, the mean of its chunk vectors, NOT re-normalised: the dot product of two such means is
    the average similarity over all pairs of their chunks, which is what was measured to work."""
    counts = np.asarray(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (np.add.reduceat(vectors, starts, axis=0) / counts[:, None]).astype(np.float32)


def _lexical_model(signal: SignalSpec) -> TfidfModel:
    return TfidfModel(analyzer="names" if signal.kind == "names" else "words")

