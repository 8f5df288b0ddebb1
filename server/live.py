"""Live drift for the served model: a window of served rows judged every few seconds, on /metrics.

:class:`LiveMonitor` keeps a :class:`lib.monitoring.live.LiveDrift` for the served model version
(built from that version's saved reference profile, replaced when a new champion is loaded) and
a background task that judges the window every ``monitor.live.every_seconds`` (in a worker thread:
the event loop keeps serving) and sets the gauges of :class:`server.metrics.Metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data.drift_profile import Profile
from lib.model.reference import DRIFT_PROFILE, output_kinds
from lib.monitoring.inputs import drift_kinds
from lib.monitoring.live import LiveDrift
from lib.serving.predictor import LoadedModel
from server.metrics import Metrics

log = get_logger("quire.server")


def live_drift_for(params: Params, model: LoadedModel, log_name: str) -> LiveDrift | str:
    """Return a live-drift window for ``model``, or why there is none (a reason to log)."""
    live = params.monitor.live
    if not live.enabled:
        return "monitor.live.enabled is false"
    if model.version is None:
        return "the model was not loaded from the registry: no saved reference"
    path = Layout.of(params, model=log_name).reference(str(model.version)) / DRIFT_PROFILE
    if not path.exists():
        return f"{path} is missing: rerun the evaluate stage for version {model.version}"
    profile = Profile.load(path)
    kinds = {k: v for k, v in drift_kinds(model.schema, params.monitor).items()
             if k in profile.columns}  # fmt: skip
    outputs = [c for c in output_kinds(model.schema) if c in profile.columns]  # as the stage
    return LiveDrift(
        profile,
        kinds,
        outputs,
        methods=params.monitor.methods,
        thresholds=params.monitor.thresholds,
        drift_share=params.monitor.drift_share,
        window_rows=live.window_rows,
        window_seconds=live.window_seconds,
        min_rows=live.min_rows,
        classes=model.classes,
    )


class LiveMonitor:
    """The live-drift window of the served version and the task that exports its verdicts."""

    def __init__(self, params: Params, metrics: Metrics) -> None:
        self.params = params
        self.metrics = metrics
        self.drift: LiveDrift | None = None
        self.version: str | None = None
        self._task: asyncio.Task[None] | None = None

    def use(self, model: LoadedModel, log_name: str) -> None:
        """Judge ``model``'s rows from now on (a new version starts an empty window)."""
        if self.drift is not None and model.version == self.version:
            return
        found = live_drift_for(self.params, model, log_name)
        self.metrics.clear_live()
        if isinstance(found, str):
            self.drift, self.version = None, None
            log.warning("live_drift_off", model=model.name, version=model.version, reason=found)
            return
        self.drift, self.version = found, model.version
        log.info("live_drift_on", model=model.name, version=model.version,
                 window_rows=found.window_rows, columns=len(found.kinds))  # fmt: skip

    def add(self, columns: Mapping[str, Any], version: str | None) -> None:
        """Queue one request's log columns (rows of another version are not this window's)."""
        if self.drift is not None and version == self.version:
            self.drift.add(columns)

    def start(self) -> None:
        """Start judging the window every ``monitor.live.every_seconds``."""
        self._task = asyncio.create_task(self._run(), name="live-drift")

    async def stop(self) -> None:
        """Stop the task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def update(self) -> None:
        """Judge the window now and export the verdict."""
        drift = self.drift
        if drift is None:
            return
        verdict = await asyncio.to_thread(drift.update)
        if drift is self.drift:  # not replaced meanwhile by a reload
            self.metrics.set_live(verdict, drift.rows)

    async def _run(self) -> None:
        every = self.params.monitor.live.every_seconds
        while True:
            await asyncio.sleep(every)
            try:
                await self.update()
            except Exception as exc:  # a bad window must not stop serving; say why, go on
                log.warning("live_drift_failed", error=f"{type(exc).__name__}: {exc}"[:300])
