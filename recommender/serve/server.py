"""Serving the API with gunicorn: the index is loaded once before the workers fork, so they share its pages."""
from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
from typing import Any

from ..config import Settings
from .current import ENGINE

# prometheus_client picks its storage when first imported: the variable must be set before that, so this
# module does not import the metrics module at its top.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(settings: Settings, announce: Any = print) -> None:
    """Run gunicorn with settings.workers workers on settings.host:settings.port until stopped.

    Port 0 takes a free port; the lines announced once gunicorn listens name the real one.
    """
    master_pid = os.getpid()
    metrics_dir = tempfile.mkdtemp(prefix="recommender-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # read by prometheus_client in every worker
    embedder = None
    try:
        from .app import create_app

        app = create_app(settings)
        one_thread_per_library()
        embedder = _embedding_process(settings, app.extensions[ENGINE])
        _gunicorn(settings, app, announce, embedder).run()
    finally:
        # Every worker is a fork of this call and leaves through this block too (on a reload, a timeout or a
        # crash): only the master may remove the folder the surviving and the new workers still write to.
        if os.getpid() == master_pid:
            if embedder is not None:
                embedder.stop()
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def one_thread_per_library() -> None:
    """Limit the loaded BLAS and OpenMP libraries of this process, and of every process it forks, to one thread."""
    from threadpoolctl import threadpool_limits

    # Each worker answers one request at a time and there is a worker per core: threads of their own only fight
    # over the cores (a 40x40 product took 20 ms instead of 0.05 under load). Set in the master before it forks,
    # not in each fork: there OpenBLAS would start its threads again, and they spin ~90 ms each before they
    # sleep (a fresh worker's first request took 60-90 ms instead of 13 at 1,000,000 articles).
    threadpool_limits(1)


def _embedding_process(settings: Settings, engine: Any) -> Any:
    """Start the process that embeds PUT articles (embedder.py), and point the engine at it; None when PUT is
    off (no state) or embed_received_in is worker."""
    if engine.live is None or settings.embed_received_in != "process":
        return None
    from .embedder import EmbedClient, EmbeddingProcess

    process = EmbeddingProcess(engine.encoder.embed_dense, settings.embedder_nice)
    process.start()
    timeout = settings.embed_timeout
    if settings.worker_class == "sync":
        # A sync worker waiting for the vectors is silent to gunicorn, which replaces it after worker_timeout
        # (the CMS would get a reset connection): it gives up first and answers 503.
        timeout = min(timeout, max(1.0, settings.worker_timeout - 5.0))
    engine.embed_received = EmbedClient(process.path, timeout).embed_dense
    return process


def _gunicorn(settings: Settings, app: Any, announce: Any, embedder: Any = None) -> Any:
    """A gunicorn application serving app with the hooks and options of `recommender serve`."""
    from gunicorn.app.base import BaseApplication

    from .gunicorn_worker import (
        SignalSafeArbiter,
        installed_entry_points,
        worker_class,
        worker_exit,
    )

    def when_ready(server: Any) -> None:
        port = server.LISTENERS[0].sock.getsockname()[1]
        _announce(app, settings, f"http://{settings.host}:{port}", announce)

    def pre_fork(server: Any, worker: Any) -> None:
        # A full garbage collection walks every object the collector tracks, holding the GIL: the ~120,000 of
        # the libraries and the loaded app took 90 ms, a stall of every request of the worker (set off by the
        # allocations of a snapshot being prepared). Frozen before the fork, a worker never walks them again, and
        # their pages stay shared with the master.
        gc.freeze()
        if "recommender.pg" in sys.modules:  # state_url: the master's connections (made at start) stay its own
            sys.modules["recommender.pg"].release_connections()

    def post_worker_init(worker: Any) -> None:
        # Before the worker's first heartbeat, so a publish's roll stops the old worker it replaces only after.
        app.extensions[ENGINE].warm_up()

    def child_exit(server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    options = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "worker_class": worker_class(settings.worker_class, settings.request_read_timeout),
        "worker_connections": settings.worker_connections,
        # A stop lets running requests finish, but never waits long for idle or slow clients.
        "graceful_timeout": settings.graceful_timeout,
        # No keep-alive: a kept-alive connection stays with the worker that accepted it, and gevent then served
        # some of 8 busy connections after others for up to 1.6 s (wrk p99; p50 2.9 ms). One request per
        # connection spreads them over the workers as the sync workers did (bench/http_load.py, same run).
        "keepalive": 0,
        "timeout": settings.worker_timeout,
        "preload_app": True,
        # gunicorn >= 25's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl) that every
        # server on the machine would take from the previous one, and its thread cost up to 4 s of each stop.
        "control_socket_disable": True,
        "when_ready": when_ready,
        "pre_fork": pre_fork,
        "post_worker_init": post_worker_init,
        "child_exit": child_exit,
        "worker_exit": worker_exit,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
    }

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

        def run(self) -> None:
            arbiter = SignalSafeArbiter(self)
            arbiter.embedder = embedder
            # The master opens each newly published snapshot once and forks workers that have it ready; the
            # workers themselves never look (gunicorn_worker.SignalSafeArbiter).
            arbiter.engine = app.extensions[ENGINE]
            arbiter.engine.reloads_itself = False
            installed_entry_points()  # read here once, for every worker's gevent patching (gunicorn_worker.py)
            arbiter.run()

    return Gunicorn()


def _announce(app: Any, settings: Settings, base: str, announce: Any) -> None:
    engine = app.extensions[ENGINE]
    sample = engine.snapshot.articles[0]["id"] if len(engine.snapshot) else "ARTICLE_ID"
    announce(f"serving {len(engine.snapshot)} articles (index {engine.snapshot.version}) with "
             f"{settings.workers} workers on {base}")
    announce(f"  related links: {base}/v1/articles/{sample}/related")
    announce(f"  as a reader sees them: {base}/demo/articles/{sample}   (the <related-stories> widget; "
             f"rendered on the server, without script: {base}/demo/articles/{sample}/no-script)")
    announce(f"  editors' page: {base}/editor" + ("" if settings.api_token else
                                                  "   (set RECOMMENDER_API_TOKEN to enable editing)"))
    announce(f"  API description: {base}/openapi.json   health: {base}/healthz   metrics: {base}/metrics")
