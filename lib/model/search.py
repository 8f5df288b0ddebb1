"""Hyper-parameter search of one model family, locally or on a Dask cluster."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.inspection import permutation_importance
from sklearn.metrics import get_scorer
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    StratifiedKFold,
    learning_curve,
)
from sklearn.pipeline import Pipeline

from lib.core.errors import DataValidationError
from lib.core.logs import get_logger
from lib.core.param_sections import TrainParams
from lib.data.schema import Task
from lib.model.budget import sample_rows
from lib.model.metrics import Metric, Scorer
from lib.model.models import ModelSpec

log = get_logger(__name__)
_IMPORTANCE_ROWS = 1000
_CURVE_ROWS = 5000


@dataclass
class FamilyResult:
    """The outcome of one family's search: best configuration, scores and the refitted model."""

    family: str
    note: str
    best_params: dict[str, Any]
    cv: dict[str, tuple[float, float]]
    fold_scores: list[float]
    validation: dict[str, float]
    fit_seconds: float
    search_seconds: float
    refit_seconds: float
    predict_ms_per_1k: float
    candidates: int
    estimator: Pipeline
    importances: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    run_id: str | None = None
    model_uri: str | None = None
    search_rows: int | None = None


Folds: TypeAlias = KFold | StratifiedKFold | list[tuple[np.ndarray, np.ndarray]]


def cv_plan(task: Task, y: pd.Series, folds: int, seed: int) -> tuple[Folds, str]:
    """Return the cross-validation folds for ``y`` and a note when rare classes changed them.

    Stratified K-fold needs every class in every fold: with ``folds`` folds a class with fewer
    training rows would be missing from some folds' training or scoring rows, and scikit-learn
    warns or its scorers raise. So the folds are reduced to the rarest class's row count (at
    least 2); a class with a single training row stays in every training fold and is never
    scored in cross-validation (it still is on validation and test).

    Parameters
    ----------
    task
        ``regression`` gives plain shuffled K-fold.
    y
        The training target.
    folds
        ``train.cv_folds``.
    seed
        Integer seed of the shuffles.

    Returns
    -------
    tuple of (splitter or list of (train, test) positions, str)
        What scikit-learn's ``cv=`` takes, and a sentence for the report ("" when as configured).
    """
    if task == "regression":
        return KFold(n_splits=folds, shuffle=True, random_state=seed), ""
    counts = y.value_counts()
    rarest, fewest = _plain(counts.index[-1]), int(counts.iloc[-1])
    if fewest >= folds:
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed), ""
    single = counts[counts < 2]
    kept = counts[counts >= 2]
    if len(kept) < 2:
        raise DataValidationError(
            f"train: only {len(kept)} class(es) of the target have 2 or more training rows "
            f"({counts.to_dict()}); cross-validation needs two; add rows of the rare classes or "
            "use a stratified split (ingest.split.by_time: false)",
            check="cv_folds",
        )
    n = min(folds, int(kept.min()))
    if single.empty:
        note = (
            f"{n}-fold CV instead of train.cv_folds={folds}: class {rarest!r} has only {fewest} "
            "training rows"
        )
        return StratifiedKFold(n_splits=n, shuffle=True, random_state=seed), note
    labels = y.to_numpy()
    always = np.flatnonzero(np.isin(labels, single.index.to_numpy()))
    rest = np.flatnonzero(~np.isin(labels, single.index.to_numpy()))
    splitter = StratifiedKFold(n_splits=n, shuffle=True, random_state=seed)
    splits = [
        (np.sort(np.r_[rest[tr], always]), rest[te])
        for tr, te in splitter.split(rest, labels[rest])
    ]
    names = ", ".join(repr(_plain(c)) for c in single.index)
    note = (
        f"{n}-fold CV: class(es) {names} have a single training row, kept in every training fold "
        "and not scored in cross-validation"
    )
    return splits, note


@contextlib.contextmanager
def compute_backend(p: TrainParams) -> Iterator[str]:
    """Run joblib work (the searches) locally or on a dask.distributed cluster.

    Yields a short description of the backend. With ``backend: dask`` and no scheduler address,
    a LocalCluster of ``dask_workers`` single-threaded worker processes on 127.0.0.1 is started
    and closed afterwards.
    """
    if p.backend == "local":
        yield "local (joblib)"
        return
    import joblib
    from dask.distributed import Client, LocalCluster

    cluster = None
    if p.dask_scheduler:
        client = Client(p.dask_scheduler)
        where = p.dask_scheduler
    else:
        cluster = LocalCluster(
            n_workers=p.dask_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        client = Client(cluster)
        where = f"LocalCluster with {p.dask_workers} workers"
    try:
        with joblib.parallel_backend("dask"):
            yield f"dask ({where})"
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _plain(value: Any) -> Any:
    """Return a NumPy scalar as the Python value it holds (for messages: 2, not np.int64(2))."""
    return value.item() if isinstance(value, np.generic) else value


def _searcher(
    spec: ModelSpec, cv: Folds, p: TrainParams, primary: Metric, others: list[Metric], seed: int
) -> Any:
    if p.search == "halving":
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV

        # Successive halving takes one scorer: secondary metrics come from the validation split.
        return HalvingGridSearchCV(
            spec.pipeline, spec.grid, scoring=primary.scorer, cv=cv, n_jobs=p.n_jobs,
            random_state=seed, error_score="raise",
        )  # fmt: skip
    scoring = {m.name: m.scorer for m in [primary, *others]}
    if p.search == "random":
        size = int(np.prod([len(v) for v in spec.grid.values()])) if spec.grid else 1
        return RandomizedSearchCV(
            spec.pipeline, spec.grid, n_iter=min(p.n_iter, size), scoring=scoring,
            refit=primary.name, cv=cv, n_jobs=p.n_jobs, random_state=seed, error_score="raise",
        )  # fmt: skip
    return GridSearchCV(
        spec.pipeline, spec.grid, scoring=scoring, refit=primary.name, cv=cv, n_jobs=p.n_jobs,
        error_score="raise",
    )  # fmt: skip


def _cv_scores(
    results: dict[str, Any], best: int, metrics: list[Metric], single: bool
) -> tuple[dict[str, tuple[float, float]], list[float]]:
    cv: dict[str, tuple[float, float]] = {}
    for m in metrics[:1] if single else metrics:
        key = "score" if single else m.name
        if f"mean_test_{key}" not in results:
            continue
        sign = 1.0 if m.higher_is_better else -1.0
        cv[m.name] = (
            sign * float(results[f"mean_test_{key}"][best]),
            float(results[f"std_test_{key}"][best]),
        )
    key = "score" if single else metrics[0].name
    fold_scores: list[float] = []
    while f"split{len(fold_scores)}_test_{key}" in results:
        raw = results[f"split{len(fold_scores)}_test_{key}"][best]
        fold_scores.append(metrics[0].from_score(float(raw)))
    return cv, fold_scores


def score(estimator: Any, X: pd.DataFrame, y: pd.Series, metrics: list[Metric]) -> dict[str, float]:
    """Return each metric of a fitted estimator on (X, y), in the metric's own direction."""
    return {m.name: m.from_score(get_scorer(m.scorer)(estimator, X, y)) for m in metrics}


def search_family(
    spec: ModelSpec,
    train: tuple[pd.DataFrame, pd.Series],
    validation: tuple[pd.DataFrame, pd.Series],
    task: Task,
    p: TrainParams,
    metrics: tuple[Metric, list[Metric]],
    seed: int,
    search_rows: int | None = None,
) -> FamilyResult:
    """Search one family's grid with cross-validation, refit the best once, score on validation.

    Parameters
    ----------
    spec
        The family's unfitted pipeline and grid.
    train, validation
        (features, target) of the two splits.
    task
        Decides the CV splitter.
    p
        Search settings.
    metrics
        The primary metric and the secondary ones.
    seed
        Integer seed for the CV splits and random search.
    search_rows
        Search on a stratified sample of this many training rows, then refit the best
        configuration on all of them (the time budget's choice, :mod:`lib.model.budget`);
        None searches on every row.

    Returns
    -------
    FamilyResult
        Scores, timings, best parameters and the fitted pipeline.
    """
    primary, others = metrics
    searched = train if search_rows is None else sample_rows(*train, search_rows, task, seed)
    cv_folds, cv_note = cv_plan(task, searched[1], p.cv_folds, seed)
    if cv_note:
        log.warning("cv_folds_changed", family=spec.family, note=cv_note)
    searcher = _searcher(spec, cv_folds, p, primary, others, seed)
    started = time.perf_counter()
    searcher.fit(*searched)
    estimator: Pipeline = searcher.best_estimator_
    refit_seconds = float(getattr(searcher, "refit_time_", 0.0))
    if searched is not train:
        t0 = time.perf_counter()
        estimator = clone(spec.pipeline).set_params(**searcher.best_params_).fit(*train)
        refit_seconds = time.perf_counter() - t0
    seconds = time.perf_counter() - started
    best = int(searcher.best_index_)
    results = searcher.cv_results_
    cv, folds = _cv_scores(results, best, [primary, *others], p.search == "halving")
    t0 = time.perf_counter()
    estimator.predict(validation[0])
    predict_ms = (time.perf_counter() - t0) * 1000 / max(len(validation[0]), 1) * 1000
    result = FamilyResult(
        family=spec.family,
        note="; ".join(n for n in (spec.note, cv_note) if n),
        # "model__svm__estimator__C" → "C": the grid's own key.
        best_params={k.split("__")[-1]: v for k, v in searcher.best_params_.items()},
        cv=cv,
        fold_scores=folds,
        validation=score(estimator, *validation, [primary, *others]),
        fit_seconds=float(results["mean_fit_time"][best]),
        search_seconds=seconds,
        refit_seconds=refit_seconds,
        predict_ms_per_1k=predict_ms,
        candidates=len(results["params"]),
        estimator=estimator,
        importances=importances(estimator, *validation, primary.scorer, seed),
        search_rows=len(searched[0]),
    )
    log.info(
        "family_searched",
        family=spec.family,
        candidates=result.candidates,
        seconds=round(seconds, 2),
        **{f"cv_{primary.name}": round(cv[primary.name][0], 4)},
        **{f"val_{primary.name}": round(result.validation[primary.name], 4)},
    )
    return result


def importances(
    estimator: Any, X: pd.DataFrame, y: pd.Series, scorer: Scorer, seed: int,
    rows: int = _IMPORTANCE_ROWS,
) -> pd.Series:  # fmt: skip
    """Permutation importance on (a sample of) the rows given, by original column name."""
    if len(X) > rows:
        X = X.sample(n=rows, random_state=seed)
        y = y.loc[X.index]
    found = permutation_importance(
        estimator, X, y, scoring=scorer, n_repeats=3, random_state=seed, n_jobs=1
    )
    return pd.Series(found.importances_mean, index=X.columns).sort_values(ascending=False)


def curve(
    estimator: Pipeline, X: pd.DataFrame, y: pd.Series, task: Task, p: TrainParams,
    primary: Metric, seed: int,
) -> pd.DataFrame:  # fmt: skip
    """Learning curve of the best configuration: score vs training rows (train and CV)."""
    if len(X) > _CURVE_ROWS:
        X = X.sample(n=_CURVE_ROWS, random_state=seed)
        y = y.loc[X.index]
    sizes, train_scores, cv_scores = learning_curve(
        clone(estimator), X, y, train_sizes=[0.2, 0.45, 0.7, 1.0],
        cv=cv_plan(task, y, min(3, p.cv_folds), seed)[0], scoring=primary.scorer,
        n_jobs=p.n_jobs, shuffle=True, random_state=seed,
    )  # fmt: skip
    sign = 1.0 if primary.higher_is_better else -1.0
    return pd.DataFrame(
        {
            "train_rows": sizes,
            "train_mean": sign * train_scores.mean(axis=1),
            "train_std": train_scores.std(axis=1),
            "cv_mean": sign * cv_scores.mean(axis=1),
            "cv_std": cv_scores.std(axis=1),
        }
    )
