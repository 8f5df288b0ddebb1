"""Prometheus metrics of one app instance (its own registry, so tests can build many apps).

Under several workers (server/workers.py) prometheus_client runs in multiprocess mode: each
worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` reads them
all. Counters and histograms are summed; each gauge says how its workers combine
(``multiprocess_mode``); a series cannot be removed from those files, so one that goes away
(an old model version, a column no longer in the window) is set to NaN first.
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from lib.monitoring.live import LiveVerdict

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
LIVE_MODE: Final = "livemostrecent"  # under several workers: the latest verdict of any worker


@dataclass
class Metrics:
    """Requests, latency, predictions, validation failures, model info, prediction-log drops.

    ``quire_requests_total`` counts every answer by route template (``unmatched`` when no route
    matched) and status, 499 for a client that hung up mid-request (server/middleware.py);
    ``quire_request_seconds`` times them by route and status class (``2xx``, ``4xx``, ``5xx``).

    Live drift (server/live.py; per-column series absent, the two dataset gauges 0, until the
    window holds ``monitor.live.min_rows`` rows):
    ``quire_drift_score`` and ``quire_drift_detected`` per column (``role``: ``feature`` or
    ``output``, the model's prediction and class probabilities) with the method the monitor
    stage uses, ``quire_drift_share`` and ``quire_dataset_drift`` for the features,
    ``quire_quality_*_share`` per feature, ``quire_prediction_share`` per predicted class, and
    ``quire_live_window_rows``.
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
        # an Info in one process; Info has no multiprocess mode, so a gauge of the same
        # series, with a pid label per worker under several
        self.model = Gauge(
            "quire_model_info", "The served model (1; 0 or NaN for one no longer served)",
            ["name", "version", "alias", "uri"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self._model_labels: tuple[str, ...] | None = None
        self.ready = Gauge(
            "quire_ready", "1 when the model is loaded and warm (every worker, under several)",
            registry=r, multiprocess_mode="livemin",
        )  # fmt: skip
        self.in_flight = Gauge(
            "quire_requests_in_flight", "HTTP requests being answered now", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
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

        self.drift_score = Gauge(
            "quire_drift_score", "Live drift statistic of a column over the window "
            "(p-value for ks/chisquare/z, distance otherwise)", ["column", "role", "method"],
            registry=r, multiprocess_mode=LIVE_MODE,
        )  # fmt: skip
        self.drift_detected = Gauge(
            "quire_drift_detected", "1 when a column drifted in the live window",
            ["column", "role"], registry=r, multiprocess_mode=LIVE_MODE,
        )  # fmt: skip
        self.drift_share = Gauge(
            "quire_drift_share",
            "Share of the checked features that drifted in the window",
            registry=r,
            multiprocess_mode=LIVE_MODE,
        )
        self.dataset_drift = Gauge(
            "quire_dataset_drift",
            "1 when the window's drifted share reaches monitor.drift_share",
            registry=r,
            multiprocess_mode=LIVE_MODE,
        )
        self.quality = {
            kind: Gauge(
                f"quire_quality_{kind}_share",
                f"Share of the window's rows {text}",
                ["column"],
                registry=r,
                multiprocess_mode=LIVE_MODE,
            )
            for kind, text in (
                ("missing", "missing a value"),
                ("out_of_range", "outside the reference's range"),
                ("unknown", "with a category the reference never had"),
            )
        }
        self.prediction_share = Gauge(
            "quire_prediction_share", "Share of the window's rows predicted as a class",
            ["label"], registry=r, multiprocess_mode=LIVE_MODE,
        )  # fmt: skip
        self.live_rows = Gauge(
            "quire_live_window_rows", "Served rows in the live drift window", registry=r,
            multiprocess_mode=LIVE_MODE,
        )  # fmt: skip
        self._live = [
            self.drift_score, self.drift_detected, self.drift_share, self.dataset_drift,
            *self.quality.values(), self.prediction_share,
        ]  # fmt: skip

    def exposition(self) -> bytes:
        """Return the text ``/metrics`` answers: this app's registry, or every worker's files."""
        folder = os.environ.get(MULTIPROCESS)
        if not folder:
            return generate_latest(self.registry)
        _forget_dead_workers(folder)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def served(self, labels: dict[str, str]) -> None:
        """Set the served model's info series (the one it replaces leaves the exposition)."""
        if self._model_labels is not None:
            _clear(self.model)
        self._model_labels = tuple(labels[k] for k in ("name", "version", "alias", "uri"))
        self.model.labels(*self._model_labels).set(1)

    def clear_live(self) -> None:
        """Remove every live-drift series (a new model version starts an empty window)."""
        for gauge in self._live:
            _clear(gauge)
        self.live_rows.set(0)

    def set_live(self, verdict: LiveVerdict | None, rows: int) -> None:
        """Export one live-drift verdict (None: too few rows yet, the series stay absent)."""
        self.live_rows.set(rows)
        if verdict is None:
            return
        for gauge in self._live:
            _clear(gauge)  # a column no longer checked must not keep its old value
        for role, report in (("feature", verdict.features), ("output", verdict.outputs)):
            for col in report.columns:
                self.drift_score.labels(col.column, role, col.method).set(col.score)
                self.drift_detected.labels(col.column, role).set(int(col.drifted))
        self.drift_share.set(verdict.features.drifted_share)
        self.dataset_drift.set(int(verdict.features.dataset_drift))
        for name, quality in verdict.quality.items():
            for kind, gauge in self.quality.items():
                gauge.labels(name).set(getattr(quality, kind))
        for label, share in verdict.prediction_shares.items():
            self.prediction_share.labels(label).set(share)

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


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _clear(gauge: Gauge) -> None:
    """Remove a labelled gauge's series; under several workers, set them to NaN instead.

    Multiprocess files keep every series a worker ever set (prometheus_client cannot clear
    them), so a removed one would go on being reported with its last value.
    """
    if not gauge._labelnames:
        return  # an unlabelled gauge has its one series, kept
    if not os.environ.get(MULTIPROCESS):
        gauge.clear()
        return
    for child in list(gauge._metrics.values()):  # kept: set again when their labels return
        child.set(math.nan)  # type: ignore[attr-defined]


def _forget_dead_workers(folder: str) -> None:
    """Drop the live-gauge files of workers that no longer run (what gunicorn's hook does)."""
    pids = {int(m.group(1)) for f in glob.glob(f"{folder}/gauge_live*.db")
            if (m := _LIVE_FILE.search(f))}  # fmt: skip
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
        except PermissionError:
            continue
