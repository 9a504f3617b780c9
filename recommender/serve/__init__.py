"""Serve: the HTTP API (Flask app factory, blueprints, request models, OpenAPI) and the gunicorn server.

Imports the engine and everything below it, never jobs. `create_app` is imported on first use rather than
here: `recommender serve` must point prometheus_client at its multiprocess folder before the metrics module
(imported by the app) loads it, and it imports `serve.server` first.
"""
from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
