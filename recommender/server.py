"""Serving the API with gunicorn: the index is loaded once before the workers fork, so they share its pages."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from .config import Settings

# prometheus_client picks its storage when first imported: the variable must be set before that, so this
# module does not import the metrics module at its top.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(settings: Settings, announce: Any = print) -> None:
    """Run gunicorn with settings.workers sync workers on settings.host:settings.port until stopped."""
    from gunicorn.app.base import BaseApplication

    metrics_dir = tempfile.mkdtemp(prefix="recommender-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # read by prometheus_client in every worker
    try:
        from .service import create_app

        app = create_app(settings)
        engine = app.config["RECOMMENDER"]

        def post_fork(server: Any, worker: Any) -> None:
            from threadpoolctl import threadpool_limits

            # Each worker answers one request at a time and there is a worker per core: BLAS threads of
            # their own only fight over the cores (a 40x40 product took 20 ms instead of 0.05 under load).
            threadpool_limits(1, user_api="blas")

        def child_exit(server: Any, worker: Any) -> None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid)

        class Gunicorn(BaseApplication):
            def load_config(self) -> None:
                options = {
                    "bind": f"{settings.host}:{settings.port}",
                    "workers": settings.workers,
                    "preload_app": True,
                    "post_fork": post_fork,
                    "child_exit": child_exit,
                    "accesslog": None,
                    "errorlog": "-",
                    "loglevel": "warning",
                }
                for key, value in options.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                return app

        base = f"http://{settings.host}:{settings.port}"
        sample = engine.snapshot.articles[0]["id"] if len(engine.snapshot) else "ARTICLE_ID"
        announce(f"serving {len(engine.snapshot)} articles (index {engine.snapshot.version}) with "
                 f"{settings.workers} workers on {base}")
        announce(f"  related links: {base}/v1/articles/{sample}/related")
        announce(f"  editors' page: {base}/editor" + ("" if os.environ.get("RECOMMENDER_API_TOKEN") else
                                                      "   (set RECOMMENDER_API_TOKEN to enable editing)"))
        announce(f"  API description: {base}/openapi.json   health: {base}/healthz   metrics: {base}/metrics")
        Gunicorn().run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)
