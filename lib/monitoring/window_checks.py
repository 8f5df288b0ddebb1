"""The four per-window checks of a monitor run, side by side on the cores.

Drift per column (:mod:`lib.monitoring.window_drift`), multivariate drift
(:mod:`lib.monitoring.multivariate`), data quality (:mod:`lib.monitoring.window_quality`) and
estimated and realized performance (:mod:`lib.monitoring.estimate`) read the same two frames and
windows and write nothing, so they run as independent jobs on ``monitor.threads`` threads (the
cores, at most 4). Their numpy and Arrow work releases the GIL. Every table is the one the check
gives alone (tested); an error is raised for the first failing check in the order above, so it
does not depend on scheduling.

Why side by side: multivariate and performance each run on one thread, drift and quality a
column at a time. One after the other, half the machine idled for about 2 s of the monitor
benchmark's 3.4 (1,000,000 current rows on 2 cores). The two single-threaded jobs start first
in turn: multivariate, then performance as soon as multivariate is done, not beside it (their
working sets, about 100 MiB each on the benchmark, would add up at the peak), while the columns
fill the other thread (with too few columns to fill it, performance starts beside
multivariate when they run out, as the time would otherwise grow). Against both starting at
once the peak fell from 196 to 178 MiB above the imports, and the time did not grow (2.27
against 2.37 s; medians of 6 alternating runs). Multivariate goes first because its peak, the
streams of whole rows (Arrow's readers of 20 columns at once), then meets a process that holds
least: the allocators have not yet kept the pages of earlier steps. On the monitor bench the
peak fell from 365 to 331 MiB (imports included) and the time stayed 1.95-1.96 s (medians of 5
alternating runs).

Drift and quality share their columns: a job reads one column of each side and hands it to
both checks (handed files, :class:`lib.core.frames.ParquetColumns`, each check read every
feature column itself: 40 of the monitor benchmark's 86 column reads were the second read of a
column). A column's error fails its check only, as when the checks ran on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

import pandas as pd

from lib.core.frames import Columns
from lib.core.heap import give_back
from lib.core.parallel import map_ordered, thread_count
from lib.core.param_sections import MonitorParams
from lib.data.drift_profile import Kind, Profile, category_codes
from lib.data.schema import Task
from lib.monitoring.estimate import window_performance
from lib.monitoring.multivariate import multivariate_drift
from lib.monitoring.window_drift import DriftRun, Exact, checked_columns
from lib.monitoring.window_quality import check_columns, column_quality, quality_table
from lib.monitoring.windows import Window

T = TypeVar("T")


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
    # multivariate first: its streams of whole rows are its peak, and they run while the
    # process holds least (see the module doc)
    jobs: dict[str, Callable[[], object]] = {
        "multivariate": lambda: multivariate_drift(
            reference, current, kinds, ref_windows, cur_windows, sigmas
        )
    }
    if performance is not None:
        perf = performance
        jobs["performance"] = lambda: window_performance(
            perf.task, perf.classes, reference, current, ref_windows, cur_windows,
            target=perf.target, features=list(kinds), metrics=perf.metrics,
            sigmas=sigmas, resamples=max(params.bootstrap, 20), seed=perf.seed,
        )  # fmt: skip
    drift = DriftRun(drift_ref_windows or ref_windows, cur_windows, params, profile, exact)
    windows = {"reference": ref_windows, "current": cur_windows}  # quality's
    columns = _Columns(reference, current, kinds, drift, windows, sigmas, ingested_ranges or {})
    names = list(dict.fromkeys([*columns.drift, *columns.quality]))
    # listed in the order they start (see the module doc); each job's error is kept and the
    # first in the doc's order raised, as when the checks ran one after the other
    work: list[Callable[[], object]] = [*jobs.values(), *(partial(columns.one, n) for n in names)]
    # performance and multivariate not together while columns are left to fill the other
    # thread: their working sets (about 100 MiB each on the monitor bench) would add up
    apart = range(len(jobs))
    outcomes = map_ordered(_outcome, work, thread_count(params.threads), apart=apart)
    done: dict[str, object] = dict(zip(jobs, outcomes, strict=False))
    per_column = cast(list[tuple[Outcome, Outcome]], outcomes[len(jobs) :])
    done["drift"] = columns.table("drift", [d for d, _ in per_column], drift.table)
    done["quality"] = columns.table("quality", [q for _, q in per_column], quality_table)
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


Rows = list[dict[str, object]]
Outcome = Rows | Exception | None  # a column's rows of one check, its error, or not checked


class _Columns:
    """Drift and quality, a column at a time: each column is read once for both checks."""

    def __init__(
        self,
        reference: Columns,
        current: Columns,
        kinds: Mapping[str, Kind],
        drift: DriftRun,
        windows: Mapping[str, Sequence[Window]],
        sigmas: float,
        ingested: Mapping[str, tuple[float, float]],
    ) -> None:
        self.sides = (reference, current)
        self.run, self.windows, self.sigmas, self.ingested = drift, windows, sigmas, ingested
        self.errors: dict[str, Exception] = {}
        self.drift: Mapping[str, Kind] = {}
        self.quality: Mapping[str, Kind] = {}
        # a check whose columns are missing fails as a whole (raised in the doc's order)
        try:
            self.drift = checked_columns(reference, current, kinds)
        except Exception as error:
            self.errors["drift"] = error
        try:
            check_columns(reference, current, kinds)
            self.quality = kinds
        except Exception as error:
            self.errors["quality"] = error

    def one(self, name: str) -> tuple[Outcome, Outcome]:
        """Return column ``name``'s drift rows and quality rows (or each check's error).

        The column's arrays are dropped when its checks are done, and their memory given back
        (:func:`lib.core.heap.give_back`): on the monitor bench the checks' peak fell from
        294-328 to 289-297 MiB (medians 300 and 290 of 6 alternating runs, imports included);
        the pages faulted in again (35,000 more faults) cost no time beyond the noise.
        """
        outcomes = self._checked(name)
        give_back()
        return outcomes

    def _checked(self, name: str) -> tuple[Outcome, Outcome]:
        codes = None
        try:
            ref, cur = (pd.DataFrame({name: side[name]}, copy=False) for side in self.sides)
            if self.drift.get(name) == self.quality.get(name) == "categorical":
                # each side's category codes worked out once for both checks (each check
                # hashed a million values again: a tenth of the monitor bench's column jobs)
                codes = (category_codes(ref[name]), category_codes(cur[name]))
        except Exception as error:  # a read (or coding) that failed fails both checks
            return (
                error if name in self.drift else None,
                error if name in self.quality else None,
            )
        drift: Outcome = None
        quality: Outcome = None
        if name in self.drift:
            drift = _outcome(lambda: self.run.column(name, self.drift[name], ref, cur, codes))
        if name in self.quality:
            quality = _outcome(
                lambda: column_quality(
                    name, self.quality[name], ref, cur, self.windows, self.sigmas,
                    self.ingested, codes,
                )
            )  # fmt: skip
        return drift, quality

    def table(
        self,
        check: str,
        outcomes: Sequence[Outcome],
        assemble: Callable[[Rows, int], pd.DataFrame],
    ) -> pd.DataFrame | Exception:
        """Return a check's table from its columns' rows, or its first error (in column order)."""
        if check in self.errors:
            return self.errors[check]
        rows: Rows = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                return outcome
            rows += outcome or []
        return assemble(rows, len(self.drift if check == "drift" else self.quality))


def _outcome(job: Callable[[], T]) -> T | Exception:
    """Return the job's result, or the error it raised (to be raised in a fixed order)."""
    try:
        return job()
    except Exception as error:  # re-raised by the caller, in the doc's order
        return error
