"""Embedding batches on a Dask distributed cluster: texts go out, vectors come back, the cache stays here.

dask/distributed are imported only when a cluster is asked for, so the package works without them.
Workers need this package installed (same version): they unpickle encoders by reference to its classes.

Every fault of the cluster ends the job within a bounded time as a ClusterError (one line on the command
line): the address is checked before anything is sent, the connection and Dask's handshake share one
deadline, a lost scheduler fails at once, and a stall timeout ends a job whose workers have gone quiet.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

import numpy as np

from ..progress import PROGRESS_INTERVAL, event
from .encoders import DenseEncoder

# Seconds to wait for the scheduler: a wrong address should fail a cron job quickly, not after minutes.
CONNECT_TIMEOUT = 10.0
# Schemes the job can reach a scheduler by; anything else is an operator's typo (http:// of the dashboard).
SCHEMES = ("tcp", "tls")


class ClusterError(RuntimeError):
    """The Dask cluster cannot be reached or used (the message says why)."""


class ClusterAddressError(ClusterError, ValueError):
    """The cluster address is not tcp://HOST:PORT or tls://HOST:PORT (a usage error)."""


def check_address(address: str) -> str:
    """address if it names a scheduler the job can reach (tcp:// or tls://, a host and a port), else
    ClusterAddressError saying what is expected."""
    expected = f"expected tcp://HOST:PORT (or tls://HOST:PORT), got {address!r}"
    parts = urlsplit(address if "://" in address else f"tcp://{address}")  # Dask's own default scheme
    if parts.scheme not in SCHEMES:
        raise ClusterAddressError(f"--cluster: {expected}" + (
            " (http:// is the scheduler's dashboard, not its address)" if parts.scheme in ("http", "https") else ""))
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query:
        raise ClusterAddressError(f"--cluster: {expected}")
    return address


class DaskExecutor:
    """Encodes batches on a cluster's workers, a bounded number at a time, yielding them as they finish.

    A job fails with ClusterError when no batch finishes for stall_timeout seconds, saying every
    PROGRESS_INTERVAL (at least twice per stall_timeout) meanwhile that it is waiting for workers.
    """

    def __init__(self, client: Any, stall_timeout: float = 600.0, address: str = "") -> None:
        self.client = client
        self.stall_timeout = stall_timeout
        self.address = address or str(client.scheduler.address)

    def map(self, encoder: DenseEncoder, batches: Sequence[list[str]]) -> Iterator[tuple[int, np.ndarray]]:
        """(batch number, vectors) in the order the workers finish them."""
        expected = encoder.identity()
        recipe = _unloaded(encoder)
        # A bounded window keeps the scheduler's memory flat on huge corpora and lets the client write the
        # cache while workers go on; twice the worker threads keeps every worker busy between round trips.
        threads = self.client.nthreads()
        window = max(2, 2 * sum(threads.values()))
        if not threads:
            event("cluster", "the scheduler has no workers yet; the batches wait for one", logging.WARNING)
        pending = iter(enumerate(batches))
        running = {self._submit(recipe, number, texts) for number, texts in _take(pending, window)}
        finished = 0
        try:
            while running:
                for future in self._next_finished(running, finished, len(batches)):
                    running.discard(future)
                    number, identity, vectors = self._result(future)
                    if identity != expected:
                        raise ClusterError(f"a worker's encoder differs from this job's ({identity} != {expected}); "
                                           "install the same versions on the workers")
                    running.update(self._submit(recipe, n, texts) for n, texts in _take(pending, 1))
                    finished += 1
                    yield number, vectors
        finally:
            self._cancel(running)

    def _next_finished(self, running: set[Any], finished: int, total: int) -> list[Any]:
        """The futures among running that have finished, waiting for at least one at most stall_timeout s."""
        from distributed import wait
        from distributed.client import FuturesCancelledError

        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            if waited >= self.stall_timeout:
                raise ClusterError(
                    f"no batch finished on the cluster {self.address} for {waited:.0f}s ({finished} of {total} "
                    "batches done; workers lost or frozen?): giving up (setting cluster_stall_timeout); "
                    "a rerun resumes from the embedding cache")
            try:
                step = min(PROGRESS_INTERVAL, self.stall_timeout / 2, self.stall_timeout - waited)
                with self.client.as_current():  # wait() works on the current client, not on a given one
                    done, _ = wait(list(running), timeout=step, return_when="FIRST_COMPLETED")
                return list(done)
            except FuturesCancelledError as exc:
                raise self._lost(exc) from None
            except TimeoutError:
                waited = time.monotonic() - started
                event("waiting", f"waiting for workers: no batch finished for {waited:.0f}s ({finished} of {total} "
                      f"batches done; the job gives up after {self.stall_timeout:g}s)", logging.WARNING,
                      waited_s=round(waited, 1), done=finished, total=total, stall_timeout_s=self.stall_timeout)

    def _result(self, future: Any) -> tuple[int, dict[str, Any], np.ndarray]:
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        try:
            return future.result()
        except FutureCancelledError as exc:
            raise self._lost(exc) from None
        except KilledWorker as exc:
            # Dask already retried the batch on other workers (distributed.scheduler.allowed-failures).
            raise ClusterError(f"a batch killed every worker that ran it on {self.address} ({exc}); "
                               "is it too large for the workers' memory?") from None

    def _lost(self, exc: BaseException) -> ClusterError:
        reason = "scheduler-connection-lost" if "scheduler-connection-lost" in str(exc) else str(exc).splitlines()[0]
        return ClusterError(f"lost the Dask scheduler at {self.address} in the middle of the job ({reason}); "
                            "a rerun resumes from the embedding cache")

    def _cancel(self, running: set[Any]) -> None:
        if self.client.status != "running":
            return  # nothing to tell a scheduler that is gone; its futures are cancelled already
        try:
            self.client.cancel(list(running))
        except (OSError, RuntimeError):  # the scheduler went away meanwhile: the job is ending anyway
            pass

    def _submit(self, recipe: DenseEncoder, number: int, texts: list[str]) -> Any:
        return self.client.submit(encode_batch, recipe, number, texts, pure=False)


@contextmanager
def dask_executor(address: str, timeout: float | None = None,
                  stall_timeout: float = 600.0) -> Iterator[DaskExecutor]:
    """A DaskExecutor connected to the scheduler at address (tcp://host:port); raises ClusterAddressError
    for another kind of address and ClusterError when no Dask scheduler answers within timeout seconds
    (CONNECT_TIMEOUT by default)."""
    check_address(address)
    try:
        import dask
        from distributed import Client
    except ImportError as exc:
        raise ClusterError(f"--cluster needs the Python package 'distributed' (pip install distributed): {exc}") from None
    seconds = CONNECT_TIMEOUT if timeout is None else timeout
    with _quiet_dask_logs(), dask.config.set({"distributed.comm.timeouts.connect": seconds}):
        deadline = time.monotonic() + seconds
        _probe(address, seconds)
        try:
            client = Client(address, timeout=max(1.0, deadline - time.monotonic()), set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {address} within {seconds:g}s ({exc})") from None
        try:
            workers = client.nthreads()
            event("cluster", f"connected to {address}: {len(workers)} worker(s), {sum(workers.values())} thread(s)",
                  address=address, workers=len(workers), threads=sum(workers.values()))
            yield DaskExecutor(client, stall_timeout, address)
        finally:
            _close(client, seconds)


def _probe(address: str, seconds: float) -> None:
    """Raise ClusterError unless a Dask scheduler completes a handshake and answers within seconds.

    distributed's own connect() bounds the TCP connect but not the handshake that follows: a socket that
    accepts and stays silent (a wrong port) hangs Client() for ever, and an HTTP server's answer is read as
    a frame length (MemoryError: 3 EiB). Here the whole exchange has one deadline, in a loop of its own.
    The TCP connect alone gets a second less, so that a refused or unroutable address fails as such and a
    timeout means a peer that accepted and stayed silent.
    """
    try:
        identity = asyncio.run(asyncio.wait_for(_identity(address, max(seconds - 1, seconds / 2)), seconds))
    except TimeoutError:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {seconds:g}s (something accepts "
                           "connections there but does not answer like a Dask scheduler)") from None
    except OSError as exc:  # distributed's timeout hides the reason (refused, unknown host): say it
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {seconds:g}s "
                           f"({exc.__cause__ or exc})") from None
    except Exception:  # whatever a foreign protocol makes the deserialiser raise, MemoryError included
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: the service there answers in another "
                           "protocol (a web server, the scheduler's dashboard?)") from None
    kind = identity.get("type") if isinstance(identity, dict) else None
    if kind != "Scheduler":
        raise ClusterError(f"{address} is not a Dask scheduler (it says it is a {kind or 'something else'}); "
                           "give the scheduler's address")


async def _identity(address: str, seconds: float) -> Any:
    from distributed.comm import connect
    from distributed.security import Security

    comm = await connect(address, timeout=seconds, **Security().get_connection_args("client"))
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def _close(client: Any, seconds: float) -> None:
    """Close the client within seconds; a scheduler that is gone must not turn the end of a job into a hang."""
    try:
        client.close(timeout=seconds)
    except (OSError, TimeoutError, RuntimeError):
        pass


@contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Keep distributed's own log lines (reconnect attempts, comm errors, their tracebacks) off stderr while
    the job talks to the cluster: every fault reaches the operator once, as the job's own error line."""
    names = ["distributed", "tornado", "asyncio"] + [
        name for name in logging.root.manager.loggerDict if name.startswith("distributed.")]
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


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
