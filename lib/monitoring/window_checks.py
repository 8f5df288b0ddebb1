"""The four per-window checks of a monitor run, side by side on the cores.

Drift per column (:mod:`lib.monitoring.window_drift`), multivariate drift
(:mod:`lib.monitoring.multivariate`), data quality (:mod:`lib.monitoring.window_quality`) and
estimated and realized performance (:mod:`lib.monitoring.estimate`) read the same two frames and
windows and write nothing, so they run as independent jobs on ``monitor.threads`` threads (the
cores, at most 4). Their numpy and Arrow work releases the GIL. Every table is the one the check
gives alone (tested); an error is raised for the first failing check in the order above, so it
does not depend on scheduling.

Why side by side: drift and quality spread their columns over the threads, but multivariate and
performance each run on one. One after the other, half the machine idled for about 2 s of the
monitor benchmark's 3.4 (1,000,000 current rows on 2 cores). The two single-threaded jobs
(performance, then multivariate) start first and drift and quality fill the threads around them:
the checks took 2.3-2.5 s in that order, 2.2-2.7 s with drift second, and the peak was 20-30 MiB
lower (multivariate's blocks no longer meet drift's columns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lib.core.frames import Columns
from lib.core.parallel import map_ordered, thread_count
from lib.core.param_sections import MonitorParams
from lib.data.drift_profile import Kind, Profile
from lib.data.schema import Task
from lib.monitoring.estimate import window_performance
from lib.monitoring.multivariate import multivariate_drift
from lib.monitoring.window_drift import Exact, window_drift
from lib.monitoring.window_quality import window_quality
from lib.monitoring.windows import Window


@dataclass(frozen=True, kw_only=True)
class Performance:
    """What the performance check needs beyond the frames: the model's task and truth."""

    task: Task
    classes: Sequence[Any] | None
    target: str
    seed: int = 0
    metrics: Sequence[str] | None = None  # None: the task's defaults


@dataclass(frozen=True)
class WindowTables:
    """The per-window tables of one run (performance empty when it was not asked for)."""

    drift: pd.DataFrame
    multivariate: pd.DataFrame
    quality: pd.DataFrame
    performance: pd.DataFrame


def run_window_checks(
    reference: Columns,
    current: Columns,
    kinds: Mapping[str, Kind],
    ref_windows: list[Window],
    cur_windows: list[Window],
    params: MonitorParams,
    *,
    performance: Performance | None = None,
    drift_ref_windows: list[Window] | None = None,
    profile: Profile | None = None,
    exact: Exact | None = None,
    ingested_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> WindowTables:
    """Run every per-window check on the two sides (see the module doc).

    Parameters
    ----------
    reference, current
        The two sides' rows (the current one in :func:`lib.monitoring.estimate.current_frame`'s
        layout when performance is checked); the windows index into them by position.
    kinds
        The checked feature columns -> ``numeric`` or ``categorical``.
    ref_windows, cur_windows
        The windows of each side.
    params
        ``sigmas``, ``threads``, ``bootstrap`` (at least 20 resamples are drawn: a sampling
        error needs them) and drift's ``methods`` and ``thresholds``.
    performance
        The task and truth; None skips the performance check (an empty table).
    drift_ref_windows, profile, exact
        Drift's own reference windows (default ``ref_windows``), the reference's saved profile
        and the current rows' summaries (see :func:`lib.monitoring.window_drift.window_drift`).
    ingested_ranges
        Numeric columns' ranges at ingest for the quality check's out-of-range rule (see
        :func:`lib.monitoring.window_quality.window_quality`).
    """
    sigmas = params.sigmas
    jobs: dict[str, Callable[[], pd.DataFrame]] = {}
    if performance is not None:
        perf = performance
        jobs["performance"] = lambda: window_performance(
            perf.task, perf.classes, reference, current, ref_windows, cur_windows,
            target=perf.target, features=list(kinds), metrics=perf.metrics,
            sigmas=sigmas, resamples=max(params.bootstrap, 20), seed=perf.seed,
        )  # fmt: skip
    jobs["multivariate"] = lambda: multivariate_drift(
        reference, current, kinds, ref_windows, cur_windows, sigmas
    )
    jobs["drift"] = lambda: window_drift(
        reference, current, kinds, drift_ref_windows or ref_windows, cur_windows, params,
        profile=profile, exact=exact,
    )  # fmt: skip
    jobs["quality"] = lambda: window_quality(
        reference, current, kinds, ref_windows, cur_windows, sigmas, threads=params.threads,
        ingested_ranges=ingested_ranges,
    )  # fmt: skip
    # listed in the order they start (see the module doc); each job's error is kept and the
    # first in the doc's order raised, as when the checks ran one after the other
    outcomes = map_ordered(_outcome, jobs.values(), thread_count(params.threads))
    done = dict(zip(jobs, outcomes, strict=True))
    for name in ("drift", "multivariate", "quality", "performance"):
        error = done.get(name)
        if isinstance(error, BaseException):
            raise error
    tables = {k: v for k, v in done.items() if isinstance(v, pd.DataFrame)}
    return WindowTables(
        tables["drift"],
        tables["multivariate"],
        tables["quality"],
        tables.get("performance", pd.DataFrame()),
    )


def _outcome(job: Callable[[], pd.DataFrame]) -> pd.DataFrame | Exception:
    """Return the job's table, or the error it raised (to be raised in a fixed order)."""
    try:
        return job()
    except Exception as error:  # re-raised by the caller, in the doc's order
        return error
