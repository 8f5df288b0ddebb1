"""The gate's recent-regime rule (issue #18 point 8) and how the recent rows are picked."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from lib.core.contracts.manifest import Manifest, SourceFile
from lib.core.errors import ParamsError
from lib.core.param_sections import GateParams
from lib.data.schema import ColumnSchema, Schema
from lib.model.gate import Comparison, RecentCheck, compare, decide
from lib.model.metrics import metric
from lib.model.recent import recent_rows
from lib.model.scoring import classification_metrics, regression_metrics

AUC = metric("roc_auc", "binary")
RMSE = metric("rmse", "regression")
FN = functools.partial(classification_metrics, classes=[0, 1])


def check(mixed_gain: float, recent: Comparison | None, skipped: str = "") -> RecentCheck:
    mixed = Comparison("mixed holdout", 800, 0.80 + mixed_gain, 0.80, mixed_gain, -0.02, 0.02)
    return RecentCheck(mixed, recent, margin=0.005, mixed_tolerance=0.005, skipped=skipped)


def recent(gain: float, lower: float, upper: float) -> Comparison:
    return Comparison("recent regime", 250, 0.75 + gain, 0.75, gain, lower, upper)


def gate(mixed_gain: float, rec: Comparison | None, skipped: str = ""):
    return decide(
        AUC,
        ("2", {"roc_auc": 0.80 + mixed_gain}),
        ("1", {"roc_auc": 0.80}),
        0.005,
        {"roc_auc": 0.6},
        recent=check(mixed_gain, rec, skipped),
    )


def test_better_on_the_recent_regime_is_promoted():
    d = gate(0.002, recent(0.045, 0.025, 0.07))
    assert d.promote and d.basis == "recent regime"
    assert d.reason.startswith(
        "Version 2 becomes champion on the recent regime: its roc_auc beats champion version 1's "
        "by 0.0450 (margin 0.005, interval above 0), and on the mixed holdout it is not worse "
        "beyond the tolerance 0.005"
    )
    assert "gain +0.0450 [+0.0250, +0.0700]" in d.reason and d.recent is not None


def test_a_tie_on_noise_is_refused():
    # the point gain clears the margin but the interval reaches below 0: noise
    d = gate(0.002, recent(0.01, -0.02, 0.04))
    assert not d.promote and d.basis == ""
    assert "the recent gain's interval reaches 0 (noise)" in d.reason
    assert d.reason.startswith("Champion version 1 stays: challenger version 2 is not promoted")


def test_a_clear_but_small_recent_gain_is_refused_below_the_margin():
    d = gate(0.0, recent(0.003, 0.001, 0.006))
    assert not d.promote and "its recent gain +0.0030 is below the margin 0.005" in d.reason


def test_worse_on_the_recent_regime_is_refused_even_when_better_on_the_mixed_holdout():
    d = gate(0.02, recent(-0.04, -0.06, -0.02))
    assert not d.promote
    assert "is worse on the recent regime (interval below 0)" in d.reason


def test_recent_winner_worse_on_the_mixed_holdout_is_refused():
    d = gate(-0.02, recent(0.05, 0.03, 0.07))
    assert not d.promote
    assert "worse on the mixed holdout by 0.0200, beyond the tolerance 0.005" in d.reason


def test_mixed_holdout_gain_still_promotes_and_says_which_comparison():
    d = gate(0.01, recent(0.0, -0.02, 0.02))
    assert d.promote and d.basis == "mixed holdout"
    assert "no recent comparison" not in d.reason and "recent regime" in d.reason


def test_no_recent_comparison_falls_back_to_the_mixed_holdout_and_says_why():
    d = gate(0.002, None, "the ingested data holds no labelled served rows (ingest.feedback)")
    assert not d.promote
    assert "no recent comparison: the ingested data holds no labelled served rows" in d.reason


def test_no_interval_never_promotes_on_the_recent_regime():
    d = gate(0.0, recent(0.05, float("nan"), float("nan")))
    assert not d.promote and "no interval (evaluate.bootstrap: 0)" in d.reason


def test_floors_still_refuse_a_recent_winner():
    d = decide(
        AUC,
        ("2", {"roc_auc": 0.55}),
        ("1", {"roc_auc": 0.55}),
        0.005,
        {"roc_auc": 0.6},
        recent=check(0.0, recent(0.05, 0.03, 0.07)),
    )
    assert not d.promote and "below the floor 0.6" in d.reason


def test_compare_bootstraps_the_paired_gain():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 400), 0, 1)
    noise = rng.uniform(0, 1, 400)
    proba = lambda p: np.column_stack([1 - p, p])  # noqa: E731
    c = compare("rows", AUC, y, (FN, proba(good)), (FN, proba(noise)), 100, 0.95, 0)
    assert c.challenger > 0.9 and 0.4 < c.champion < 0.6
    assert c.gain == pytest.approx(c.challenger - c.champion)
    assert 0 < c.lower < c.gain < c.upper
    same = compare("rows", AUC, y, (FN, proba(good)), (FN, proba(good)), 50, 0.95, 0)
    assert same.gain == 0 and same.lower == 0 and same.upper == 0  # paired: identical draws


def test_compare_turns_losses_so_positive_is_better():
    y = np.array([1.0, 2.0, 3.0, 4.0] * 25)
    c = compare(
        "rows", RMSE, y, (regression_metrics, y + 0.1), (regression_metrics, y + 1.0), 0, 0.95, 0
    )
    assert c.gain == pytest.approx(0.9) and np.isnan(c.lower)


# --- which rows are the recent regime ----------------------------------------------------------


def schema() -> Schema:
    return Schema(
        target="y",
        task="binary",
        classes=[0, 1],
        id_column="id",
        features=[ColumnSchema(name="x", kind="numeric"), ColumnSchema(name="d", kind="datetime")],
    )


def manifest_with(paths: list[str]) -> Manifest:
    return Manifest.model_construct(sources=[SourceFile(path=p, bytes=0, sha256="") for p in paths])


def served(tmp_path, n: int = 400):
    frame = pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "x": np.arange(n, dtype=float),
            "d": pd.date_range("2026-01-01", periods=n, freq="D")[::-1],  # newest first
            "y": np.arange(n) % 2,
        }
    )
    path = tmp_path / "feedback-m-abc.parquet"
    frame.to_parquet(path, index=False)
    return frame, path


def test_recent_rows_are_the_test_rows_of_the_last_window_in_serving_order(tmp_path):
    frame, path = served(tmp_path)
    old = pd.DataFrame({"id": ["r1", "r2"], "x": [0.5, 1.5], "d": pd.NaT, "y": [0, 1]})
    test = pd.concat([old, frame.iloc[::5]], ignore_index=True)  # every 5th served row held out
    gate = GateParams(window="4 windows", recent_windows=1, min_rows=10)
    found = recent_rows(manifest_with(["raw/x.csv", str(path)]), schema(), test, gate, "m")
    assert found.skipped == ""
    assert sorted(test["id"].iloc[found.index]) == sorted(f"c{i}" for i in range(300, 400, 5))
    assert "last 1 of 4 windows (rows 301-400) of 400 labelled served rows" in found.label


def test_by_default_the_recent_regime_is_every_served_test_row(tmp_path):
    frame, path = served(tmp_path)
    old = pd.DataFrame({"id": ["r1", "r2"], "x": [0.5, 1.5], "d": pd.NaT, "y": [0, 1]})
    test = pd.concat([old, frame.iloc[::5]], ignore_index=True)
    found = recent_rows(
        manifest_with(["raw/x.csv", str(path)]), schema(), test, GateParams(min_rows=10), "m"
    )
    assert found.skipped == ""
    assert sorted(test["id"].iloc[found.index]) == sorted(f"c{i}" for i in range(0, 400, 5))
    assert "all 4 windows (rows 1-100 to rows 301-400) of 400 labelled served rows" in found.label


def test_recent_rows_follow_the_time_column_when_given(tmp_path):
    frame, path = served(tmp_path)
    gate = GateParams(window="2 windows", time_column="d", recent_windows=1, min_rows=10)
    found = recent_rows(manifest_with([str(path)]), schema(), frame, gate, "m")
    # the dates run backwards: the newest half is the first 200 served rows
    assert set(frame["id"].iloc[found.index]) == {f"c{i}" for i in range(200)}
    by_month = recent_rows(
        manifest_with([str(path)]), schema(), frame, gate.model_copy(update={"window": "1M"}), "m"
    )
    assert frame["d"].iloc[by_month.index].dt.to_period("M").nunique() == 1
    assert frame["d"].iloc[by_month.index].max() == frame["d"].max()


def test_too_few_recent_rows_skip_the_comparison_and_say_how_to_fix(tmp_path):
    frame, path = served(tmp_path)
    gate = GateParams(recent_windows=1)
    found = recent_rows(manifest_with([str(path)]), schema(), frame.iloc[::20], gate, "m")
    assert found.skipped == (
        "the last 1 window(s) of the labelled served rows hold 5 test rows, fewer than "
        "evaluate.gate.min_rows 150; label more served rows or widen evaluate.gate.window / "
        "recent_windows"
    )
    every = recent_rows(manifest_with([str(path)]), schema(), frame.iloc[::20], GateParams(), "m")
    assert every.skipped == (
        "the labelled served rows hold 20 test rows, fewer than evaluate.gate.min_rows 150; "
        "label more served rows"
    )


def test_recent_windows_0_leaves_the_decision_to_the_mixed_holdout(tmp_path):
    frame, path = served(tmp_path)
    gate = GateParams().model_copy(update={"recent_windows": 0})
    found = recent_rows(manifest_with([str(path)]), schema(), frame, gate, "m")
    assert len(found.index) == 0 and found.skipped == "evaluate.gate.recent_windows is 0"


def test_no_served_rows_ingested_skips(tmp_path):
    found = recent_rows(
        manifest_with(["raw/churn.parquet"]), schema(), pd.DataFrame(), GateParams(), "m"
    )
    assert found.skipped.startswith("the ingested data holds no labelled served rows")


def test_a_period_window_without_a_time_column_names_the_param(tmp_path):
    frame, path = served(tmp_path)
    with pytest.raises(
        ParamsError, match=r"evaluate.gate.window: '1W' cuts by time; set evaluate.gate.time_column"
    ):
        recent_rows(manifest_with([str(path)]), schema(), frame, GateParams(window="1W"), "m")
    with pytest.raises(ParamsError, match=r"evaluate.gate.time_column: 'when' is not a column"):
        recent_rows(
            manifest_with([str(path)]), schema(), frame, GateParams(time_column="when"), "m"
        )
