"""The train stage: search every family, track it in MLflow, register the best as challenger.

One parent MLflow run per stage run, a nested child run per family. A run whose stage fails is
ended FAILED (MLflow's run context does so on any exception), never left RUNNING.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from lib.core import tracking
from lib.core.atomic import sha256_file
from lib.core.contracts.manifest import MANIFEST_ARTIFACT
from lib.core.contracts.tags import (
    best_family_tags,
    provenance_tags,
    stage_tags,
    version_tags,
)
from lib.core.errors import ModelNotFoundError, QuireError
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data.ingest import ProcessedData, load_processed
from lib.model.budget import BudgetPlan, plan_family
from lib.model.metrics import Metric, metrics_for
from lib.model.models import model_spec
from lib.model.search import FamilyResult, compute_backend, curve, search_family

log = get_logger(__name__)
MODEL_ARTIFACT = "model"
_TRUSTED_MODULES = ("sklearn.", "lib.", "numpy.", "scipy.", "builtins.")


@dataclass
class TrainResult:
    """Everything the 02_train notebook shows."""

    task: str
    primary: Metric
    secondary: list[Metric]
    families: list[FamilyResult]
    best: FamilyResult
    backend: str
    experiment_id: str
    parent_run_id: str
    model_name: str
    model_version: str
    tracking_uri: str
    learning_curve: pd.DataFrame | None

    def leaderboard(self) -> pd.DataFrame:
        """One row per family: CV mean ± std and validation score of every metric, timings."""
        rows = []
        for r in self.families:
            row: dict[str, Any] = {"family": r.family}
            for m in [self.primary, *self.secondary]:
                if m.name in r.cv:
                    mean, std = r.cv[m.name]
                    row[f"cv {m.name}"] = f"{mean:.4f} ± {std:.4f}"
                row[f"val {m.name}"] = round(r.validation[m.name], 4)
            row["fit s (per fold)"] = round(r.fit_seconds, 2)
            row["search s"] = round(r.search_seconds, 1)
            row["predict ms / 1k rows"] = round(r.predict_ms_per_1k, 1)
            row["candidates"] = r.candidates
            rows.append(row)
        table = pd.DataFrame(rows).set_index("family")
        key = f"val {self.primary.name}"
        return table.sort_values(key, ascending=not self.primary.higher_is_better)

    def configurations(self) -> pd.DataFrame:
        """Best parameters of each family, and the note on any substitution (e.g. for SVMs)."""
        rows = [
            {
                "family": r.family,
                "best parameters": ", ".join(f"{k}={v}" for k, v in r.best_params.items()) or "-",
                "rows searched": r.search_rows,
                "note": r.note or "as configured",
            }
            for r in self.families
        ]
        return pd.DataFrame(rows).set_index("family")

    def mlflow_summary(self) -> pd.DataFrame:
        """Where to find this run in MLflow: experiment, runs, model version and alias."""
        rows = [
            ("tracking URI", self.tracking_uri),
            ("experiment id", self.experiment_id),
            ("parent run", self.parent_run_id),
            *[(f"child run: {r.family}", str(r.run_id)) for r in self.families],
            ("registered model", f"{self.model_name} version {self.model_version}"),
            ("alias", f"{self.model_name}@{tracking.CHALLENGER} → version {self.model_version}"),
        ]
        return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")


def check_gate(result: TrainResult) -> None:
    """Raise unless every family scored, and the challenger alias points at the new version."""
    for r in result.families:
        value = r.validation[result.primary.name]
        if not np.isfinite(value):
            raise QuireError(
                f"train: family {r.family!r} scored {value} on validation "
                f"{result.primary.name}; check its grid in params (train.grids.{r.family})"
            )
    current = tracking.version_by_alias(result.model_name, tracking.CHALLENGER)
    if str(current.version) != result.model_version:
        raise ModelNotFoundError(
            f"{result.model_name}@{tracking.CHALLENGER} points at version {current.version}, "
            f"not the version {result.model_version} this run registered; another run may have "
            "trained at the same time: rerun the train stage"
        )


def _pick_best(results: list[FamilyResult], primary: Metric) -> FamilyResult:
    """Best on the validation split's primary metric; ties go to the better CV mean."""
    sign = 1.0 if primary.higher_is_better else -1.0
    return max(
        results,
        key=lambda r: (sign * r.validation[primary.name], sign * r.cv[primary.name][0]),
    )


def trusted_types(estimator: Any) -> list[str]:
    """Return the types skops must trust to load this pipeline (ours, scikit-learn, NumPy)."""
    import skops.io as sio

    found = sio.get_untrusted_types(data=sio.dumps(estimator))
    foreign = [t for t in found if not t.startswith(_TRUSTED_MODULES)]
    if foreign:
        raise TypeError(f"pipeline holds types from outside scikit-learn and lib: {foreign}")
    return list(found)


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    names = ["scikit-learn", "pandas", "numpy", "scipy", "skops", "pyarrow"]
    return [f"{n}=={version(n)}" for n in names]


def _log_family(result: FamilyResult, data: ProcessedData, tags: dict[str, str]) -> None:
    """Log one family's search to the active (child) run, with its fitted pipeline."""
    import matplotlib

    matplotlib.use("Agg")
    import mlflow
    from mlflow.models import infer_signature

    from lib.model.train_plots import importance_png

    X, _ = data.xy("train")
    mlflow.set_tags({**tags, "family": result.family, "note": result.note or "as configured"})
    mlflow.log_params(
        {"family": result.family, **{k: str(v) for k, v in result.best_params.items()}}
    )
    metrics: dict[str, float] = {}
    for name, (mean, std) in result.cv.items():
        metrics[f"cv_{name}_mean"], metrics[f"cv_{name}_std"] = mean, std
    metrics.update({f"val_{k}": v for k, v in result.validation.items()})
    metrics.update(
        fit_seconds_mean=result.fit_seconds,
        search_seconds=result.search_seconds,
        refit_seconds=result.refit_seconds,
        predict_ms_per_1k=result.predict_ms_per_1k,
    )
    mlflow.log_metrics({tracking.metric_key(k): v for k, v in metrics.items()})
    mlflow.log_dict(data.schema.model_dump(mode="json"), "schema.json")
    mlflow.log_dict(
        {str(k): float(v) for k, v in result.importances.items()}, "feature_importance.json"
    )
    _log_png(importance_png(result.importances, result.family), "feature_importance.png")
    example = X.head(5)
    info = mlflow.sklearn.log_model(
        result.estimator,
        name=MODEL_ARTIFACT,
        signature=infer_signature(example, result.estimator.predict(example)),
        input_example=example,
        pip_requirements=_pip_requirements(),
        skops_trusted_types=trusted_types(result.estimator),
    )
    result.model_uri = info.model_uri


def _log_budget(plan: BudgetPlan, rows: int) -> None:
    """Record on the family's run what the time budget decided (rows searched, estimate)."""
    import mlflow

    mlflow.log_params({"search_rows": plan.search_rows or rows})
    mlflow.set_tag("time_budget", plan.note or "within budget")
    if np.isfinite(plan.estimate_seconds):
        mlflow.log_metric("estimated_search_seconds", plan.estimate_seconds)


def _tags(params: Params, data: ProcessedData) -> dict[str, str]:
    manifest_hash = sha256_file(Layout.of(params).manifest)
    provenance = provenance_tags(
        dataset=params.project.name,
        task=data.schema.task,
        params_digest=params.digest(),
        manifest_sha256=manifest_hash,
        schema_sha256=data.schema.sha256(),
        git_commit=tracking.git_commit(),
    )
    return {**provenance, **tracking.owner_tags()}


def run_training(params: Params) -> TrainResult:
    """Run the whole train stage.

    Parameters
    ----------
    params
        Validated parameters (``project``, ``train`` and ``mlflow`` are used).

    Returns
    -------
    TrainResult
        Per-family results, the best one, the MLflow run ids and the registered version.
    """
    import mlflow

    data = load_processed(params)
    task = data.schema.task
    primary, secondary = metrics_for(
        task, params.train.primary_metric, params.train.secondary_metrics
    )
    train, validation = data.xy("train"), data.xy("validation")
    seed = params.project.seed
    specs = [
        model_spec(f, task, data.preprocessor, params.train, seed, len(train[0]))
        for f in params.train.families
    ]
    # Each family's search is estimated first and kept within train.family_time_budget.
    plans = [
        plan_family(spec, train, task, params.train, seed, data.preprocessor) for spec in specs
    ]
    experiment_id = tracking.setup(params)
    tracking.close_orphaned_runs(experiment_id)  # left RUNNING by a killed earlier run
    tags = _tags(params, data)
    results: list[FamilyResult] = []
    # Owner tags at creation: a run killed before its first log call must still be closable.
    with mlflow.start_run(
        run_name=f"train {params.project.name} {params.digest()}",
        tags={**tags, **stage_tags("train")},
    ) as parent:
        mlflow.log_params(
            {"families": ",".join(params.train.families), "search": params.train.search,
             "cv_folds": params.train.cv_folds, "primary_metric": primary.name,
             "backend": params.train.backend, "seed": seed, "train_rows": len(train[0]),
             "family_time_budget": params.train.family_time_budget}
        )  # fmt: skip
        mlflow.log_dict(data.manifest.as_json(), MANIFEST_ARTIFACT)
        # One BLAS/OpenMP thread in this process too (joblib gives its workers one each): the
        # searches already use every core, and a refit's OpenMP threads fighting them for busy
        # cores ran a gradient-boosting fit 20 times slower (measured on 2 shared cores).
        with compute_backend(params.train) as backend, threadpool_limits(limits=1):
            for plan in plans:
                with mlflow.start_run(run_name=plan.spec.family, nested=True, tags=tags) as child:
                    result = search_family(
                        plan.spec, train, validation, task, params.train, (primary, secondary),
                        seed, plan.search_rows,
                    )  # fmt: skip
                    result.run_id = child.info.run_id
                    _log_family(result, data, tags)
                    _log_budget(plan, len(train[0]))
                results.append(result)
            best = _pick_best(results, primary)
            lc = None
            if params.train.learning_curve:
                lc = curve(best.estimator, *train, task, params.train, primary, seed)
        version = _register(params, best, tags, primary.name)
        _log_parent(best, primary, lc, results)
    log.info("trained", best=best.family, model=tracking.model_name(params), version=version)
    return TrainResult(
        task=task,
        primary=primary,
        secondary=secondary,
        families=results,
        best=best,
        backend=backend,
        experiment_id=experiment_id,
        parent_run_id=parent.info.run_id,
        model_name=tracking.model_name(params),
        model_version=version,
        tracking_uri=tracking.tracking_uri(params),
        learning_curve=lc,
    )


def _register(params: Params, best: FamilyResult, tags: dict[str, str], primary: str) -> str:
    """Register the best family's model and point the ``challenger`` alias at it."""
    import mlflow

    name = tracking.model_name(params)
    assert best.model_uri is not None
    version = mlflow.register_model(
        best.model_uri,
        name,
        tags={
            **tags,
            **version_tags(family=best.family, run_id=str(best.run_id), primary_metric=primary),
        },
    )
    tracking.set_alias(name, tracking.CHALLENGER, version.version)
    return str(version.version)


def _log_parent(
    best: FamilyResult, primary: Metric, lc: pd.DataFrame | None, results: list[FamilyResult]
) -> None:
    import mlflow

    from lib.model.train_plots import cv_scores_png, learning_curve_png

    mlflow.set_tags(best_family_tags(family=best.family, run_id=str(best.run_id)))
    mlflow.log_metric(f"best_val_{primary.name}", best.validation[primary.name])
    _log_png(cv_scores_png(results, primary), "cv_scores.png")
    if lc is not None:
        mlflow.log_dict(json.loads(lc.to_json(orient="records")), "learning_curve.json")
        _log_png(learning_curve_png(lc, primary, best.family), "learning_curve.png")


def _log_png(fig: Any, name: str) -> None:
    """Log a matplotlib figure to the active MLflow run, then close it (pyplot keeps it open)."""
    import matplotlib.pyplot as plt
    import mlflow

    try:
        mlflow.log_figure(fig, name)
    finally:
        plt.close(fig)
