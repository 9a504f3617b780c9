"""The gunicorn pieces of `recommender serve`: a signal-safe fork, a gevent worker, errors as JSON.

Imported only by `recommender.server` when it serves, so the package stays importable without gunicorn.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
import time
from typing import Any

from gunicorn import util
from gunicorn.arbiter import Arbiter
from gunicorn.http import errors as http_errors
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.sync import SyncWorker

# The signals gunicorn's master and workers act on. Between fork() and the worker's own signal set-up the
# child still runs the master's handler, which only queues the signal into the child's copy of the master's
# queue: a SIGTERM sent to the process group in that window was lost, and the worker lived on until the
# graceful timeout (30 s) killed it. Blocked across that window, the signal waits and reaches the worker's
# own handler instead.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU, signal.SIGABRT}

# gunicorn's own parser errors (before the app sees a request) as (status, reason, error code).
CLIENT_ERRORS: list[tuple[type[Exception], int, str, str]] = [
    (http_errors.LimitRequestLine, 414, "URI Too Long", "uri_too_long"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "headers_too_large"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented", "unsupported_transfer_coding"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed", "expectation_failed"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", "forbidden"),
    (http_errors.ParseException, 400, "Bad Request", "bad_request"),
]
# Parser errors that are the server's fault (a header the app tried to send, a bad configuration).
SERVER_FAULTS = (http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName,
                 http_errors.ConfigurationProblem)


class SignalSafeArbiter(Arbiter):
    """gunicorn's master, forking its workers with the stop signals blocked (see STOP_SIGNALS), and keeping the
    embedding process of PUT articles (embedder.EmbeddingProcess) running."""

    embedder: Any = None

    def manage_workers(self) -> None:
        """Start or stop workers to match the configured number (gunicorn's), and the embedding process again
        if it died (checked on every turn of the master's loop, at least once a second)."""
        super().manage_workers()
        if self.embedder is not None:
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                self.embedder.keep_running(tuple(listener.fileno() for listener in self.LISTENERS))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def spawn_worker(self) -> int:
        """Fork one worker; in the child this call only returns when the worker exits."""
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return super().spawn_worker()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def exit_without_teardown(status: object) -> None:
    """End this process now with status (an int, or SystemExit's code), skipping the interpreter's teardown.

    With the encoders loaded (torch among them) tearing the interpreter down takes 1 s of CPU, 5 s of wall
    time on a busy machine: a stopping server spent most of its stop there, and nothing in it is needed
    (SQLite commits before answering, the metrics files are memory-mapped, logs are flushed here).
    """
    code = status if isinstance(status, int) else (0 if status is None else 1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn's worker_exit hook: runs as the worker leaves through sys.exit; ends it at once."""
    leaving = sys.exc_info()[1]
    exit_without_teardown(leaving.code if isinstance(leaving, SystemExit) else (1 if leaving else 0))


def json_error_bytes(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error answer with the service's JSON error body, closing the connection."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _WorkerFixes:
    """What every worker class of `recommender serve` adds to gunicorn's: signals kept, errors as JSON."""

    log: Any

    def init_signals(self) -> None:
        """Install the worker's handlers, then let through what arrived since the fork."""
        super().init_signals()  # type: ignore[misc]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer errors raised before the app (request line too long, bad headers) as JSON, not HTML."""
        for kind, status, reason, code in CLIENT_ERRORS:
            if isinstance(exc, kind) and not isinstance(exc, SERVER_FAULTS):
                self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
                message = str(exc) or reason
                break
        else:
            self.log.exception("Error handling request")
            status, reason, code, message = 500, "Internal Server Error", "internal_error", \
                "the server failed to answer this request"
        try:
            util.write_nonblock(client, json_error_bytes(status, reason, code, message))
            _drain(client)
        except Exception:  # the client may be gone; nothing is left to tell it
            self.log.debug("Failed to send error message.")


def _drain(client: socket.socket, limit: int = 1 << 20, seconds: float = 1.0) -> None:
    """Read what the client still sends before the socket is closed (a lingering close).

    Closing with unread bytes (the rest of an over-long request line) makes the kernel answer with a reset,
    which can destroy the error answer before the client has read it.
    """
    client.shutdown(socket.SHUT_WR)
    client.settimeout(seconds)
    drained = 0
    try:
        while drained < limit and (chunk := client.recv(65536)):
            drained += len(chunk)
    except OSError:
        pass


class DeadlineSocket:
    """A client socket whose reads must be done within a deadline: a request arrives whole in time, or the
    connection is dropped (gunicorn's NoMoreData: closed quietly, like a client that went away).

    Keep-alive is off (see server.py), so without this gunicorn puts no time limit on reading a request and a
    client sending a byte now and then would hold its connection for ever.
    """

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._until = time.monotonic() + seconds

    def recv(self, size: int) -> bytes:
        """Read like socket.recv, failing once the deadline has passed."""
        left = self._until - time.monotonic()
        if left <= 0:
            raise http_errors.NoMoreData(b"")
        self._sock.settimeout(left)
        try:
            return self._sock.recv(size)
        except TimeoutError:
            raise http_errors.NoMoreData(b"") from None
        finally:
            self._sock.settimeout(None)  # writing the answer has no such deadline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class GeventRecommenderWorker(_WorkerFixes, GeventWorker):
    """gunicorn's gevent worker (the default): slow or idle clients cost a greenlet each, not a whole worker.

    The app stays one request at a time per worker in effect: it never waits on a socket while it ranks, so
    greenlets switch only while requests are read and answers written.
    """

    read_timeout = 15.0  # set per server by worker_class()

    def patch(self) -> None:
        """gevent's monkey-patching of this worker, then psycopg's choice of how to wait made again."""
        super().patch()
        # psycopg picks its wait function when first imported, which happened in the master (state_url) before
        # gevent patched this worker: chosen again now, a query waits as a greenlet, not as the whole worker.
        waiting = sys.modules.get("psycopg.waiting")
        if waiting is not None:
            importlib.reload(waiting)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """Serve one connection whose request must arrive within read_timeout seconds."""
        client.setblocking(1)  # what GeventWorker.handle does before handing over to AsyncWorker.handle
        super(GeventWorker, self).handle(listener, DeadlineSocket(client, self.read_timeout), addr)


class SyncRecommenderWorker(_WorkerFixes, SyncWorker):
    """gunicorn's sync worker: one client at a time, for deployments behind a buffering proxy."""


def worker_class(name: str, read_timeout: float) -> type:
    """The worker class of setting worker_class ('gevent' or 'sync'), gevent's with its request deadline."""
    if name == "sync":
        return SyncRecommenderWorker
    return type("GeventRecommenderWorker", (GeventRecommenderWorker,), {"read_timeout": read_timeout})
