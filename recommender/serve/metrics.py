"""Prometheus metrics of the API: requests by endpoint and status, latency, index size and version."""
from __future__ import annotations

import os
from collections import Counter as CountOf
from typing import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..feedback import Click, Impression

# Latency buckets around what a related-links request costs (milliseconds), up to slow raw-text queries.
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by recommender.server before this module is imported


class Metrics:
    """The app's own registry (no process-global state); under gunicorn the workers' values are merged
    through prometheus_client's multiprocess directory, which `recommender serve` sets up."""

    def __init__(self) -> None:
        self.served_version = ""
        self._served_labels: tuple[str, str] | None = None
        self.registry = CollectorRegistry()
        self.requests = Counter("recommender_requests", "HTTP requests answered", ["endpoint", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("recommender_request_seconds", "Time to answer a request", ["endpoint"],
                                 buckets=BUCKETS, registry=self.registry)
        self.index_articles = Gauge("recommender_index_articles", "Articles in the served index",
                                    registry=self.registry, multiprocess_mode="livemax")
        self.index_info = Gauge("recommender_index_info", "The served index snapshot (value 1)", ["version", "profile"],
                                registry=self.registry, multiprocess_mode="livemax")
        # Labels are bounded: placements and arms come from the configuration, positions from 1 to max_k.
        self.impressions = Counter("recommender_block_impressions", "Related blocks readers saw",
                                   ["placement", "arm"], registry=self.registry)
        self.clicks = Counter("recommender_block_clicks", "Items of related blocks readers followed",
                              ["placement", "arm", "position"], registry=self.registry)

    def reader_events(self, counted: Iterable[Impression | Click]) -> None:
        """Count reader events (the durable counts are feedback.events'; these are for dashboards and alerts)."""
        # One update per label set (a batch is mostly one block's): each is a write to a shared file under gunicorn.
        for (placement, arm, position), n in CountOf((e.placement, e.arm, e.position if isinstance(e, Click) else None)
                                                     for e in counted).items():
            if position is None:
                self.impressions.labels(placement=placement, arm=arm).inc(n)
            else:
                self.clicks.labels(placement=placement, arm=arm, position=str(position)).inc(n)

    def set_index(self, version: str, profile: str, articles: int) -> None:
        """Record which snapshot is served."""
        # Only the snapshot served now carries the value 1. Gauge.clear() is not implemented across worker
        # processes (prometheus_client warns and keeps the old series), so the old series is set to 0.
        if self._served_labels and self._served_labels != (version, profile):
            old_version, old_profile = self._served_labels
            self.index_info.labels(version=old_version, profile=old_profile).set(0)
        self.served_version, self._served_labels = version, (version, profile)
        self.index_articles.set(articles)
        self.index_info.labels(version=version, profile=profile).set(1)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(endpoint=endpoint, method=method, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
