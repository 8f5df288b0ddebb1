"""Evidently's report and the monitor's figures are optional: a failure there is a warning.

The stage's own results are saved before; whatever Evidently or a plot raises must come back as
a warning naming the error, never as a failed stage.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from lib.core.params import Params, load_params
from lib.core.paths import PARAMS_DIR
from lib.data.drift_profile import build_profile
from lib.data.schema import ColumnSchema, Schema
from lib.model.reference import profile_kinds, scored_frame
from lib.monitoring import evidently_report, monitor_plots
from lib.monitoring.findings import find_drift
from lib.monitoring.inputs import Current, Reference
from lib.monitoring.optional import Outcome, optional
from tests.conftest import dirs_overrides

SCHEMA = Schema(
    features=[
        ColumnSchema(name="charges", kind="numeric"),
        ColumnSchema(name="plan", kind="categorical"),
    ],
    target="churned",
    task="binary",
    classes=[0, 1],
)
KINDS = {"charges": "numeric", "plan": "categorical"}


def _rows(n: int, labels: list[int], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "charges": rng.normal(60, 10, n),
            "plan": rng.choice(["basic", "pro"], n),
            "churned": rng.choice(labels, n),
        }
    )


def _outputs(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    p1 = 1 / (1 + np.exp(-(rows["charges"].to_numpy() - 60) / 10))
    return (p1 >= 0.5).astype(int), np.column_stack([1 - p1, p1])


def run_result(current_labels: list[int]) -> SimpleNamespace:
    """A monitor run's sides and drift findings (what the report reads), on 300 + 300 rows."""
    ref_rows = _rows(300, [0, 1], seed=1)
    ref_frame, _ = scored_frame(ref_rows, SCHEMA, *_outputs(ref_rows))
    reference = Reference(
        frame=ref_frame,
        profile=build_profile(ref_frame, profile_kinds(SCHEMA, ref_frame)),
        source="t",
    )
    cur_rows = _rows(300, current_labels, seed=2)
    pred, proba = _outputs(cur_rows)
    current = Current(
        frame=cur_rows.drop(columns="churned"),
        source="t",
        pred=pred,
        proba=proba,
        y=cur_rows["churned"].to_numpy(dtype=object),
    )
    params = load_params(overrides=["monitor.bootstrap=0"]).monitor
    drift = find_drift(reference, current, SCHEMA, KINDS, params)
    return SimpleNamespace(
        schema=SCHEMA, reference=reference, current=current, drift=drift, features=drift.features
    )


@pytest.fixture
def params(tmp_path: Path) -> Params:
    return load_params(
        [PARAMS_DIR / "ci.yaml"], [*dirs_overrides(tmp_path), "monitor.evidently_max_rows=400"]
    )


@pytest.mark.slow  # Evidently's import and report take seconds
def test_evidently_raising_becomes_a_warning_and_no_stale_report_is_left(params, monkeypatch):
    import evidently

    path = evidently_report.Layout.of(params).evidently_report
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html>the report of an earlier run</html>")

    def broken(self, *args, **kwargs):
        raise RuntimeError("evidently exploded on purpose")

    monkeypatch.setattr(evidently.Report, "run", broken)
    outcome = evidently_report.save_evidently_report(run_result([0, 1]), params)
    assert outcome.value is None and not outcome.ok
    assert outcome.warning is not None
    assert "Evidently's report was not built (RuntimeError: evidently exploded on purpose)" in (
        outcome.warning
    )
    assert "the other results are saved and unaffected" in outcome.warning
    assert not path.exists()  # an earlier run's report would pass for this run's


@pytest.mark.slow  # Evidently's import and report take seconds
def test_a_class_labelled_on_one_side_only_really_breaks_evidentlys_quality_preset(tmp_path):
    """The real failure: a current batch where class 1 never occurs (Evidently 0.7.x)."""
    result = run_result([0])
    current = result.current.frame.assign(
        prediction=result.current.pred, churned=result.current.y, proba_1=result.current.proba[:, 1]
    )
    outcome = optional(
        "Evidently's report",
        evidently_report.save_report,
        result.reference.frame,
        current,
        KINDS,
        tmp_path / "r.html",
        max_rows=400,
        seed=0,
        task="binary",
        target="churned",
        prediction="prediction",
        probas=["proba_1"],
        pos_label=1,
    )
    assert outcome.value is None and outcome.warning is not None
    # KeyError on the class, or ValueError "Cannot find pos_label '1' in labels [0]"
    assert re.search(r"not built \((KeyError: '1'|ValueError: .*pos_label '1')", outcome.warning)
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow  # Evidently's import and report take seconds
def test_the_one_sided_class_case_saves_the_drift_report_and_says_what_was_left_out(params):
    outcome = evidently_report.save_evidently_report(run_result([0]), params)
    assert outcome.value is not None and outcome.value.exists()
    assert "<html" in outcome.value.read_text()[:2000].lower()
    assert outcome.warning is not None
    assert "no classification quality section: class(es) ['1'] of 'churned'" in outcome.warning


@pytest.mark.slow  # Evidently's import and report take seconds
def test_both_classes_on_both_sides_give_the_full_report_without_warning(params):
    outcome = evidently_report.save_evidently_report(run_result([0, 1]), params)
    assert outcome.ok and outcome.value is not None and outcome.value.exists()


def test_turned_off_and_skipped_reports(params):
    off = params.model_copy(
        update={"monitor": params.monitor.model_copy(update={"evidently_report": False})}
    )
    assert evidently_report.save_evidently_report(run_result([0, 1]), off) == Outcome()
    no_columns = SimpleNamespace(features=SimpleNamespace(columns=[]))
    skipped = evidently_report.save_evidently_report(no_columns, params)  # type: ignore[arg-type]
    assert skipped.value is None and skipped.warning is not None
    assert skipped.warning.startswith("Evidently's report was skipped: no column is checked")


def test_one_sided_classes_compare_labels_whatever_their_spelling():
    ref = pd.DataFrame({"y": [0, 1, 1.0, None]})
    assert evidently_report.one_sided_classes(ref, pd.DataFrame({"y": [1.0, 0]}), "y") == []
    assert evidently_report.one_sided_classes(ref, pd.DataFrame({"y": [0.0, 0]}), "y") == ["1"]


def test_a_failing_figure_leaves_a_note_in_its_place_and_the_others_draw():
    broken = {"kind": "numeric", "reference": [0.5, 0.5], "current": [0.4, 0.6]}  # no edges
    note = monitor_plots.distribution_figure("charges", broken)
    assert isinstance(note, go.Figure) and note.layout.title.text == (
        "distribution figure - not drawn"
    )
    text = note.layout.annotations[0].text
    assert "distribution figure was not built (KeyError: 'edges')" in text
    fine = {"kind": "numeric", "edges": [0, 1, 2], "reference": [0.5, 0.5], "current": [0.4, 0.6]}
    drawn = monitor_plots.distribution_figure("charges", fine, drifted=True)
    assert drawn.layout.title.text == "charges - drifted" and len(drawn.data) == 2
    assert monitor_plots.drift_share_figure(None).layout.title.text.startswith("Share of drifted")


def test_optional_returns_the_value_and_lets_an_interrupt_through():
    assert optional("sum", sum, [1, 2]) == Outcome(value=3)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optional("interrupted", interrupted)
