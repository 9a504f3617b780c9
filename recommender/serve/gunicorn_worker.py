"""The gunicorn pieces of `recommender serve`: a signal-safe fork, a gevent worker, errors as JSON.

Imported only by `recommender.server` when it serves, so the package stays importable without gunicorn.
"""
from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import socket
import sys
import time
from importlib import metadata
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.arbiter import Arbiter
from gunicorn.http import errors as http_errors
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.sync import SyncWorker

from ..index.loader import lowest_priority

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

ROLL_TICK = 0.05  # seconds between the master's looks while a snapshot is prepared or rolled out
STOP_TICK = 0.05  # seconds between a stopping gevent worker's looks at its stop flag and its connections left
BOOT_WAIT = 10.0  # seconds a fork may take to serve before the old worker it replaces is stopped anyway


class SignalSafeArbiter(Arbiter):
    """gunicorn's master, forking its workers with the stop signals blocked (see STOP_SIGNALS), keeping the
    embedding process of PUT articles (embedder.EmbeddingProcess) running, and rolling the workers over to each
    newly published snapshot.

    The roll: the master's engine prepares the new snapshot once, in a background thread (`follow_published`:
    checksums, usearch mapping the graph with the GIL held, the dates' sort), while the workers go on serving
    the old one. Once it is swapped in, each old worker is replaced by a fresh fork of the master, which has it
    ready: one fork at a time, and an old worker is stopped (gracefully: it answers the connections it holds)
    only once its replacement serves. No process that answers requests ever opens a snapshot. While a snapshot
    is prepared the master forks nothing (a fork copies a process with that thread mid-way); a worker that dies
    meanwhile is replaced once it is ready.
    """

    embedder: Any = None
    _reload_waits = False  # a HUP came during a preparation or roll: gunicorn's reload runs once it is over
    engine: Any = None  # the master's Recommender (engine.py); None: the workers never change snapshot

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self._roll_from: int | None = None  # while rolling: the last worker age that serves the old snapshot
        self._fresh: tuple[int, float, float] | None = None  # the fork awaited: pid, heartbeat at fork, when
        self._retiring: set[int] = set()  # stopped, still answering the connections they held

    @property
    def _preparing(self) -> bool:
        return self.engine is not None and self.engine.preparing

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        """gunicorn's wait between two turns of the master's loop, 50 ms while a snapshot is prepared or rolled
        out, so that the workers serve it within a tick of its being ready, and each fork once it serves."""
        busy = self._roll_from is not None or self._preparing
        return super().wait_for_signals(timeout=min(timeout, ROLL_TICK) if busy else timeout)

    def manage_workers(self) -> None:
        """Start or stop workers to match the configured number (as gunicorn's, not counting the stopped ones
        still answering), roll them over to a newly published snapshot, and start the embedding process again if
        it died (checked on every turn of the master's loop, at least once a second)."""
        self._retiring &= set(self.WORKERS)
        if self.engine is not None and self._roll_from is None and self._follow_published():
            self._roll_from = self.worker_age
            self._fresh = None
        if self._roll_from is not None:
            self._roll()
        elif self._reload_waits and not self._preparing:
            self.reload()  # a HUP that came while a snapshot was prepared or rolled out
        else:
            self._keep_count()
        if self.embedder is not None and not self._preparing:
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                self.embedder.keep_running(tuple(listener.fileno() for listener in self.LISTENERS))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _follow_published(self) -> bool:
        """The engine's follow_published(); an error it did not foresee is logged, never raised: in gunicorn's
        main loop it would stop the whole server (in a request it cost that request)."""
        try:
            return self.engine.follow_published()
        except Exception:
            self.log.exception("looking for a newly published snapshot failed; the workers keep serving")
            return False

    def _serving(self) -> list[tuple[int, int]]:
        """(age, pid) of the workers not stopped, oldest first."""
        return sorted((worker.age, pid) for pid, worker in self.WORKERS.items() if pid not in self._retiring)

    def _retire(self, pid: int) -> None:
        self._retiring.add(pid)
        self.kill_worker(pid, signal.SIGTERM)

    def _keep_count(self) -> None:
        serving = self._serving()
        if not self._preparing:
            for _ in range(self.num_workers - len(serving)):
                self.spawn_worker()
        for _, pid in serving[: max(len(serving) - self.num_workers, 0)]:
            self._retire(pid)

    def _roll(self) -> None:
        """One step of the roll: wait for the awaited fork to serve; then stop the oldest worker of the old
        snapshot, and fork the next replacement; done when every worker serving is a fork of the new one."""
        if self._fresh is not None:
            pid, heartbeat, forked = self._fresh
            worker = self.WORKERS.get(pid)
            starting = worker is not None and worker.tmp.last_update() == heartbeat  # its first beat: serving
            if starting and time.monotonic() - forked < BOOT_WAIT:
                return
            self._fresh = None
        serving = self._serving()
        old = [pid for age, pid in serving if age <= self._roll_from]
        forks = len(serving) - len(old)
        if old and len(serving) > self.num_workers:  # a fork serves in its place
            self._retire(old.pop(0))
        if forks < self.num_workers:
            pid = self.spawn_worker()
            self._fresh = (pid, self.WORKERS[pid].tmp.last_update(), time.monotonic())
        elif not old:
            self._roll_from = None
            self.log.info("every worker serves snapshot %s", self.engine.base.version)

    def reload(self) -> None:
        """gunicorn's reload (HUP: configuration, log files, new workers), put off while a snapshot is prepared or
        rolled out until every worker serves it (`manage_workers`). Its forks must not copy the preparing thread
        mid-way, and waiting for that here would hold the master's whole loop (dead workers, signals): the
        preparation runs in the CPU's idle time, on a saturated machine for as long as it stays saturated. In a
        roll, gunicorn's reload would wait for old workers that the roll stops one at a time."""
        if self._preparing or self._roll_from is not None:
            if not self._reload_waits:
                self.log.info("reloading once every worker serves the snapshot being prepared")
            self._reload_waits = True
            return
        self._reload_waits = False
        super().reload()

    def spawn_worker(self) -> int:
        """Fork one worker; in the child this call only returns when the worker exits."""
        if self.engine is not None:
            self.engine.wait_prepared()  # a safeguard: nothing forks while one is prepared (reload waits)
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
    lowest_priority()  # the kernel's unmapping of the snapshot (tens of ms of CPU at 1,000,000) comes after readers
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


@functools.cache
def _entry_points() -> Any:
    return metadata.entry_points()


def installed_entry_points(**params: Any) -> Any:
    """importlib.metadata.entry_points, read once per process (and so once in the master for all its forks).

    gevent announces each module it patches to the plugins of every installed package, and importlib reads the
    metadata of all of them each time: 2,800 files, 100-200 ms of CPU in each fresh worker, beside the readers
    of the others while a publish rolls the workers over.
    """
    return _entry_points().select(**params)


class GeventRecommenderWorker(_WorkerFixes, GeventWorker):
    """gunicorn's gevent worker (the default): slow or idle clients cost a greenlet each, not a whole worker.

    The app stays one request at a time per worker in effect: it never waits on a socket while it ranks, so
    greenlets switch only while requests are read and answers written.
    """

    read_timeout = 15.0  # set per server by worker_class()

    def patch(self) -> None:
        """gevent's monkey-patching of this worker (with the entry points the master read), then psycopg's
        choice of how to wait made again."""
        scan = metadata.entry_points
        metadata.entry_points = installed_entry_points
        try:
            super().patch()
        finally:
            metadata.entry_points = scan
        # psycopg picks its wait function when first imported, which happened in the master (state_url) before
        # gevent patched this worker: chosen again now, a query waits as a greenlet, not as the whole worker.
        waiting = sys.modules.get("psycopg.waiting")
        if waiting is not None:
            importlib.reload(waiting)

    def run(self) -> None:
        """Accept and serve connections until stopped, then answer those held (at most graceful_timeout).

        gunicorn's own loop looks at its stop flag once a second, and at the connections left once a second: a
        stopped worker went on accepting new connections for up to a second and exited up to a second after
        its last answer. In a publish's roll that kept four processes serving on two cores (the old workers
        beside their fresh replacements) for 1.5 s, where the old ones should only finish what they hold.
        Here both are looked at every STOP_TICK; the heartbeat stays once a second.
        """
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            tls = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
            server = StreamServer(listener, handle=functools.partial(self.handle, listener),
                                  spawn=Pool(self.worker_connections), **tls)
            if self.cfg.workers > 1:
                server.max_accept = 1  # as gunicorn's: one connection per wake-up, the others for other workers
            server.start()
            servers.append(server)
        beat = 0.0

        def tick() -> None:
            nonlocal beat
            if time.monotonic() - beat >= 1.0:
                self.notify()
                beat = time.monotonic()
            gevent.sleep(STOP_TICK)

        while self.alive:
            tick()
        for server in servers:
            server.close()  # no new connections; those accepted are answered
        until = time.monotonic() + self.cfg.graceful_timeout
        while any(server.pool.free_count() != server.pool.size for server in servers):
            if time.monotonic() >= until:
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                for server in servers:
                    server.stop(timeout=1)
                return
            tick()

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
