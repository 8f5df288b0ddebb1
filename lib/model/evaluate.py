"""The evaluate stage: score the challenger on the test split, gate promotion, save reference."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core import staging_area, tasks, tracking
from lib.core.atomic import sha256_file
from lib.core.contracts.tags import evaluation_tags, promotion_tags, read_version_tags
from lib.core.errors import DataValidationError, ModelNotFoundError, ParamsError
from lib.core.layout import Layout, reference_dir
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data.ingest import ProcessedData, load_processed
from lib.data.preflight import segment_columns
from lib.data.schema import Task
from lib.model.gate import Decision, RecentCheck, compare, decide, gate_metrics
from lib.model.leakage import (
    LeakageFinding,
    blocking,
    findings_table,
    leakage_findings,
    single_feature_scores,
)
from lib.model.metrics import Metric, metric, metrics_for
from lib.model.recent import RecentRows, recent_rows
from lib.model.reference import save_reference, scored_frame
from lib.model.scoring import (
    MetricFn,
    averaging_note,
    best_threshold,
    bootstrap,
    classification_metrics,
    predict_labels,
    regression_metrics,
    segment_table,
    threshold_table,
    worst_errors,
)
from lib.model.search import importances

log = get_logger(__name__)


@dataclass
class Outputs:
    """A model's outputs on the test split."""

    pred: np.ndarray
    proba: np.ndarray | None

    def scored(self) -> np.ndarray:
        """Return what the metrics take: probabilities (classification) or predictions."""
        return self.pred if self.proba is None else self.proba


@dataclass
class Champion:
    """The current champion scored on the same test split as the challenger."""

    version: str
    scores: dict[str, float]
    outputs: Outputs
    fn: MetricFn


@dataclass
class EvaluationResult:
    """Everything the 03_evaluate notebook shows."""

    task: Task
    classes: list[Any] | None
    primary: Metric
    model_name: str
    version: str
    scores: pd.DataFrame
    threshold: float | None
    thresholds: pd.DataFrame | None
    y: np.ndarray
    outputs: Outputs
    segments: pd.DataFrame
    worst: pd.DataFrame
    importances: pd.Series
    decision: Decision
    champion_scores: dict[str, float] | None
    reference: Path
    single_feature: pd.DataFrame | None = None
    leakage: list[LeakageFinding] | None = None
    leakage_acknowledged: tuple[str, ...] = ()
    averaging: str = ""
    recent: RecentRows | None = None  # the gate's recent rows (None: no champion to compare)

    def leakage_table(self) -> pd.DataFrame:
        """Suspected leaks (empty when none), with whether the user acknowledged the column."""
        return findings_table(self.leakage or [], self.leakage_acknowledged)

    def summary(self) -> str:
        """One paragraph: the model, its primary metric with interval, and the decision."""
        row = self.scores.loc[self.primary.name]
        return (
            f"`{self.model_name}` version {self.version}: test {self.primary.name} "
            f"**{row['value']:.4f}** ({row['ci_low']:.4f} - {row['ci_high']:.4f}). "
            f"{self.decision.reason}"
        )


def _metric_fn(task: Task, classes: list[Any] | None, threshold: float | None) -> MetricFn:
    if task == "regression":
        return regression_metrics
    assert classes is not None
    return functools.partial(classification_metrics, classes=classes, threshold=threshold)


def _outputs(
    model: Any, X: pd.DataFrame, task: Task, classes: list[Any] | None, threshold: float | None
) -> Outputs:
    if task == "regression":
        return Outputs(np.asarray(model.predict(X), dtype=float), None)
    proba = np.asarray(model.predict_proba(X))
    order = [list(model.classes_).index(c) for c in classes or []]
    proba = proba[:, order]  # the schema's class order, whatever the estimator's
    return Outputs(predict_labels(proba, classes or [], threshold), proba)


def _arrays(task: Task, y: np.ndarray, out: Outputs) -> list[np.ndarray]:
    return [y, out.pred] if task == "regression" else [y, out.proba]  # type: ignore[list-item]


def _threshold(params: Params, model: Any, data: ProcessedData) -> float | None:
    """Return the binary decision threshold: fixed in params, or the F1-best on validation."""
    classes = data.schema.classes
    if data.schema.task != "binary" or classes is None:
        return None
    if params.evaluate.threshold != "auto":
        return float(params.evaluate.threshold)
    Xv, yv = data.xy("validation")
    proba = _outputs(model, Xv, "binary", classes, None).proba
    assert proba is not None
    return best_threshold(yv.to_numpy(), proba[:, 1], classes[1])


def _check_same_data(version: Any, params: Params) -> None:
    trained_on = read_version_tags(version.tags).manifest_sha256
    manifest = Layout.of(params).manifest
    if trained_on and trained_on != sha256_file(manifest):
        raise DataValidationError(
            f"{manifest}: the processed data changed since version "
            f"{version.version} was trained, so its test split may overlap its training data; "
            "rerun the train stage (python run_all.py --from train)",
            path=manifest,
            check="manifest",
        )


def _champion(
    name: str,
    challenger: str,
    X: pd.DataFrame,
    y: np.ndarray,
    task: Task,
    classes: list[Any] | None,
) -> Champion | None:
    """Return the current champion scored on the same test split (None: no champion)."""
    import mlflow

    try:
        champion = tracking.version_by_alias(name, tracking.CHAMPION)
    except ModelNotFoundError:
        return None
    if str(champion.version) == challenger:
        return None
    model = mlflow.sklearn.load_model(f"models:/{name}/{champion.version}")
    threshold = read_version_tags(champion.tags).threshold
    out = _outputs(model, X, task, classes, threshold)
    fn = _metric_fn(task, classes, threshold)
    return Champion(str(champion.version), fn(*_arrays(task, y, out)), out, fn)


def _recent_check(
    params: Params,
    data: ProcessedData,
    name: str,
    primary: Metric,
    y: np.ndarray,
    challenger: tuple[MetricFn, Outputs],
    champion: Champion,
) -> tuple[RecentCheck, RecentRows]:
    """Compare challenger and champion on the mixed holdout and on the recent regime's rows."""
    ev, gate = params.evaluate, params.evaluate.gate
    margin = ev.min_delta if gate.margin is None else gate.margin
    tolerance = margin if gate.mixed_tolerance is None else gate.mixed_tolerance
    mine, theirs = challenger[1].scored(), champion.outputs.scored()
    boot = functools.partial(
        compare, resamples=ev.bootstrap, confidence=ev.confidence, seed=params.project.seed
    )
    mixed = boot(
        "mixed holdout (test split)", primary, y, (challenger[0], mine), (champion.fn, theirs)
    )
    rows = recent_rows(data.manifest, data.schema, data.splits["test"], gate, name)
    if rows.skipped:
        return RecentCheck(mixed, None, margin, tolerance, rows.skipped), rows
    i = rows.index
    recent = boot(rows.label, primary, y[i], (challenger[0], mine[i]), (champion.fn, theirs[i]))
    if not np.isfinite(recent.gain):
        why = f"{primary.name} is undefined on the {len(i)} recent rows (a single class?)"
        return RecentCheck(mixed, None, margin, tolerance, why), rows
    return RecentCheck(mixed, recent, margin, tolerance), rows


def _segments(
    params: Params, data: ProcessedData, fn: MetricFn, arrays: list[np.ndarray], keep: list[str]
) -> pd.DataFrame:
    columns = segment_columns(params.evaluate.segments, data.schema)
    known = data.schema.names("categorical") + data.schema.names("boolean")
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ParamsError(
            f"evaluate.segments: {unknown} are not categorical or boolean columns of "
            f"{params.project.name!r}; use some of {', '.join(known) or '(none)'}",
            key="evaluate.segments",
        )
    return segment_table(data.splits["test"], columns, fn, arrays, keep)


def run_evaluation(params: Params) -> EvaluationResult:
    """Run the whole evaluate stage.

    Parameters
    ----------
    params
        Validated parameters (``project``, ``evaluate`` and ``mlflow`` are used).

    Returns
    -------
    EvaluationResult
        Test metrics with confidence intervals, figures' inputs, segments, worst errors, the
        promotion decision and where the monitoring reference was saved.
    """
    import mlflow

    data = load_processed(params)
    tracking.setup(params)
    name = tracking.model_name(params)
    version = tracking.version_by_alias(name, tracking.CHALLENGER)
    _check_same_data(version, params)
    task, classes = data.schema.task, data.schema.classes
    primary = _primary(version.tags, task)
    model = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    threshold = _threshold(params, model, data)
    X, y_series = data.xy("test")
    y = y_series.to_numpy()
    out = _outputs(model, X, task, classes, threshold)
    fn = _metric_fn(task, classes, threshold)
    arrays = _arrays(task, y, out)
    point = fn(*arrays)
    low, high = bootstrap(
        fn, arrays, params.evaluate.bootstrap, params.evaluate.confidence, params.project.seed
    )
    scores = pd.DataFrame(
        {
            "value": point,
            "ci_low": pd.Series(low, dtype=float),
            "ci_high": pd.Series(high, dtype=float),
        }
    ).reindex(list(point))
    scores.index.name = "metric"
    keep = [primary.name, *([] if task == "regression" else ["accuracy"])]
    segments = _segments(params, data, fn, arrays, keep)  # before any alias moves
    ranked = importances(
        model, X, y_series, primary.scorer, params.project.seed, params.evaluate.importance_rows
    )
    champion = _champion(name, str(version.version), X, y, task, classes)
    single, leaks = _leakage(params, data, version, primary, ranked)
    check, rows = (
        _recent_check(params, data, name, primary, y, (fn, out), champion)
        if champion is not None
        else (None, None)
    )
    decision = decide(
        primary,
        (str(version.version), point),
        (champion.version, champion.scores) if champion is not None else None,
        params.evaluate.min_delta,
        tasks.floors(params.evaluate.floors, task, len(classes) if classes else None),
        blocking(leaks, params.evaluate.leakage_acknowledged, params.evaluate.block_on_leakage),
        check,
    )
    if decision.promote:
        tracking.set_alias(name, tracking.CHAMPION, str(version.version))
    result = EvaluationResult(
        task=task,
        classes=classes,
        primary=primary,
        model_name=name,
        version=str(version.version),
        scores=scores,
        threshold=threshold,
        thresholds=_threshold_table(y, out, classes, threshold),
        y=y,
        outputs=out,
        segments=segments,
        worst=worst_errors(
            data.splits["test"].drop(columns=data.schema.target),
            task,
            y,
            out.pred,
            out.proba,
            classes,
            params.evaluate.worst_errors,
        ),
        importances=ranked,
        decision=decision,
        champion_scores=champion.scores if champion else None,
        reference=_save_reference(params, data, name, str(version.version), out, threshold, ranked),
        single_feature=single,
        leakage=leaks,
        leakage_acknowledged=tuple(params.evaluate.leakage_acknowledged),
        averaging=averaging_note(y, classes) if classes is not None else "",
        recent=rows,
    )
    _record(result, version)
    log.info(
        "evaluated",
        model=name,
        version=result.version,
        promoted=decision.promote,
        basis=decision.basis,
        mixed_gain=decision.mixed.gain if decision.mixed else None,
        recent_gain=decision.recent.gain if decision.recent else None,
        reason=decision.reason,
    )
    return result


def _leakage(
    params: Params, data: ProcessedData, version: Any, primary: Metric, found: pd.Series
) -> tuple[pd.DataFrame, list[LeakageFinding]]:
    """Single-column scores on validation, and the suspected leaks (validation vs CV too)."""
    from mlflow import MlflowClient

    # Dates are left out: a trend that the date alone predicts (a time series) is the signal,
    # not a leak, and a time split already keeps the future out of training.
    dates = data.schema.names("datetime")
    (X, y), (Xv, yv) = data.xy("train"), data.xy("validation")
    single = single_feature_scores(
        (X.drop(columns=dates), y),
        (Xv.drop(columns=dates), yv),
        data.schema.task,
        data.schema.classes,
    )
    run_id = read_version_tags(version.tags).run_id or version.run_id
    logged = MlflowClient().get_run(run_id).data.metrics if run_id else {}
    keys = [f"val_{primary.name}", f"cv_{primary.name}_mean", f"cv_{primary.name}_std"]
    cv = None
    if all(k in logged for k in keys):
        val, mean, std = (logged[k] for k in keys)
        cv = (primary.name, val, mean, std, primary.higher_is_better)
    top = str(found.index[0]) if len(found) else None
    leaks = leakage_findings(single, params.evaluate.leakage_threshold, cv, top, len(Xv))
    for leak in leaks:
        event = "suspected_leakage" if leak.blocks else "leakage_not_judged"
        log.warning(event, column=leak.column, check=leak.check, finding=leak.message)
    return single, leaks


def _primary(tags: dict[str, str], task: Task) -> Metric:
    """Return the metric the challenger was selected on (recorded at registration)."""
    name = read_version_tags(tags).primary_metric
    return metric(name, task) if name else metrics_for(task, "auto", None)[0]


def _threshold_table(
    y: np.ndarray, out: Outputs, classes: list[Any] | None, threshold: float | None
) -> pd.DataFrame | None:
    if threshold is None or out.proba is None or not classes:
        return None
    return threshold_table(y, out.proba[:, 1], classes[1])


def _save_reference(
    params: Params,
    data: ProcessedData,
    name: str,
    version: str,
    out: Outputs,
    threshold: float | None,
    ranked: pd.Series,
) -> Path:
    frame, extra = scored_frame(data.splits["test"], data.schema, out.pred, out.proba)
    meta = {
        "model": name,
        "version": version,
        "threshold": threshold,
        "task": data.schema.task,
        # what monitor.alerts.key_features: auto watches (lib.monitoring.defaults)
        "importances": {str(k): float(v) for k, v in ranked.items()},
    }
    return save_reference(
        frame, data.schema, extra, reference_dir(params.project.data_dir, name, version), meta
    )


def _record(result: EvaluationResult, version: Any) -> None:
    """Log test metrics and the decision to the challenger's MLflow run; tag the version."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.entities import RunTag

    client = MlflowClient()
    now = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
    metrics = []
    for name, row in result.scores.iterrows():
        safe = tracking.metric_key(str(name).replace("[", "_").replace("]", ""))
        for column, suffix in (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
            if np.isfinite(row[column]):
                metrics.append(MlflowMetric(f"test_{safe}{suffix}", float(row[column]), now, 0))
    metrics += [MlflowMetric(k, v, now, 0) for k, v in gate_metrics(result.decision).items()]
    decided = promotion_tags(promoted=result.decision.promote, reason=result.decision.reason)
    tags = [RunTag(key, value) for key, value in decided.items()]
    tags.append(RunTag("gate_basis", result.decision.basis or "not promoted"))
    suspects = sorted({f.column for f in result.leakage or [] if f.blocks})
    tags.append(RunTag("leakage_columns", ",".join(suspects) or "none"))
    run_id = read_version_tags(version.tags).run_id or version.run_id
    client.log_batch(run_id, metrics=metrics, tags=tags)
    client.log_dict(
        run_id,
        {"decision": dataclasses.asdict(result.decision), "threshold": result.threshold},
        "evaluation/decision.json",
    )
    if result.single_feature is not None:
        client.log_dict(
            run_id,
            {
                "single_feature": json.loads(result.single_feature.to_json(orient="index")),
                "findings": [f.__dict__ for f in result.leakage or []],
                "acknowledged": list(result.leakage_acknowledged),
            },
            "evaluation/leakage.json",
        )
    for key, value in evaluation_tags(
        threshold=result.threshold,
        reference_dir=str(staging_area.published(result.reference)),
        metric=result.primary.name,
        score=float(result.scores["value"].astype(float)[result.primary.name]),
    ).items():
        tracking.set_version_tag(result.model_name, result.version, key, value)


def check_gate(result: EvaluationResult) -> None:
    """Raise unless the decision took effect and the reference is in place."""
    alias = (
        tracking.version_by_alias(result.model_name, tracking.CHAMPION)
        if result.decision.promote
        else None
    )
    if alias is not None and str(alias.version) != result.version:
        raise ModelNotFoundError(
            f"{result.model_name}@champion points at version {alias.version}, not the promoted "
            f"version {result.version}; rerun the evaluate stage"
        )
    if not (result.reference / "reference.parquet").exists():
        raise DataValidationError(
            f"{result.reference}: monitoring reference missing; rerun the evaluate stage"
        )


def scores_table(result: EvaluationResult) -> pd.DataFrame:
    """Return the test metrics with intervals, and the champion's scores beside them if any."""
    table = result.scores.round(4)
    if result.champion_scores is not None:
        table["champion"] = pd.Series(result.champion_scores).reindex(table.index).round(4)
    return table


def figures(result: EvaluationResult, seed: int) -> list[Any]:
    """Return the task's diagnostic figures, in report order."""
    from lib.model import eval_plots

    if result.task == "regression":
        return [eval_plots.regression_figure(result.y, result.outputs.pred, seed)]
    assert result.outputs.proba is not None and result.classes is not None
    proba, classes = result.outputs.proba, result.classes
    found = [
        eval_plots.confusion_figure(result.y, proba, classes, result.threshold),
        eval_plots.roc_pr_figure(result.y, proba, classes),
        eval_plots.calibration_figure(result.y, proba, classes),
    ]
    if result.thresholds is not None and result.threshold is not None:
        found.append(eval_plots.threshold_figure(result.thresholds, result.threshold))
    return found
