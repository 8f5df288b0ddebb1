"""The monitor stage: reference vs current data, drift verdicts, model quality, alerts, history.

Inputs: the champion's monitoring reference (saved by the evaluate stage) or a file; current
data from the generator's production batch, the server's prediction log, or files
(:mod:`lib.monitoring.inputs`). What is found (:mod:`lib.monitoring.findings`) makes a
:class:`~lib.monitoring.result.MonitorResult`; it is saved to ``<data_dir>/monitoring/<model>/``:
``latest/`` (replaced atomically each run, read by the dashboard), ``history.parquet``
(per-feature results of every run) and ``alerts.jsonl``.

Both sides are also cut into windows (``monitor.window``): per-window drift, multivariate drift,
data quality and performance (estimated and realized) are saved in ``latest/`` as the four
tables :mod:`lib.monitoring.monitor_results` names, their diagnosis (covariate shift, concept
drift or none) goes into the summary's ``concept``, and the per-window alert rules name the
windows and columns that left their reference band.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from lib.core import tracking
from lib.core.atomic import replace_dir, staging_dir
from lib.core.contracts.summary import write_summary
from lib.core.errors import DataValidationError
from lib.core.layout import LATEST, SUMMARY, Layout
from lib.core.logs import get_logger
from lib.core.param_sections import MonitorParams
from lib.core.params import Params
from lib.monitoring import defaults
from lib.monitoring.alerts import Facts, dispatch, evaluate_rules, window_facts
from lib.monitoring.findings import (
    DriftFindings,
    QualityFindings,
    WindowFindings,
    find_drift,
    find_quality,
    find_windows,
    with_exact,
)
from lib.monitoring.inputs import Current, drift_kinds, load_current
from lib.monitoring.monitor_results import (
    ALERTS,
    DISTRIBUTIONS,
    FEATURES,
    HISTORY,
    OUTPUTS,
    WINDOW_TABLES,
    WINDOWS,
    append_history,
    load_latest,
)
from lib.monitoring.reference_rows import load_reference
from lib.monitoring.result import Alerting, MonitorResult

log = get_logger(__name__)


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
    from lib.serving.loading import load_model

    model = load_model(params, fast=False)
    schema = model.schema
    name = model.name or tracking.model_name(params)
    m = defaults.resolved(params, schema, name, model.version)
    kinds = drift_kinds(schema, m)  # checks the column and alert settings before any reading
    ref = load_reference(params, schema, name, model.version)
    if m.backend == "memory":
        cur = load_current(params, schema, name, model.predict)
        drift = find_drift(ref, cur, schema, kinds, m)
        per_window = find_windows(ref, cur, schema, kinds, m, seed=params.project.seed)
    else:  # bounded memory: exact drift (whole period and per window), a sample for the rest
        from lib.monitoring.stream_current import stream_current

        streamed = stream_current(params, schema, name, model.predict, ref, kinds)
        cur = streamed.current
        drift = with_exact(
            find_drift(ref, cur, schema, kinds, m), streamed.features, streamed.outputs
        )
        per_window = find_windows(
            ref, cur, schema, kinds, m, seed=params.project.seed, cur_cut=streamed.cut,
            exact=streamed.exact,
        )  # fmt: skip
    for warning in per_window.warnings:  # shown with the reference's own warnings
        log.warning("small_reference_windows", reference=ref.source, warning=warning)
    ref = replace(ref, warnings=[*ref.warnings, *per_window.warnings])
    quality = find_quality(
        ref, cur, schema, m, seed=params.project.seed, diagnosis=per_window.diagnosis
    )
    run_id, now = uuid.uuid4().hex[:12], pd.Timestamp.now(tz="UTC")
    out = Layout.of(params, model=name).monitoring
    context = {"run_id": run_id, "time": now.isoformat(), "model": name, "version": model.version}
    alerting = _alert(drift, quality, per_window, m, context, out / ALERTS, webhook_url)
    result = MonitorResult(
        run_id=run_id,
        time=now,
        model=name,
        version=model.version,
        out_dir=out,
        schema=schema,
        reference=ref,
        current=cur,
        drift=drift,
        quality=quality,
        windows=per_window,
        alerting=alerting,
        lineage=None if model.version is None else known_lineage(name, str(model.version)),
    )
    save_results(result, m.history_runs)
    log.info(
        "monitored",
        model=name,
        version=model.version,
        current=cur.source,
        rows=cur.rows,
        sampled=len(cur.frame) if cur.total_rows is not None else None,
        drifted_share=round(drift.features.drifted_share, 3),
        dataset_drift=drift.features.dataset_drift,
        diagnosis=per_window.diagnosis.kind,
        windows=len(per_window.diagnosis.windows),
        alerts=len(alerting.alerts),
    )
    return result


def _alert(
    drift: DriftFindings,
    quality: QualityFindings,
    per_window: WindowFindings,
    params: MonitorParams,
    context: dict[str, Any],
    history: Path,
    webhook_url: str | None,
) -> Alerting:
    """Fire the alert rules on the findings; log, save (``history``) and send what fires."""
    facts = Facts(
        dataset_drift=drift.features.dataset_drift,
        drifted_share=drift.features.drifted_share,
        drifted=drift.drifted,
        prediction_drifted=drift.prediction_drifted,
        missing_jumps=drift.missing_jumps,
        metric_drops=quality.drops,
        concept_drift=quality.concept.drift,
        concept_reason=quality.concept.reason,
        windows=window_facts(**per_window.tables(), chance=per_window.diagnosis.chance),
    )
    alerts = evaluate_rules(facts, params.alerts)
    delivery = dispatch(alerts, params.alerts, history, context, webhook_url)
    return Alerting(alerts=alerts, delivery=delivery)


# --- saved results ---------------------------------------------------------------------------


def save_results(result: MonitorResult, history_runs: int) -> None:
    """Replace ``latest/`` atomically and append this run to the history table."""
    out = result.out_dir
    stage = staging_dir(out / LATEST)
    write_summary(stage / SUMMARY, result.summary())
    result.features.table().to_parquet(stage / FEATURES, index=False)
    result.outputs.table().to_parquet(stage / OUTPUTS, index=False)
    if result.quality.windows is not None:
        result.quality.windows.to_parquet(stage / WINDOWS, index=False)
    for key, table in result.windows.tables().items():
        table.to_parquet(stage / WINDOW_TABLES[key], index=False)
    text = json.dumps(result.distributions, indent=1, default=str, allow_nan=True) + "\n"
    (stage / DISTRIBUTIONS).write_text(text, encoding="utf-8")
    replace_dir(stage, out / LATEST)
    append_history(out / HISTORY, _history_rows(result), history_runs)


def _history_rows(result: MonitorResult) -> pd.DataFrame:
    """One row per checked feature, with the run's facts (``history.parquet``)."""
    rows = result.features.table().assign(
        run_id=result.run_id,
        time=result.time,
        version=result.version,
        current=result.current.source,
        current_rows=result.current.rows,
        drifted_share=result.features.drifted_share,
        dataset_drift=result.features.dataset_drift,
        alerts=len(result.alerting.alerts),
        diagnosis=result.windows.diagnosis.kind,
        alerting_windows=len(result.windows.diagnosis.kind_windows),
        current_from=_time_bound(result.current, "min"),
        current_to=_time_bound(result.current, "max"),
    )
    for bound in ("current_from", "current_to"):  # typed even when NaT: history concatenates
        rows[bound] = pd.to_datetime(rows[bound], utc=True)
    return rows


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
    if saved["summary"].run_id != result.run_id:
        raise DataValidationError(
            f"{result.out_dir / LATEST}: holds run {saved['summary'].run_id}, not this run "
            f"{result.run_id}; another monitor run replaced it - rerun the stage",
            path=result.out_dir / LATEST,
            check="gate",
        )
    if len(saved["features"]) != len(result.features.columns):
        raise DataValidationError(
            f"{result.out_dir / LATEST / FEATURES}: {len(saved['features'])} columns saved, "
            f"{len(result.features.columns)} checked; rerun the monitor stage",
            path=result.out_dir / LATEST / FEATURES,
            check="gate",
        )
