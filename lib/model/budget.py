"""Per-family time budget: estimate a search's cost from a timed fit on a sample, and keep it in.

A family whose cost explodes with rows (an exact kernel SVM grows with rows squared or more) must
not dominate the train stage. Before a family's search, one configuration is fitted on a sample of
the training rows and the whole search (candidates x folds, spread over the workers, plus the
refit) is extrapolated to the full rows. Above ``train.family_time_budget`` the family switches to
its scalable variant (the SVM's Nystroem kernel approximation; a random forest whose trees each
grow on a bootstrap sample of part of the rows); if that is still over, its grid is searched on a
stratified row sample sized to the budget and the best configuration refitted on every row.
The plan's note says what was switched and why, for the report and MLflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from lib.core.logs import get_logger
from lib.core.param_sections import TrainParams
from lib.data.schema import Task
from lib.model.models import ModelSpec, is_exact_kernel, model_spec

log = get_logger(__name__)
PROBE_ROWS = 4000
# Training rows up to which no family is probed: the default 20,000-row table (13,000 training
# rows) trains as configured, and small tables pay nothing for the estimate.
PROBED_ABOVE = 20_000
_MIN_SEARCH_ROWS = 1000
# How fit time grows with rows: an exact kernel SVM between n² and n³ (n² is the kind estimate);
# forests n log n (a little above linear); the kernel approximation's linear SVM needs more
# solver iterations as rows grow (measured: a 2,000-row probe scaled linearly to 47,000 rows
# fell short about threefold); the others about linearly.
_EXPONENT = {"random_forest": 1.1, "svm": 1.3}
# Parallel fits share memory bandwidth, and a shared machine gives fewer cores than it has:
# searches on 2 busy cores took about twice the estimate that assumes every worker is free.
_PARALLEL_EFFICIENCY = 0.5
_MIN_FOREST_SAMPLES = 0.05


@dataclass(frozen=True)
class BudgetPlan:
    """How a family is searched: its spec, the rows its search uses, the estimate and why."""

    spec: ModelSpec
    search_rows: int | None
    estimate_seconds: float
    note: str


def _exponent(spec: ModelSpec) -> float:
    return 2.0 if is_exact_kernel(spec) else _EXPONENT.get(spec.family, 1.0)


def _candidates(spec: ModelSpec, p: TrainParams) -> int:
    size = int(np.prod([len(v) for v in spec.grid.values()])) if spec.grid else 1
    return min(size, p.n_iter) if p.search == "random" else size


def workers(p: TrainParams) -> int:
    """Return how many fits run at once: the Dask workers, or joblib's ``n_jobs``."""
    if p.backend == "dask":
        return p.dask_workers
    return joblib.cpu_count() if p.n_jobs < 0 else max(1, p.n_jobs)


def sample_rows(
    X: pd.DataFrame, y: pd.Series, rows: int, task: Task, seed: int
) -> tuple[pd.DataFrame, pd.Series]:
    """Return ``rows`` rows of (X, y), stratified on the target when every class allows it."""
    if rows >= len(X):
        return X, y
    rng = np.random.default_rng(seed)
    if task == "regression" or y.value_counts().min() < 2:
        picked = np.sort(rng.choice(len(X), rows, replace=False))
    else:
        # Each class keeps its share, and at least 2 rows so cross-validation can use it.
        codes = pd.factorize(y, sort=True)[0]
        parts = []
        for c in range(codes.max() + 1):
            members = np.flatnonzero(codes == c)
            take = max(2, round(len(members) * rows / len(X)))
            parts.append(rng.choice(members, min(take, len(members)), replace=False))
        picked = np.sort(np.concatenate(parts))
    return X.iloc[picked], y.iloc[picked]


def estimate_seconds(
    spec: ModelSpec,
    train: tuple[pd.DataFrame, pd.Series],
    task: Task,
    p: TrainParams,
    seed: int,
    rows: int | None = None,
    probe_rows: int = PROBE_ROWS,
) -> float:
    """Estimate a family's search time on ``rows`` training rows from one timed fit on a sample.

    Parameters
    ----------
    spec
        The family's pipeline and grid (its first configuration is the one timed).
    train
        (features, target) of the training split.
    task
        Decides how the probe sample is drawn.
    p
        Folds, search kind, parallelism.
    seed
        Seed of the probe sample.
    rows
        Rows the search would use (default: all training rows).
    probe_rows
        Rows of the timed fit.

    Returns
    -------
    float
        Seconds: fits (candidates x folds) over the workers, plus the refit on ``rows``.
    """
    X, y = train
    n = len(X) if rows is None else rows
    first = {k: v[0] for k, v in spec.grid.items()}
    # Two timed fits (a quarter of the probe, then all of it) separate the fixed cost of a fit
    # (building 150 empty trees, a solver's set-up) from the part that grows with rows; one
    # small fit extrapolated alone overestimates big tables many times over.
    sizes, times = [], []
    for m in (max(50, min(probe_rows, len(X)) // 4), min(probe_rows, len(X))):
        probe = sample_rows(X, y, m, task, seed)
        model = clone(spec.pipeline).set_params(**first)
        # One thread, as in the search's worker processes (joblib limits their inner threads):
        # OpenMP threads fighting for busy cores would make the probe many times slower.
        with threadpool_limits(limits=1):
            started = time.perf_counter()
            model.fit(*probe)
            times.append(time.perf_counter() - started)
        sizes.append(float(len(probe[0])) ** _exponent(spec))
    slope = max(0.0, (times[1] - times[0]) / max(sizes[1] - sizes[0], 1e-9))
    fixed = max(0.0, times[1] - slope * sizes[1])

    def fit_seconds(rows: float) -> float:
        # Never above the larger probe scaled alone: noise in the small probe (a busy machine)
        # must not turn into a slope steeper than the fit itself.
        naive = times[1] * rows ** _exponent(spec) / sizes[1]
        return float(min(fixed + slope * rows ** _exponent(spec), naive))

    fits = _candidates(spec, p) * p.cv_folds
    parallel = max(1.0, min(workers(p), fits) * _PARALLEL_EFFICIENCY)
    rounds = np.ceil(fits / parallel)
    per_fit = fit_seconds(n * (p.cv_folds - 1) / p.cv_folds)
    return float(per_fit * rounds + fit_seconds(n))


def plan_family(
    spec: ModelSpec,
    train: tuple[pd.DataFrame, pd.Series],
    task: Task,
    p: TrainParams,
    seed: int,
    preprocessor: object,
    probe_rows: int | None = None,
) -> BudgetPlan:
    """Return how to search a family within ``train.family_time_budget`` seconds.

    Tables no larger than twice ``probe_rows`` (by default: no larger than
    :data:`PROBED_ABOVE` training rows) are searched as configured without a probe.
    Otherwise the search is estimated; over the budget, an exact kernel SVM becomes its kernel
    approximation, a random forest grows each tree on a bootstrap sample sized to the budget
    (``max_samples``), and a family still over it searches a stratified row sample sized to the
    budget (at least 1,000 rows), refitting the best configuration on every training row.

    Parameters
    ----------
    spec
        The family as configured.
    train
        (features, target) of the training split.
    task
        ``binary``, ``multiclass`` or ``regression``.
    p
        Train parameters (the budget, folds, parallelism, SVM settings).
    seed
        Integer seed of the probe and of the search sample.
    preprocessor
        The ingest stage's unfitted preprocessor (to rebuild the SVM as its approximation).
    probe_rows
        Rows of the larger timed fit (default :data:`PROBE_ROWS`, with the
        :data:`PROBED_ABOVE` floor).

    Returns
    -------
    BudgetPlan
        The spec to search (possibly switched), the search rows (None: all), the estimate and a
        note saying what was switched and why ("" when nothing was).
    """
    n = len(train[0])
    budget = p.family_time_budget
    floor = PROBED_ABOVE if probe_rows is None else 0
    probe_rows = PROBE_ROWS if probe_rows is None else probe_rows
    if n <= max(floor, 2 * probe_rows):
        return BudgetPlan(spec, None, float("nan"), "")
    estimate = estimate_seconds(spec, train, task, p, seed, probe_rows=probe_rows)
    notes = []
    if estimate > budget and is_exact_kernel(spec):
        why = (
            f"estimated {estimate:.0f} s for the exact kernel search > train.family_time_budget "
            f"{budget:g} s"
        )
        spec = model_spec(spec.family, task, preprocessor, p, seed, n, scalable=why)
        notes.append(spec.note)
        estimate = estimate_seconds(spec, train, task, p, seed, probe_rows=probe_rows)
    if estimate > budget and spec.family == "random_forest":
        # A forest's scalable variant: each tree on a bootstrap sample of part of the rows
        # (smaller trees, faster fits, a smaller model to save and serve).
        share = round(max(_MIN_FOREST_SAMPLES, (budget / estimate) ** (1 / _exponent(spec))), 2)
        if share < 1.0:
            pipeline = clone(spec.pipeline).set_params(model__max_samples=share)
            notes.append(
                f"estimated {estimate:.0f} s to search on {n:,} rows > train.family_time_budget "
                f"{budget:g} s: each tree grown on a bootstrap sample of {share:.0%} of the rows "
                "(max_samples)"
            )
            spec = replace(spec, pipeline=pipeline)
            estimate = estimate_seconds(spec, train, task, p, seed, probe_rows=probe_rows)
    search_rows = None
    if estimate > budget:
        share = (budget / estimate) ** (1 / _exponent(spec))
        search_rows = int(min(n, max(_MIN_SEARCH_ROWS, share * n)))
        if search_rows < n:
            notes.append(
                f"estimated {estimate:.0f} s to search on {n:,} rows > train.family_time_budget "
                f"{budget:g} s: grid searched on a stratified sample of {search_rows:,} rows, "
                f"the best configuration refitted on all {n:,}"
            )
            estimate = estimate_seconds(spec, train, task, p, seed, search_rows, probe_rows)
        else:
            search_rows = None
    note = "; ".join(notes)
    if notes:
        log.warning("family_time_budget", family=spec.family, note=note)
    if not notes:
        return BudgetPlan(spec, None, estimate, "")
    return BudgetPlan(replace(spec, note=note), search_rows, estimate, "; ".join(notes))
