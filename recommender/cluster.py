"""Embedding batches on a Dask distributed cluster: texts go out, vectors come back, the cache stays here.

dask/distributed are imported only when a cluster is asked for, so the package works without them.
Workers need this package installed (same version): they unpickle encoders by reference to its classes.
"""
from __future__ import annotations

import copy
import json
import logging
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from .encoders import DenseEncoder
from .joblog import event

# Seconds to wait for the scheduler: a wrong address should fail a cron job quickly, not after minutes.
CONNECT_TIMEOUT = 10.0


class ClusterError(RuntimeError):
    """The Dask cluster cannot be reached or used (the message says why)."""


class DaskExecutor:
    """Encodes batches on a cluster's workers, a bounded number at a time, yielding them as they finish."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def map(self, encoder: DenseEncoder, batches: Sequence[list[str]]) -> Iterator[tuple[int, np.ndarray]]:
        """(batch number, vectors) in the order the workers finish them."""
        from distributed import as_completed

        expected = encoder.identity()
        recipe = _unloaded(encoder)
        # A bounded window keeps the scheduler's memory flat on huge corpora and lets the client write the
        # cache while workers go on; twice the worker threads keeps every worker busy between round trips.
        threads = self.client.nthreads()
        window = max(2, 2 * sum(threads.values()))
        if not threads:
            event("cluster", "the scheduler has no workers yet; the batches wait for one", logging.WARNING)
        pending = iter(enumerate(batches))
        running = as_completed(loop=self.client.loop)
        for number, texts in _take(pending, window):
            running.add(self._submit(recipe, number, texts))
        try:
            for future in running:
                number, identity, vectors = future.result()
                if identity != expected:
                    raise ClusterError(f"a worker's encoder differs from this job's ({identity} != {expected}); "
                                       "install the same versions on the workers")
                for next_number, texts in _take(pending, 1):
                    running.add(self._submit(recipe, next_number, texts))
                yield number, vectors
        finally:
            for future in list(running.futures):  # a copy: cancelling removes them from running
                future.cancel()

    def _submit(self, recipe: DenseEncoder, number: int, texts: list[str]) -> Any:
        return self.client.submit(encode_batch, recipe, number, texts, pure=False)


@contextmanager
def dask_executor(address: str, timeout: float | None = None) -> Iterator[DaskExecutor]:
    """A DaskExecutor connected to the scheduler at address (tcp://host:port); raises ClusterError when it
    cannot be reached within timeout seconds (CONNECT_TIMEOUT by default)."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ClusterError(f"--cluster needs the Python package 'distributed' (pip install distributed): {exc}") from None
    seconds = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        client = Client(address, timeout=seconds, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {seconds:g}s ({exc})") from None
    workers = client.nthreads()
    event("cluster", f"connected to {address}: {len(workers)} worker(s), {sum(workers.values())} thread(s)",
          address=address, workers=len(workers), threads=sum(workers.values()))
    try:
        yield DaskExecutor(client)
    finally:
        client.close()


# On a worker: encoders by configuration, so each model is loaded once per worker process, not per batch.
_worker_encoders: dict[str, DenseEncoder] = {}
_worker_lock = threading.Lock()


def encode_batch(recipe: DenseEncoder, number: int, texts: list[str]) -> tuple[int, dict[str, Any], np.ndarray]:
    """Runs on a worker: (number, the encoder's identity, vectors of shape (len(texts), dim), float32)."""
    key = json.dumps([type(recipe).__module__, type(recipe).__qualname__, recipe.threads, recipe.identity()],
                     sort_keys=True, default=str)
    with _worker_lock:  # two threads of one worker must not load the same model twice
        encoder = _worker_encoders.setdefault(key, recipe)
        encoder.encode([])  # loads the model on first use
    return number, encoder.identity(), encoder.encode(texts)


def loaded_encoders() -> list[str]:
    """The encoder configurations this (worker) process has loaded: for checks that each loaded once."""
    with _worker_lock:
        return list(_worker_encoders)


def _unloaded(encoder: DenseEncoder) -> DenseEncoder:
    """A copy of encoder without its loaded model: a few bytes to send instead of the model's weights."""
    clone = copy.copy(encoder)
    clone._model = None
    return clone


def _take(items: Iterator[Any], n: int) -> list[Any]:
    return [item for _, item in zip(range(n), items)]
