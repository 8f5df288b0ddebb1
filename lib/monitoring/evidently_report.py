"""Evidently 0.7, for its own HTML report and as the reference implementation of drift verdicts.

Quire computes drift itself (``lib.data.drift``, much faster); Evidently's report is saved beside
Quire's so users can compare with the tool they know. Column types are given explicitly, from
Quire's kinds, so both tools judge the same columns the same way.

The report is optional: it is built after the monitor stage has saved its own results, and any
failure in it is a warning returned with the results (:mod:`lib.monitoring.optional`), never a
failed stage. One known failure is avoided up front: Evidently 0.7's classification preset raises
``KeyError`` when a class occurs in the labels of one side only (a current batch without churners),
so the quality section is then left out, with a warning naming the class.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lib.core.atomic import atomic_path
from lib.core.contracts.predlog import PREDICTION, PROBA_PREFIX
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.monitoring.optional import Outcome, optional

log = get_logger(__name__)

if TYPE_CHECKING:
    from lib.monitoring.result import MonitorResult


def _definition(
    kinds: Mapping[str, str],
    task: str | None = None,
    target: str | None = None,
    prediction: str | None = None,
    probas: list[str] | None = None,
    pos_label: Any = None,
) -> Any:
    from evidently import BinaryClassification, DataDefinition, MulticlassClassification, Regression

    extra: dict[str, Any] = {}
    if task == "binary" and target:
        extra["classification"] = [
            BinaryClassification(
                target=target,
                prediction_labels=prediction,
                prediction_probas=probas[-1] if probas else None,
                pos_label=pos_label,
            )
        ]
    elif task == "multiclass" and target:
        extra["classification"] = [
            MulticlassClassification(target=target, prediction_labels=prediction)
        ]
    elif task == "regression" and target:
        extra["regression"] = [Regression(target=target, prediction=prediction)]
    return DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "numeric"],
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"],
        **extra,
    )


def _prepare(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Return the frame with categorical columns as strings (as Quire compares them)."""
    from lib.data.drift_profile import as_categories

    out = frame.copy()
    for c, k in kinds.items():
        if k == "categorical" and c in out:
            out[c] = as_categories(out[c]).astype(object)
    return out


def drift_verdicts(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, str],
    drift_share: float = 0.5,
) -> dict[str, dict[str, Any]]:
    """Run Evidently's ``DataDriftPreset``; per column: ``{method, threshold, score, drifted}``."""
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = _definition(kinds)
    cols = list(kinds)
    ref = Dataset.from_pandas(_prepare(reference[cols], kinds), data_definition=definition)
    cur = Dataset.from_pandas(_prepare(current[cols], kinds), data_definition=definition)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(cur, ref)
    out: dict[str, dict[str, Any]] = {}
    for result in snapshot.dict()["metrics"]:
        config = result.get("config", {})
        column = config.get("column")
        if config.get("type", "").endswith("ValueDrift") and column in kinds:
            method, threshold = config.get("method"), config.get("threshold")
            score = float(result["value"])
            out[column] = {
                "method": method,
                "threshold": threshold,
                "score": score,
                "drifted": _drifted(method, score, threshold),
            }
    return out


def _drifted(method: str, score: float, threshold: float) -> bool:
    """Evidently's own rule per method (``legacy/calculations/stattests``)."""
    if "K-S" in method or method == "ks":
        return score <= threshold
    if any(k in method for k in ("chi", "Z-test", "z")) and "distance" not in method.lower():
        return score < threshold
    return score >= threshold


def save_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, str],
    path: Path,
    *,
    max_rows: int,
    seed: int,
    task: str | None = None,
    target: str | None = None,
    prediction: str | None = None,
    probas: list[str] | None = None,
    pos_label: Any = None,
    drift_share: float = 0.5,
) -> Path:
    """Save Evidently's data drift + data summary (+ quality, when labelled) report as HTML.

    Each side is sampled down to ``max_rows`` rows first: Evidently's report takes minutes and
    gigabytes on millions of rows. Errors are Evidently's own, raised as they come: callers that
    treat the report as optional wrap it (:func:`save_evidently_report` does).
    """
    from evidently import Dataset, Report
    from evidently.presets import (
        ClassificationPreset,
        DataDriftPreset,
        DataSummaryPreset,
        RegressionPreset,
    )

    labelled = target is not None and target in current and current[target].notna().any()
    cols = list(kinds)
    if labelled:
        cols += [c for c in (target, prediction, *(probas or [])) if c and c not in cols]
    sides = []
    for frame in (reference, current):
        part = frame[cols]
        if labelled:
            part = part[part[target].notna()]
        if len(part) > max_rows:
            part = part.sample(max_rows, random_state=seed)
        sides.append(_prepare(part, kinds))
    definition = _definition(
        kinds, task if labelled else None, target, prediction, probas, pos_label
    )
    presets: list[Any] = [DataDriftPreset(columns=list(kinds), drift_share=drift_share)]
    presets.append(DataSummaryPreset(columns=list(kinds)))
    if labelled:
        presets.append(RegressionPreset() if task == "regression" else ClassificationPreset())
    ref, cur = (Dataset.from_pandas(s, data_definition=definition) for s in sides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report(presets).run(cur, ref)
        with atomic_path(path) as tmp:
            snapshot.save_html(str(tmp))
    return path


def one_sided_classes(reference: pd.DataFrame, current: pd.DataFrame, target: str) -> list[str]:
    """Return the classes (as text) labelled on one side only, sorted.

    Evidently 0.7's classification metrics index a per-class table by every class either side
    has, and raise ``KeyError`` when the other side's table lacks it.
    """
    seen = [{_text(v) for v in frame[target].dropna().tolist()} for frame in (reference, current)]
    return sorted(seen[0] ^ seen[1])


def _text(label: Any) -> str:
    """Return a class as text, one spelling per class (the label 1 and the float 1.0 alike)."""
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)


def save_evidently_report(result: MonitorResult, params: Params) -> Outcome[Path]:
    """Save Evidently's own report on a monitor run beside Quire's; never raise for it.

    Call it after the stage's results are saved (``run_monitor`` saves them): whatever fails here
    leaves those results whole.

    Parameters
    ----------
    result
        The monitor run: its two sides, the model's outputs and the checked columns.
    params
        ``monitor.evidently_report`` and ``monitor.evidently_max_rows`` decide whether and on how
        many rows; the report goes to ``Layout.evidently_report``.

    Returns
    -------
    Outcome
        ``value``: the saved HTML (None when turned off, skipped or failed). ``warning``: why it
        was skipped, what failed (the error's type and message) or which part was left out;
        None when the full report was saved. The warning is also logged.
    """
    if not params.monitor.evidently_report:
        return Outcome()
    if not result.features.columns:  # e.g. a table whose only feature is its date
        reason = (
            "no column is checked for drift (monitor.columns, or only date features) and "
            "Evidently's drift preset needs at least one"
        )
        log.warning("evidently_report_skipped", reason=reason)
        return Outcome(warning=f"Evidently's report was skipped: {reason}")
    path = Layout.of(params).evidently_report
    built = optional("Evidently's report", _save_for_run, result, params, path)
    if built.value is None:
        path.unlink(missing_ok=True)  # no stale report of an earlier run beside these results
        return Outcome(warning=built.warning)
    saved, note = built.value
    if note:
        log.warning("evidently_report_partial", reason=note)
    return Outcome(value=saved, warning=note)


def _save_for_run(result: MonitorResult, params: Params, path: Path) -> tuple[Path, str | None]:
    """Save the report on the run's two sides; return it and a note on a section left out."""
    m = params.monitor
    schema, cur = result.schema, result.current
    outputs = result.drift.output_frame
    current = cur.frame.assign(**{name: outputs[name].to_numpy() for name in outputs.columns})
    labelled = cur.y is not None and schema.target in result.reference.frame.columns
    if labelled:
        current = current.assign(**{schema.target: cur.y})
    note = None
    one_sided = (
        one_sided_classes(result.reference.frame, current, schema.target)
        if labelled and schema.task != "regression"
        else []
    )
    if one_sided:
        labelled = False
        note = (
            f"Evidently's report has no classification quality section: class(es) {one_sided} "
            f"of {schema.target!r} are labelled on one side only (Evidently 0.7 fails on that); "
            "Quire's own quality figures cover it"
        )
    probas = [c for c in outputs.columns if c.startswith(PROBA_PREFIX)]
    saved = save_report(
        result.reference.frame,
        current,
        {c.column: c.kind for c in result.features.columns},
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
    return saved, note
