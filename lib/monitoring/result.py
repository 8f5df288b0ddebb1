"""One monitor run's result: what it compared, what it found, what it fired, where it saved.

:meth:`MonitorResult.summary` is the ``summary.json`` contract; the other methods present the
result in the 04_monitor notebook.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lib.core.contracts.summary import (
    AlertRecord,
    CurrentSide,
    MonitorSummary,
    ReferenceSide,
    WebhookRecord,
)
from lib.data.drift import DriftReport
from lib.data.schema import Schema
from lib.monitoring.alerts import Alert, Delivery
from lib.monitoring.findings import (
    DriftFindings,
    QualityFindings,
    WindowFindings,
    distribution,
    labelled,
)
from lib.monitoring.inputs import Current, Reference
from lib.monitoring.optional import Outcome


@dataclass(frozen=True, kw_only=True)
class Alerting:
    """The alerts a run fired and what became of their webhook delivery (None: nothing sent)."""

    alerts: list[Alert]
    delivery: Delivery | None


@dataclass(frozen=True, kw_only=True)
class MonitorResult:
    """Everything one monitor run found, and where it saved it."""

    run_id: str
    time: pd.Timestamp
    model: str
    version: str | None
    out_dir: Path  # ``<data_dir>/monitoring/<model>/``
    schema: Schema
    reference: Reference
    current: Current
    drift: DriftFindings
    quality: QualityFindings
    windows: WindowFindings
    alerting: Alerting
    lineage: dict[str, Any] | None = None  # where the monitored version came from

    @property
    def features(self) -> DriftReport:
        """The per-feature drift verdicts."""
        return self.drift.features

    @property
    def outputs(self) -> DriftReport:
        """The drift verdicts on the model's outputs."""
        return self.drift.outputs

    @property
    def verdict(self) -> str:
        """One line: drift or not, and how many alerts."""
        state = "DRIFT" if self.features.dataset_drift else "no dataset drift"
        return (
            f"{state}: {self.features.drifted_share:.0%} of {len(self.features.columns)} columns "
            f"drifted; {len(self.alerting.alerts)} alert(s)"
        )

    def summary(self) -> MonitorSummary:
        """Return the run's headline facts (``summary.json``; the dashboard reads them)."""
        cur, delivery = self.current, self.alerting.delivery
        return MonitorSummary(
            run_id=self.run_id,
            time=self.time.isoformat(),
            model=self.model,
            version=self.version,
            task=self.schema.task,
            reference=ReferenceSide(source=self.reference.source, rows=len(self.reference.frame)),
            current=CurrentSide(
                source=cur.source,
                rows=cur.rows,
                labelled=int(labelled(cur.y).sum()),
                model_versions=cur.versions,
                sampled_rows=None if cur.total_rows is None else len(cur.frame),
            ),
            dataset_drift=self.features.dataset_drift,
            drifted_share=self.features.drifted_share,
            drift_share_threshold=self.features.drift_share,
            drifted=self.drift.drifted,
            prediction_drifted=self.drift.prediction_drifted,
            reference_metrics=self.quality.reference_metrics,
            current_metrics=self.quality.current_metrics,
            concept=self.quality.concept,
            missing_jumps=self.drift.missing_jumps,
            alerts=[AlertRecord(**a.__dict__) for a in self.alerting.alerts],
            webhook=None if delivery is None else WebhookRecord(**delivery.__dict__),
            verdict=self.verdict,
            lineage=self.lineage,
        )

    # --- presentation (04_monitor) ---

    def markdown(self) -> str:
        """Return the verdict as a short Markdown paragraph."""
        cur, quality = self.current, self.quality
        drifted = ", ".join(f"`{c}`" for c in self.drift.drifted)
        lines = [
            f"**{self.verdict}** - model `{self.model}` version {self.version}; "
            f"{cur.rows:,} current rows from `{cur.source}` against "
            f"{len(self.reference.frame):,} reference rows.",
            f"Drifted: {drifted or 'none'}.",
            f"Diagnosis over {len(self.windows.diagnosis.windows)} windows "
            f"(`{self.windows.spec}`): **{self.windows.diagnosis.kind}**.",
        ]
        if cur.total_rows is not None and len(cur.frame) < cur.rows:
            lines.append(
                f"Read in bounded memory: drift (whole period and per window) is exact over all "
                f"{cur.rows:,} rows; multivariate drift, data quality and performance use a "
                f"uniform sample of {len(cur.frame):,} rows (`monitor.sample_rows`)."
            )
        elif cur.total_rows is not None:
            lines.append(f"Read in bounded memory: every one of the {cur.rows:,} rows is used.")
        if quality.current_metrics and quality.reference_metrics:
            name = next(iter(quality.current_metrics))
            now, ref = quality.current_metrics[name], quality.reference_metrics[name]
            lines.append(
                f"{name}: {now['value']:.4f} now ({now['ci_low']:.4f} - {now['ci_high']:.4f}) "
                f"vs {ref['value']:.4f} on the reference."
            )
        for alert in self.alerting.alerts:
            lines.append(f"- **{alert.severity}** `{alert.rule}`: {alert.message}")
        return "\n\n".join(lines)

    @functools.cached_property
    def distributions(self) -> dict[str, Any]:
        """Return reference vs current shares of every checked column (saved and plotted)."""
        out = {}
        pairs = ((self.features, self.current.frame), (self.outputs, self.drift.output_frame))
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

        windows = self.quality.windows
        if windows is None or windows.empty:
            return None
        metric = str(windows["metric"].iloc[0])
        return windows_figure(windows, self.quality.reference_metrics, metric)

    def concept_markdown(self) -> str:
        """Return the diagnosis (concept drift, covariate shift or none) as Markdown."""
        c = self.quality.concept
        kind = (c.kind or "none").capitalize()
        if not c.checked:
            return f"**{kind}** (concept drift not checked): {c.reason}"
        state = f"**{kind}**" if c.kind != "none" else "No drift of inputs or concept"
        return (
            f"{state}: {c.reason} Error rate {c.current_error:.3f} now vs "
            f"{c.reference_error:.3f} on the reference."
        )

    def reference_note(self) -> str:
        """Return how the reference was chosen and its warnings (what it lacks), as Markdown."""
        ref = self.reference
        head = f"Reference: `{ref.kind}` (`{ref.source}`), {len(ref.frame):,} rows"
        if not ref.warnings:
            return f"{head}; no warnings."
        return f"{head}. **Note:**\n\n" + "\n".join(f"- {w}" for w in ref.warnings)

    @staticmethod
    def evidently_note(outcome: Outcome[Path]) -> str:
        """Return the outcome of Evidently's report, kept apart from the stage, as Markdown."""
        if outcome.value is not None:
            saved = f"Saved: `{outcome.value}`"
            return saved if outcome.ok else f"{saved}. **Note:** {outcome.warning}"
        if outcome.warning:
            return f"**Note:** Evidently's report was not saved: {outcome.warning}"
        return "Turned off (`monitor.evidently_report: false`)."

    def diagnosis_frame(self) -> pd.DataFrame:
        """Return the diagnosis of each current window: its kind and why."""
        table = self.windows.diagnosis.windows
        return table[["window", "start", "end", "kind", "reason"]]

    def top_moved(self, n: int) -> list[str]:
        """Return the ``n`` features that moved most where performance fell (else anywhere)."""
        return [f["column"] for f in self.windows.diagnosis.features[:n]]

    def alerts_frame(self) -> pd.DataFrame:
        """Return this run's alerts, and the webhook outcome, as a table."""
        alerts, delivery = self.alerting.alerts, self.alerting.delivery
        frame = pd.DataFrame(
            [{"rule": a.rule, "severity": a.severity, "message": a.message} for a in alerts],
            columns=["rule", "severity", "message"],
        )
        if delivery is not None:
            sent = "delivered" if delivery.delivered else f"not delivered ({delivery.error})"
            frame.attrs["webhook"] = sent
        return frame
