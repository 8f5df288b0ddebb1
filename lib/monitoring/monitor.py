"""The monitor stage: reference vs current data, drift verdicts, model quality, alerts, history.

Inputs: the champion's monitoring reference (saved by the evaluate stage) or a file; current
data from the generator's production batch, the server's prediction log, or files. Outputs go
to ``<data_dir>/monitoring/<model>/``: ``latest/`` (replaced atomically each run, read by the
dashboard), ``history.parquet`` (per-feature results of every run) and ``alerts.jsonl``.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core import tracking
from lib.core.atomic import replace_dir, staging_dir
from lib.core.errors import DataValidationError, ParamsError
from lib.core.layout import LATEST, SUMMARY, Layout, feedback_dir, reference_dir
from lib.core.logs import get_logger
from lib.core.params import MonitorParams, Params
from lib.core.paths import resolve
from lib.data import drift
from lib.data.ingest import load_manifest
from lib.data.readers import expand_source, read_table
from lib.data.schema import Schema, coerce_column, to_categorical
from lib.model.reference import (
    DRIFT_PROFILE,
    PREDICTION,
    REFERENCE,
    drift_kind,
    output_kinds,
    proba_column,
    profile_kinds,
)
from lib.monitoring import performance
from lib.monitoring.monitor_results import (
    ALERTS,
    DISTRIBUTIONS,
    FEATURES,
    HISTORY,
    OUTPUTS,
    WINDOWS,
    append_history,
    load_latest,
)

log = get_logger(__name__)
LOG_KEY = ["request_id", "row"]


@dataclass(frozen=True)
class Reference:
    """The reference side: its rows (with predictions and, when known, the target) and profile."""

    frame: pd.DataFrame
    profile: drift.Profile
    source: str
    version: str | None = None


@dataclass(frozen=True)
class Current:
    """The current side: feature rows, their model outputs, truth when known, and times."""

    frame: pd.DataFrame
    source: str
    pred: np.ndarray
    proba: np.ndarray | None
    y: np.ndarray | None = None
    times: pd.Series | None = None
    versions: list[str] = field(default_factory=list)


def drift_kinds(schema: Schema, params: MonitorParams) -> dict[str, Any]:
    """Columns to check for drift and how: numeric, or categorical (categories and booleans).

    Date columns are left out unless named in ``monitor.columns`` (a later batch always has later
    dates; Evidently leaves them out too).
    """
    names = schema.names()
    wanted = params.columns if params.columns is not None else names
    unknown = sorted(set(wanted) - set(names)) + sorted(set(params.exclude) - set(names))
    if unknown:
        raise ParamsError(
            f"monitor.columns/exclude: {unknown} are not model features; the features are {names}",
            key="monitor.columns",
        )
    kinds: dict[str, Any] = {}
    for name in wanted:
        kind = schema.column(name).kind
        if name in params.exclude or (kind == "datetime" and params.columns is None):
            continue
        kinds[name] = drift_kind(kind)
    unknown_keys = sorted(set(params.alerts.key_features) - set(names))
    if unknown_keys:
        raise ParamsError(
            f"monitor.alerts.key_features: {unknown_keys} are not model features; the features "
            f"are {names}",
            key="monitor.alerts.key_features",
        )
    return kinds


# --- inputs ---------------------------------------------------------------------------------


def _conform(frame: pd.DataFrame, schema: Schema, path: Path) -> pd.DataFrame:
    """Parse the schema's columns of ``frame`` into their canonical dtypes."""
    missing = [n for n in schema.names() if n not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{path}: columns {missing} are missing; current data must hold every model feature "
            f"({schema.names()})",
            path=path,
            column=missing[0],
            check="missing_columns",
        )
    out = frame.copy()
    for col in schema.features:
        out[col.name] = coerce_column(frame[col.name], col.kind, col.name, path)
    if schema.target in frame.columns:
        out[schema.target] = align_target(frame[schema.target], schema, path)
    return out


def align_target(values: pd.Series, schema: Schema, path: Path) -> pd.Series:
    """Truth values as the model's classes (``1``, ``1.0`` and ``"1"`` are class ``1``)."""
    if schema.task == "regression" or not schema.classes:
        return coerce_column(values, "numeric", schema.target, path)
    lookup = {str(c): c for c in schema.classes}
    text = to_categorical(values)
    unknown = text.notna() & ~text.isin(list(lookup))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataValidationError(
            f"{path}: target {schema.target!r} row {row + 1:,}: {text.iloc[row]!r} is not one of "
            f"the model's classes {schema.classes}; fix the label or retrain with that class",
            path=path,
            row=row + 1,
            column=schema.target,
            check="unknown_class",
        )
    return text.map(lookup).astype(object)


def load_reference(params: Params, schema: Schema, model: str, version: str | None) -> Reference:
    """Return the reference: the champion's saved one, or a file named in ``monitor.reference``."""
    spec = params.monitor.reference
    if spec == "champion":
        if version is None:
            raise DataValidationError(
                f"model {model!r} has no champion; run the evaluate stage, or set "
                "monitor.reference to a CSV/Parquet file"
            )
        folder = reference_dir(params.project.data_dir, model, version)
        path = folder / REFERENCE
        if not path.exists():
            raise DataValidationError(
                f"{path}: no monitoring reference for {model} version {version}; rerun the "
                "evaluate stage (python run_all.py --from evaluate)",
                path=path,
                check="missing_file",
            )
        frame = pd.read_parquet(path)
        if (folder / DRIFT_PROFILE).exists():
            profile = drift.Profile.load(folder / DRIFT_PROFILE)
        else:  # saved before drift profiles existed: build it once, keep it
            profile = drift.build_profile(frame, profile_kinds(schema, frame))
            profile.save(folder / DRIFT_PROFILE)
        return Reference(frame, profile, str(folder), version)
    frames = [
        _conform(read_table(p, params.data.csv), schema, p)
        for p in expand_source(str(resolve(spec)))
    ]
    frame = pd.concat(frames, ignore_index=True)
    return Reference(frame, drift.build_profile(frame, profile_kinds(schema, frame)), spec, version)


def _read_log(params: Params, model: str) -> pd.DataFrame:
    folder = Layout.of(params, model=model).predictions
    files = sorted(folder.glob("part-*.parquet"))
    if not files:
        raise DataValidationError(
            f"{folder}: the prediction log is empty; serve some predictions first (make serve), "
            "or set monitor.current to a CSV/Parquet file",
            path=folder,
            check="missing_file",
        )
    import pyarrow.dataset as ds

    m = params.monitor
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    where = None
    for bound, op in ((m.since, ">="), (m.until, "<")):
        if bound is None:
            continue
        stamp = pd.Timestamp(bound)
        stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
        test = ds.field("time") >= stamp if op == ">=" else ds.field("time") < stamp
        where = test if where is None else where & test
    frame = dataset.to_table(filter=where).to_pandas()
    if frame.empty:
        raise DataValidationError(
            f"{folder}: no logged predictions between monitor.since={m.since} and "
            f"monitor.until={m.until}; widen the time range",
            path=folder,
            check="empty_window",
        )
    ordered: pd.DataFrame = frame.sort_values(
        ["time", "request_id", "row"], kind="stable", ignore_index=True
    )
    return ordered


def _current_frame(params: Params, schema: Schema, model: str) -> tuple[pd.DataFrame, str]:
    spec = params.monitor.current
    if spec == "log":
        return _read_log(params, model), "log"
    if spec == "production":
        batch = load_manifest(params).get("production_batch")
        if not batch:
            raise ParamsError(
                "monitor.current is 'production' but the ingest stage wrote no production batch "
                "(data.source must be 'generator' with generator.production.rows > 0); set "
                "monitor.current to 'log' or to a CSV/Parquet file",
                key="monitor.current",
            )
        paths = [Path(batch)]
    elif spec == "penguins":  # as data.source: the table the palmerpenguins package ships
        from lib.data.readers import penguins_csv

        paths = [penguins_csv()]
    else:
        paths = expand_source(str(resolve(spec)))
    frames = [_conform(read_table(p, params.data.csv), schema, p) for p in paths]
    return pd.concat(frames, ignore_index=True), ";".join(str(p) for p in paths)


def _labels(
    params: Params, schema: Schema, frame: pd.DataFrame, from_log: bool
) -> np.ndarray | None:
    """Ground truth aligned with ``frame`` (NaN/None where unknown), or None."""
    m = params.monitor
    if m.labels is None:
        if schema.target in frame.columns:
            return frame[schema.target].to_numpy()
        return None
    key = m.label_key or (LOG_KEY if from_log else [params.data.id_column or ""])
    if m.labels == "feedback":  # posted to the server or dropped in its folder (lib.data.feedback)
        from lib.data import feedback

        path = feedback_dir(params.project.data_dir, tracking.model_name(params))
        labels = feedback.load_labels(path, schema.target, params.data.csv)
        key = LOG_KEY
    else:
        path = resolve(m.labels)
        labels = read_table(path, params.data.csv)
    missing = [c for c in [*key, schema.target] if c not in labels.columns]
    if missing or any(k not in frame.columns for k in key):
        where = path if missing else "current data"
        raise DataValidationError(
            f"{where}: label join columns {key} (and {schema.target!r} in the labels) are "
            f"required; missing {missing or [k for k in key if k not in frame.columns]}; set "
            "monitor.label_key",
            path=path,
            column=(missing or key)[0],
            check="label_key",
        )
    labels = labels.drop_duplicates(subset=key, keep="last")
    labels[schema.target] = align_target(labels[schema.target], schema, path)
    joined = frame[key].merge(labels[[*key, schema.target]], on=key, how="left")
    return joined[schema.target].to_numpy()


def load_current(params: Params, schema: Schema, model: str, scorer: Any) -> Current:
    """Return the current rows with model outputs, labels and times, windowed as configured."""
    frame, source = _current_frame(params, schema, model)
    if params.monitor.window_rows is not None:
        frame = frame.tail(params.monitor.window_rows).reset_index(drop=True)
    from_log = source == "log"
    y = _labels(params, schema, frame, from_log)
    if from_log:
        pred = frame[PREDICTION].to_numpy()
        names = [proba_column(c) for c in schema.classes or []]
        proba = frame[names].to_numpy(float) if names and all(n in frame for n in names) else None
        versions = sorted(frame["model_version"].astype(str).unique().tolist())
        times = frame["time"]
    else:
        pred, proba = scorer(frame[schema.names()])
        versions, times = [], None  # files: row order is time order
    return Current(frame, source, np.asarray(pred), proba, y, times, versions)


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorResult:
    """Everything one monitor run found, and where it saved it."""

    run_id: str
    time: pd.Timestamp
    model: str
    version: str | None
    schema: Schema
    reference: Reference
    current: Current
    features: drift.DriftReport
    outputs: drift.DriftReport
    output_frame: pd.DataFrame
    reference_metrics: dict[str, dict[str, float]] | None
    current_metrics: dict[str, dict[str, float]] | None
    windows: pd.DataFrame | None
    concept: dict[str, Any]
    missing_jumps: dict[str, float]
    alerts: list[Any]
    delivery: Any
    out_dir: Path
    lineage: dict[str, Any] | None = None  # where the monitored version came from

    @property
    def verdict(self) -> str:
        """One line: drift or not, and how many alerts."""
        state = "DRIFT" if self.features.dataset_drift else "no dataset drift"
        return (
            f"{state}: {self.features.drifted_share:.0%} of {len(self.features.columns)} columns "
            f"drifted; {len(self.alerts)} alert(s)"
        )

    def summary(self) -> dict[str, Any]:
        """Return the run's headline facts (``summary.json``; the dashboard reads them)."""
        return {
            "run_id": self.run_id,
            "time": self.time.isoformat(),
            "model": self.model,
            "version": self.version,
            "task": self.schema.task,
            "reference": {"source": self.reference.source, "rows": len(self.reference.frame)},
            "current": {
                "source": self.current.source,
                "rows": len(self.current.frame),
                "labelled": int(_labelled(self.current.y).sum())
                if self.current.y is not None
                else 0,
                "model_versions": self.current.versions,
            },
            "dataset_drift": self.features.dataset_drift,
            "drifted_share": self.features.drifted_share,
            "drift_share_threshold": self.features.drift_share,
            "drifted": [c.column for c in self.features.columns if c.drifted],
            "prediction_drifted": [c.column for c in self.outputs.columns if c.drifted],
            "reference_metrics": self.reference_metrics,
            "current_metrics": self.current_metrics,
            "concept": self.concept,
            "missing_jumps": self.missing_jumps,
            "alerts": [a.__dict__ for a in self.alerts],
            "webhook": None if self.delivery is None else self.delivery.__dict__,
            "verdict": self.verdict,
            "lineage": self.lineage,
        }

    # --- presentation (04_monitor) ---

    def markdown(self) -> str:
        """Return the verdict as a short Markdown paragraph."""
        cur = self.current
        drifted = ", ".join(f"`{c.column}`" for c in self.features.columns if c.drifted)
        lines = [
            f"**{self.verdict}** - model `{self.model}` version {self.version}; "
            f"{len(cur.frame):,} current rows from `{cur.source}` against "
            f"{len(self.reference.frame):,} reference rows.",
            f"Drifted: {drifted or 'none'}.",
        ]
        if self.current_metrics and self.reference_metrics:
            name = next(iter(self.current_metrics))
            now, ref = self.current_metrics[name], self.reference_metrics[name]
            lines.append(
                f"{name}: {now['value']:.4f} now ({now['ci_low']:.4f} - {now['ci_high']:.4f}) "
                f"vs {ref['value']:.4f} on the reference."
            )
        for alert in self.alerts:
            lines.append(f"- **{alert.severity}** `{alert.rule}`: {alert.message}")
        return "\n\n".join(lines)

    @functools.cached_property
    def distributions(self) -> dict[str, Any]:
        """Return reference vs current shares of every checked column (saved and plotted)."""
        out = {}
        pairs = ((self.features, self.current.frame), (self.outputs, self.output_frame))
        for report, frame in pairs:
            for c in report.columns:
                profile = self.reference.profile.columns[c.column]
                out[c.column] = distribution(profile, frame[c.column])
        return out

    def figure(self, column: str) -> Any:
        """Return the reference vs current distribution figure of one checked column."""
        from lib.monitoring.monitor_plots import distribution_figure

        verdicts = {c.column: c for c in [*self.features.columns, *self.outputs.columns]}
        return distribution_figure(column, self.distributions[column], verdicts[column].drifted)

    def top_figures(self, n: int) -> list[Any]:
        """Return the distribution figures of the ``n`` most drifted features."""
        ranked = self.features.table()
        return [self.figure(c) for c in ranked["column"].head(n)] if not ranked.empty else []

    def output_figures(self) -> list[Any]:
        """Return the distribution figures of the model's outputs."""
        return [self.figure(c.column) for c in self.outputs.columns]

    def performance_figure(self) -> Any:
        """Return the primary metric per window against the reference, or None without labels."""
        from lib.monitoring.monitor_plots import windows_figure

        if self.windows is None or self.windows.empty:
            return None
        metric = str(self.windows["metric"].iloc[0])
        return windows_figure(self.windows, self.reference_metrics, metric)

    def concept_markdown(self) -> str:
        """Return the concept-drift finding as Markdown."""
        c = self.concept
        if not c.get("checked"):
            return f"Not checked: {c.get('reason')}."
        state = "**Concept drift**" if c["drift"] else "No concept drift"
        return (
            f"{state}: {c['reason']}. Error rate {c['current_error']:.3f} now vs "
            f"{c['reference_error']:.3f} on the reference."
        )

    def alerts_frame(self) -> pd.DataFrame:
        """Return this run's alerts, and the webhook outcome, as a table."""
        frame = pd.DataFrame(
            [{"rule": a.rule, "severity": a.severity, "message": a.message} for a in self.alerts],
            columns=["rule", "severity", "message"],
        )
        if self.delivery is not None:
            sent = (
                "delivered" if self.delivery.delivered else f"not delivered ({self.delivery.error})"
            )
            frame.attrs["webhook"] = sent
        return frame


def _labelled(y: np.ndarray | None) -> np.ndarray:
    if y is None:
        return np.zeros(0, dtype=bool)
    return np.asarray(pd.notna(pd.Series(y, dtype=object)))


def _scored(
    y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, schema: Schema
) -> performance.Scored:
    known = _labelled(y)
    truth = y[known]
    # object arrays confuse scikit-learn's target typing: give the labels their own dtype
    truth = truth.astype(float) if schema.task == "regression" else np.asarray(truth.tolist())
    return performance.Scored(
        truth, pred[known], None if proba is None else proba[known], schema.classes
    )


def _reference_scored(ref: Reference, schema: Schema) -> performance.Scored | None:
    frame = ref.frame
    if schema.target not in frame.columns or PREDICTION not in frame.columns:
        return None
    names = [proba_column(c) for c in schema.classes or []]
    proba = frame[names].to_numpy(float) if names and all(n in frame for n in names) else None
    y = align_target(frame[schema.target], schema, Path(ref.source)).to_numpy()
    return _scored(y, frame[PREDICTION].to_numpy(), proba, schema)


def _concept(
    task: str,
    ref: performance.Scored | None,
    cur: performance.Scored | None,
    times: pd.Series | None,
    dataset_drift: bool,
    drops: list[dict[str, Any]],
) -> dict[str, Any]:
    """Judge concept drift: a Page-Hinkley alarm on errors, or quality falling, inputs stable."""
    if ref is None or cur is None or len(cur.y) == 0:
        return {"checked": False, "drift": False, "reason": "no labels for the current rows"}
    ref_err = performance.errors(task, ref)  # type: ignore[arg-type]
    cur_err = performance.errors(task, cur)  # type: ignore[arg-type]
    alarm = performance.PageHinkley().detect(cur_err, float(ref_err.mean()), float(ref_err.std()))
    at = None
    if alarm is not None and times is not None:
        at = str(times.iloc[alarm])
    reasons = []
    if alarm is not None:
        reasons.append(f"the error rate rose (Page-Hinkley alarm at labelled row {alarm + 1:,})")
    if drops and not dataset_drift:
        reasons.append("quality fell while the inputs show no dataset drift")
    return {
        "checked": True,
        "drift": bool(reasons),
        "reason": "; ".join(reasons) or "error stream stable",
        "alarm_row": alarm,
        "alarm_time": at,
        "reference_error": float(ref_err.mean()),
        "current_error": float(cur_err.mean()),
    }


def run_monitor(params: Params, *, webhook_url: str | None = None) -> MonitorResult:
    """Run the monitor stage: load both sides, check drift and quality, alert, save.

    Parameters
    ----------
    params
        Validated parameters (``monitor`` section and the shared ones).
    webhook_url
        Overrides ``QUIRE_ALERT_WEBHOOK_URL`` (tests).

    Returns
    -------
    MonitorResult
    """
    from lib.model.provenance import known_lineage
    from lib.monitoring.alerts import Facts, dispatch, evaluate_rules
    from lib.serving.loading import load_model

    m = params.monitor
    model = load_model(params, fast=False)
    schema = model.schema
    name = model.name or tracking.model_name(params)
    kinds = drift_kinds(schema, m)  # checks the column and alert settings before any reading
    ref = load_reference(params, schema, name, model.version)
    cur = load_current(params, schema, name, model.predict)
    features = drift.check_drift(
        ref.profile,
        cur.frame,
        columns=list(kinds),
        methods=m.methods,
        thresholds=m.thresholds,
        drift_share=m.drift_share,
    )
    outputs, output_frame = _output_drift(ref, cur, schema)
    missing = {
        c.column: c.current_missing - c.reference_missing
        for c in features.columns
        if c.current_missing - c.reference_missing > 0
    }
    ref_scored = _reference_scored(ref, schema)
    cur_scored = _scored(cur.y, cur.pred, cur.proba, schema) if cur.y is not None else None
    ref_metrics = cur_metrics = None
    windows = None
    labelled_times = None if cur.times is None or cur.y is None else cur.times[_labelled(cur.y)]
    if labelled_times is not None:
        labelled_times = labelled_times.reset_index(drop=True)
    drops: list[dict[str, Any]] = []
    seed = params.project.seed
    task: Any = schema.task
    if ref_scored is not None and cur_scored is not None and len(cur_scored.y):
        ref_metrics = performance.metric_table(task, ref_scored, m.bootstrap, m.confidence, seed)
        cur_metrics = performance.metric_table(task, cur_scored, m.bootstrap, m.confidence, seed)
        windows = performance.windows(
            task, cur_scored, labelled_times, m.windows, m.bootstrap, m.confidence, seed
        )
        drops = performance.metric_drops(ref_metrics, cur_metrics, m.alerts.metric_drop, task)
    concept = _concept(task, ref_scored, cur_scored, labelled_times, features.dataset_drift, drops)
    drifted = [c.column for c in features.columns if c.drifted]
    facts = Facts(
        dataset_drift=features.dataset_drift,
        drifted_share=features.drifted_share,
        drifted=drifted,
        prediction_drifted=[c.column for c in outputs.columns if c.drifted],
        missing_jumps=missing,
        metric_drops=drops,
        concept_drift=bool(concept["drift"]),
        concept_reason=str(concept["reason"]),
    )
    alerts = evaluate_rules(facts, m.alerts)
    run_id = uuid.uuid4().hex[:12]
    now = pd.Timestamp.now(tz="UTC")
    out = Layout.of(params, model=name).monitoring
    context = {"run_id": run_id, "time": now.isoformat(), "model": name, "version": model.version}
    delivery = dispatch(alerts, m.alerts, out / ALERTS, context, webhook_url)
    result = MonitorResult(
        run_id, now, name, model.version, schema, ref, cur, features, outputs, output_frame,
        ref_metrics, cur_metrics, windows, concept, missing, alerts, delivery, out,
        None if model.version is None else known_lineage(name, str(model.version)),
    )  # fmt: skip
    save_results(result, m.history_runs)
    log.info(
        "monitored",
        model=name,
        version=model.version,
        current=cur.source,
        rows=len(cur.frame),
        drifted_share=round(features.drifted_share, 3),
        dataset_drift=features.dataset_drift,
        alerts=len(alerts),
    )
    return result


def _output_drift(
    ref: Reference, cur: Current, schema: Schema
) -> tuple[drift.DriftReport, pd.DataFrame]:
    """Drift of the model's outputs: predicted classes (or values) and class probabilities."""
    frame = pd.DataFrame({PREDICTION: cur.pred})
    if cur.proba is not None and schema.classes:
        for j, label in enumerate(schema.classes):
            frame[proba_column(label)] = cur.proba[:, j]
    names = [n for n in output_kinds(schema) if n in ref.profile.columns and n in frame.columns]
    return drift.check_drift(ref.profile, frame, columns=names), frame


# --- saved results ---------------------------------------------------------------------------

_BINS = 30
_TOP = 25


def distribution(col: drift.ColumnProfile, values: pd.Series) -> dict[str, Any]:
    """Return reference and current shares over common bins or categories, for plotting."""
    if col.kind == "categorical":
        cur = drift.category_counts(values)
        n_cur = max(sum(cur.values()), 1)
        ref = col.counts or {}
        order = sorted(
            {*ref, *cur}, key=lambda k: -(ref.get(k, 0) / col.count + cur.get(k, 0) / n_cur)
        )
        shown, rest = order[:_TOP], order[_TOP:]
        ref_s = [ref.get(k, 0) / max(col.count, 1) for k in shown]
        cur_s = [cur.get(k, 0) / n_cur for k in shown]
        if rest:
            shown = [*shown, "(other)"]
            ref_s.append(sum(ref.get(k, 0) for k in rest) / max(col.count, 1))
            cur_s.append(sum(cur.get(k, 0) for k in rest) / n_cur)
        return {"kind": "categorical", "labels": shown, "reference": ref_s, "current": cur_s}
    present = drift.numeric_values(values)
    present = present[np.isfinite(present)]
    lo = min(col.values[0], present.min()) if len(present) else col.values[0]
    hi = max(col.values[-1], present.max()) if len(present) else col.values[-1]
    edges = np.linspace(lo, hi, _BINS + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    ref_h = np.histogram(col.values, edges)[0] / max(len(col.values), 1)
    cur_h = np.histogram(present, edges)[0] / max(len(present), 1)
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "reference": ref_h.tolist(),
        "current": cur_h.tolist(),
    }


def _json(value: Any) -> str:
    return json.dumps(value, indent=1, default=str, allow_nan=True) + "\n"


def save_results(result: MonitorResult, history_runs: int) -> None:
    """Replace ``latest/`` atomically and append this run to the history table."""
    out = result.out_dir
    stage = staging_dir(out / LATEST)
    (stage / SUMMARY).write_text(_json(result.summary()), encoding="utf-8")
    result.features.table().to_parquet(stage / FEATURES, index=False)
    result.outputs.table().to_parquet(stage / OUTPUTS, index=False)
    if result.windows is not None:
        result.windows.to_parquet(stage / WINDOWS, index=False)
    (stage / DISTRIBUTIONS).write_text(_json(result.distributions), encoding="utf-8")
    replace_dir(stage, out / LATEST)
    rows = result.features.table().assign(
        run_id=result.run_id,
        time=result.time,
        version=result.version,
        current=result.current.source,
        current_rows=len(result.current.frame),
        drifted_share=result.features.drifted_share,
        dataset_drift=result.features.dataset_drift,
        alerts=len(result.alerts),
        current_from=_time_bound(result.current, "min"),
        current_to=_time_bound(result.current, "max"),
    )
    for bound in ("current_from", "current_to"):  # typed even when NaT: history concatenates
        rows[bound] = pd.to_datetime(rows[bound], utc=True)
    append_history(out / HISTORY, rows, history_runs)


def _time_bound(current: Current, which: str) -> pd.Timestamp | None:
    """First or last serving time of prediction-log rows (NaT for files), for lineage."""
    times = current.times
    if current.source != "log" or times is None or times.empty:
        return None
    stamp = pd.Timestamp(times.min() if which == "min" else times.max())
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def check_gate(result: MonitorResult) -> None:
    """Raise unless the run's results are saved and read back whole."""
    saved = load_latest(result.out_dir)
    if saved["summary"].get("run_id") != result.run_id:
        raise DataValidationError(
            f"{result.out_dir / 'latest'}: holds run {saved['summary'].get('run_id')}, not this "
            f"run {result.run_id}; another monitor run replaced it - rerun the stage",
            path=result.out_dir / LATEST,
            check="gate",
        )
    if len(saved["features"]) != len(result.features.columns):
        raise DataValidationError(
            f"{result.out_dir / 'latest' / FEATURES}: {len(saved['features'])} columns saved, "
            f"{len(result.features.columns)} checked; rerun the monitor stage",
            path=result.out_dir / LATEST / FEATURES,
            check="gate",
        )


def save_evidently_report(result: MonitorResult, params: Params) -> Path | None:
    """Save Evidently's own report for this run beside the Quire report (None: turned off)."""
    from lib.monitoring.evidently_report import save_report

    m = params.monitor
    if not m.evidently_report:
        return None
    schema_kinds = {c.column: c.kind for c in result.features.columns}
    ref = result.reference.frame
    cur = result.current.frame.copy()
    for name in result.output_frame.columns:
        cur[name] = result.output_frame[name].to_numpy()
    schema = result.schema
    labelled = result.current.y is not None and schema.target in ref.columns
    if labelled:
        cur[schema.target] = result.current.y
    probas = [c for c in result.output_frame.columns if c.startswith("proba_")]
    path = Layout.of(params).evidently_report
    return save_report(
        ref,
        cur,
        schema_kinds,
        path,
        max_rows=m.evidently_max_rows,
        seed=params.project.seed,
        task=schema.task,
        target=schema.target if labelled else None,
        prediction=PREDICTION,
        probas=probas[-1:] if schema.task == "binary" else probas,
        pos_label=schema.classes[-1] if schema.classes else None,
        drift_share=m.drift_share,
    )
