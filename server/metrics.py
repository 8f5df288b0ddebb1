"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


@dataclass
class Metrics:
    """Requests, latency, predictions, validation failures, model info, prediction-log drops.

    ``quire_requests_total`` counts every answer by route template (``unmatched`` when no route
    matched) and status, 499 for a client that hung up mid-request (server/middleware.py);
    ``quire_request_seconds`` times them by route and status class (``2xx``, ``4xx``, ``5xx``).
    """

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("quire_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "quire_request_seconds", "Request latency", ["route", "status"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.predictions = Counter(
            "quire_predictions", "Predicted rows by class", ["label"], registry=r
        )
        self.invalid = Counter(
            "quire_validation_failures", "Rejected requests by reason", ["reason"], registry=r
        )
        self.unknown = Counter(
            "quire_unknown_categories", "Unseen categories by field", ["field"], registry=r
        )
        self.log_drops = Counter(
            "quire_prediction_log_dropped_rows", "Rows the prediction log lost", registry=r
        )
        self.model = Info("quire_model", "The served model", registry=r)
        self.ready = Gauge("quire_ready", "1 when the model is loaded and warm", registry=r)
        self.in_flight = Gauge(
            "quire_requests_in_flight", "HTTP requests being answered now", registry=r
        )
        self.log_rejects = Counter(
            "quire_prediction_log_rejected_rows",
            "Rows the prediction log could not encode (kept in its rejects folder)",
            registry=r,
        )
        self.log_lag = Histogram(
            "quire_prediction_log_commit_lag_seconds",
            "Age of the oldest row a prediction-log commit took: what a crash then would lose",
            registry=r, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10),
        )  # fmt: skip
        self.log_commit = Histogram(
            "quire_prediction_log_commit_seconds",
            "Time the prediction-log writer took per commit (encode and append to the segment)",
            registry=r, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )  # fmt: skip

    def log_committed(self, lag: float, seconds: float, rows: int) -> None:
        """Record one prediction-log commit (see :class:`server.predlog.PredictionLog`)."""
        self.log_lag.observe(lag)
        self.log_commit.observe(seconds)

    def count_predictions(self, labels: np.ndarray, classes: Sequence[Any] | None) -> None:
        """Count predicted rows: by class for a classifier, under ``value`` for a regressor.

        A regressor's predictions are numbers: a label per value would grow without bound.
        """
        if classes is None:
            self.predictions.labels("value").inc(len(labels))
            return
        for value, count in zip(*np.unique(labels.astype(str), return_counts=True), strict=True):
            self.predictions.labels(str(value)).inc(int(count))
