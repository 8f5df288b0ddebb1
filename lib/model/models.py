"""The model zoo: each family as a Pipeline of the ingest stage's preprocessor + an estimator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR

from lib.core.errors import ParamsError
from lib.core.param_sections import FAMILIES, Family, TrainParams
from lib.data.schema import Task


@dataclass(frozen=True)
class ModelSpec:
    """A family's unfitted pipeline, its search grid, and a note on any substitution made."""

    family: Family
    pipeline: Pipeline
    grid: dict[str, list[Any]]
    note: str


def _estimator(
    family: Family, task: Task, p: TrainParams, seed: int, rows: int, scalable: str = ""
) -> tuple[Any, str, str]:
    """Return (estimator, grid key prefix, note) for one family and task."""
    weight = "balanced" if p.class_weight == "balanced" else None
    classify = task != "regression"
    if family == "random_forest":
        if classify:
            return RandomForestClassifier(random_state=seed, class_weight=weight, n_jobs=1), "", ""
        return RandomForestRegressor(random_state=seed, n_jobs=1), "", ""
    if family == "hist_gradient_boosting":
        if classify:
            return HistGradientBoostingClassifier(random_state=seed, class_weight=weight), "", ""
        return HistGradientBoostingRegressor(random_state=seed), "", ""
    if family == "logistic":
        if classify:
            return LogisticRegression(max_iter=2000, class_weight=weight), "", ""
        return Ridge(random_state=seed), "", "Ridge regression (alpha = 1 / C of the grid)"
    if family == "svm":
        return _svm(task, p, seed, rows, weight, scalable)
    choices = ", ".join(FAMILIES)
    raise ValueError(f"train.families: unknown model family {family!r}; choose from {choices}")


def _svm(
    task: Task, p: TrainParams, seed: int, rows: int, weight: str | None, scalable: str
) -> tuple[Any, str, str]:
    if rows <= p.svm_max_rows and not scalable:
        if task == "regression":
            return SVR(), "", f"exact RBF-kernel SVR ({rows:,} training rows)"
        # Probabilities by sigmoid calibration on internal folds (what SVC(probability=True)
        # did, deprecated in scikit-learn 1.9).
        svc = SVC(class_weight=weight, random_state=seed)
        calibrated = CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)
        return calibrated, "estimator__", f"exact RBF-kernel SVC ({rows:,} training rows)"
    kernel = Nystroem(n_components=p.svm_components, random_state=seed)
    why = scalable or f"{rows:,} training rows > train.svm_max_rows ({p.svm_max_rows:,})"
    note = f"{why}: Nystroem RBF kernel approximation ({p.svm_components} components) + linear SVM"
    if task == "regression":
        svr = LinearSVR(random_state=seed, max_iter=5000)
        return Pipeline([("kernel", kernel), ("svm", svr)]), "svm__", note
    linear = LinearSVC(class_weight=weight, random_state=seed, max_iter=5000)
    calibrated = CalibratedClassifierCV(linear, method="sigmoid", cv=3)
    return (
        Pipeline([("kernel", kernel), ("svm", calibrated)]),
        "svm__estimator__",
        note + ", sigmoid-calibrated for probabilities",
    )


def _grid(family: Family, task: Task, p: TrainParams, prefix: str) -> dict[str, list[Any]]:
    raw = p.grids.get(family, {})
    grid: dict[str, list[Any]] = {}
    for name, values in raw.items():
        if family == "logistic" and task == "regression" and name == "C":
            grid["model__alpha"] = [1.0 / v for v in values]
        else:
            grid[f"model__{prefix}{name}"] = list(values)
    return grid


def model_spec(
    family: Family,
    task: Task,
    preprocessor: ColumnTransformer,
    p: TrainParams,
    seed: int,
    rows: int,
    scalable: str = "",
) -> ModelSpec:
    """Return the unfitted pipeline and grid of one family.

    Parameters
    ----------
    family
        One of ``random_forest``, ``hist_gradient_boosting``, ``logistic``, ``svm``.
    task
        ``binary``, ``multiclass`` or ``regression``.
    preprocessor
        The ingest stage's unfitted ColumnTransformer (cloned, never fitted in place).
    p
        Train parameters (grids, class weights, SVM limits).
    seed
        Integer seed for every estimator that takes one.
    rows
        Training rows (decides the SVM variant).
    scalable
        Why the family must take its scalable variant whatever the rows (the SVM's kernel
        approximation), e.g. the time budget; "" leaves it to ``rows``.

    Returns
    -------
    ModelSpec
        Pipeline ``pre`` → ``model``, grid keyed ``model__<param>``, note.
    """
    estimator, prefix, note = _estimator(family, task, p, seed, rows, scalable)
    pipeline = Pipeline([("pre", clone(preprocessor)), ("model", estimator)])
    grid = _grid(family, task, p, prefix)
    valid = pipeline.get_params()
    for key in grid:
        if key not in valid:
            name = key.removeprefix("model__").removeprefix(prefix)
            raise ParamsError(
                f"train.grids.{family}.{name}: not a parameter of "
                f"{type(_leaf(estimator)).__name__}; see its scikit-learn documentation",
                key=f"train.grids.{family}.{name}",
            )
    return ModelSpec(family, pipeline, grid, note)


def is_exact_kernel(spec: ModelSpec) -> bool:
    """Return whether the spec is an exact kernel SVM (fit time grows with rows squared or more)."""
    model = spec.pipeline.named_steps["model"]
    inner = model.estimator if isinstance(model, CalibratedClassifierCV) else model
    return isinstance(inner, SVC | SVR)


def _leaf(estimator: Any) -> BaseEstimator:
    if isinstance(estimator, Pipeline):
        last = estimator.steps[-1][1]
        return last.estimator if isinstance(last, CalibratedClassifierCV) else last
    return estimator
