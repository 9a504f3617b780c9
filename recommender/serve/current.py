"""What the views of the app answering this request reach through current_app: its engine, settings, metrics
and event tracking.

create_app reads the configuration once and keeps both in app.extensions; nothing below reads the environment.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from ..config import Settings
    from ..engine import Recommender
    from .metrics import Metrics
    from .tracking import Tracking

ENGINE = "recommender"
SETTINGS = "recommender_settings"
METRICS = "recommender_metrics"
TRACKING = "recommender_tracking"


def keep(app: Flask, settings: Settings, engine: Recommender, metrics: Metrics, tracking: Tracking) -> None:
    """Make these the settings, engine, metrics and event tracking app's views see."""
    app.extensions[SETTINGS] = settings
    app.extensions[ENGINE] = engine
    app.extensions[METRICS] = metrics
    app.extensions[TRACKING] = tracking


def engine() -> Recommender:
    """The engine of the app answering this request."""
    return current_app.extensions[ENGINE]


def settings() -> Settings:
    """The settings of the app answering this request (read once by create_app)."""
    return current_app.extensions[SETTINGS]


def metrics() -> Metrics:
    """The metrics of the app answering this request."""
    return current_app.extensions[METRICS]


def tracking() -> Tracking:
    """The rid signer and event store of the app answering this request."""
    return current_app.extensions[TRACKING]
