"""The four per-window checks run side by side: each table as the check gives it alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.core import frames
from lib.core.errors import DataValidationError
from lib.core.param_sections import MonitorParams
from lib.monitoring import multivariate, window_checks
from lib.monitoring.estimate import window_performance
from lib.monitoring.multivariate import multivariate_drift
from lib.monitoring.window_drift import window_drift
from lib.monitoring.window_quality import window_quality
from lib.monitoring.windows import WindowSpec, reference_windows, split

KINDS = {"a": "numeric", "b": "numeric", "plan": "categorical"}
PARAMS = MonitorParams(bootstrap=30, threads=2)
PERF = window_checks.Performance(task="binary", classes=[0, 1], target="y", seed=3)


def _side(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    a = rng.normal(shift, 1, n)
    b = rng.gamma(2, 2, n)
    proba = 1 / (1 + np.exp(-(a - 0.2 * b)))
    return pd.DataFrame(
        {
            "a": a,
            "b": b,
            "plan": rng.choice(["basic", "pro", "max"], n),
            "y": (rng.random(n) < proba).astype(int),
            "prediction": (proba >= 0.5).astype(int),
            "proba_0": 1 - proba,
            "proba_1": proba,
        }
    )


@pytest.fixture(scope="module")
def sides():
    rng = np.random.default_rng(0)
    ref, cur = _side(rng, 3000, 0.0), _side(rng, 2000, 0.0)
    cur.loc[1000:, "a"] += 1.0  # the second half shifted
    cur_w = split(len(cur), WindowSpec("rows", 400))
    return ref, cur, reference_windows(len(ref), WindowSpec("rows", 400), cur_w), cur_w


def test_memory_is_given_back_after_each_column(sides, monkeypatch):
    ref, cur, ref_w, cur_w = sides
    calls: list[int] = []
    monkeypatch.setattr(window_checks, "give_back", lambda: calls.append(1))
    window_checks.run_window_checks(ref, cur, KINDS, ref_w, cur_w, PARAMS, performance=PERF)
    assert len(calls) == len(KINDS) + 3  # the features, then prediction, proba_0 and proba_1


def test_a_categorical_column_is_coded_once_per_side_for_both_checks(sides, monkeypatch):
    ref, cur, ref_w, cur_w = sides
    coded: list[str] = []
    real = window_checks.category_codes

    def counted(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        coded.append(str(values.name))
        return real(values)

    # drift and quality would each code both sides themselves if the job did not share them
    for module in ("window_checks", "window_drift", "window_quality"):
        monkeypatch.setattr(f"lib.monitoring.{module}.category_codes", counted)
    window_checks.run_window_checks(ref, cur, {"a": "numeric", "plan": "categorical"}, ref_w,
                                    cur_w, PARAMS)  # fmt: skip
    # plan's two sides once each; the model's prediction, checked by drift only, by drift
    # (the tables are the checks' own: test_every_table_is_the_one_its_check_gives_alone)
    assert sorted(coded) == ["plan", "plan", "prediction", "prediction"]


def test_every_table_is_the_one_its_check_gives_alone(sides):
    ref, cur, ref_w, cur_w = sides
    got = window_checks.run_window_checks(ref, cur, KINDS, ref_w, cur_w, PARAMS, performance=PERF)
    alone = {
        "drift": window_drift(ref, cur, KINDS, ref_w, cur_w, PARAMS),
        "multivariate": multivariate_drift(ref, cur, KINDS, ref_w, cur_w, PARAMS.sigmas),
        "quality": window_quality(ref, cur, KINDS, ref_w, cur_w, PARAMS.sigmas),
    }
    alone["performance"] = window_performance(
        "binary", [0, 1], ref, cur, ref_w, cur_w, target="y", features=list(KINDS),
        sigmas=PARAMS.sigmas, resamples=30, seed=3,
    )  # fmt: skip
    for name, table in alone.items():
        pd.testing.assert_frame_equal(getattr(got, name), table, check_exact=True)
    assert got.drift.loc[got.drift["period"] == "current", "alert"].any()  # the shift is seen


def test_without_performance_its_table_is_empty(sides):
    ref, cur, ref_w, cur_w = sides
    got = window_checks.run_window_checks(ref, cur, KINDS, ref_w, cur_w, PARAMS)
    assert got.performance.empty and not got.drift.empty


def test_errors_are_raised_in_the_checks_order_whatever_finishes_first(sides, monkeypatch):
    ref, cur, ref_w, cur_w = sides

    def fails(message):
        def check(*args, **kwargs):
            raise DataValidationError(message)

        return check

    # the performance job starts first and fails at once; drift's error still comes first
    monkeypatch.setattr(window_checks, "window_performance", fails("performance broke"))
    monkeypatch.setattr(window_checks, "column_quality", fails("quality broke"))
    with pytest.raises(DataValidationError, match="quality broke"):
        window_checks.run_window_checks(ref, cur, KINDS, ref_w, cur_w, PARAMS, performance=PERF)
    monkeypatch.setattr(window_checks.DriftRun, "column", fails("drift broke"))
    with pytest.raises(DataValidationError, match="drift broke"):
        window_checks.run_window_checks(ref, cur, KINDS, ref_w, cur_w, PARAMS, performance=PERF)
    # a column missing from a side fails drift (checked first) before any column is read
    with pytest.raises(DataValidationError, match="current data: columns \\['a'\\] are missing"):
        window_checks.run_window_checks(
            ref, cur.drop(columns="a"), KINDS, ref_w, cur_w, PARAMS, performance=PERF
        )


def test_the_checks_import_neither_scipy_stats_nor_scikit_learn():
    """A classification's checks with distances (references of over 1,000 rows) need neither:
    they cost about 75 MiB of the monitor benchmark's peak (213 to 139 MiB of imports). Nor
    scipy.optimize (22 MiB; CBPE's isotonic regression is lib.monitoring.isotonic's) or
    scipy.special (11 MiB)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import pandas as pd
        sys.path.insert(0, ".")
        from tests.lib.test_window_checks import KINDS, PARAMS, PERF, _side
        from lib.monitoring import window_checks
        from lib.monitoring.windows import WindowSpec, reference_windows, split
        rng = np.random.default_rng(0)
        ref, cur = _side(rng, 3000, 0.0), _side(rng, 2000, 0.5)
        cur.loc[5, "a"] = 99.0  # an out-of-range value: the quality check's binomial test runs
        cur_w = split(len(cur), WindowSpec("rows", 400))
        ref_w = reference_windows(len(ref), WindowSpec("rows", 400), cur_w)
        tables = window_checks.run_window_checks(
            ref, cur, KINDS, ref_w, cur_w, PARAMS, performance=PERF
        )
        assert tables.drift["alert"].any() and not tables.performance.empty
        heavy = ("scipy.stats", "scipy.optimize", "scipy.special", "sklearn", "lib.data.preprocess")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _files(tmp_path, ref, cur, row_group):
    """Both sides as Parquet files of small row groups, read back a column at a time."""
    paths = tmp_path / "reference.parquet", tmp_path / "current.parquet"
    for frame, path in zip((ref, cur), paths, strict=True):
        frame.assign(plan=frame["plan"].astype("category")).to_parquet(
            path, index=False, row_group_size=row_group
        )
    return [frames.ParquetColumns(p) for p in paths]


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_checks_read_from_parquet_files_give_the_tables_of_frames(
    sides, tmp_path, monkeypatch, task
):
    ref, cur, ref_w, cur_w = sides
    if task == "regression":  # a model of a number: the prediction and truth are floats
        ref, cur = (s.assign(y=s["a"] * 2 + s["b"], prediction=s["a"] * 2.1 + s["b"]).drop(
            columns=["proba_0", "proba_1"]) for s in (ref, cur))  # fmt: skip
    perf = window_checks.Performance(
        task=task, classes=[0, 1] if task == "binary" else None, target="y", seed=3
    )
    # blocks and row groups that do not line up with the windows or each other
    monkeypatch.setattr(multivariate, "_BLOCK", 333)
    lazy_ref, lazy_cur = _files(tmp_path, ref, cur, row_group=700)
    assert len(lazy_cur) == len(cur) and list(lazy_cur.columns) == list(cur.columns)
    eager_ref, eager_cur = (s.assign(plan=s["plan"].astype("category")) for s in (ref, cur))
    want = window_checks.run_window_checks(
        eager_ref, eager_cur, KINDS, ref_w, cur_w, PARAMS, performance=perf
    )
    got = window_checks.run_window_checks(
        lazy_ref, lazy_cur, KINDS, ref_w, cur_w, PARAMS, performance=perf
    )
    for name in ("drift", "quality", "performance"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), check_exact=True)
    # the covariance is summed over other blocks (the file's row groups cut them): rounding
    pd.testing.assert_frame_equal(got.multivariate, want.multivariate, rtol=1e-12)
    assert not got.performance.empty and len(got.multivariate) == len(ref_w) + len(cur_w)
    assert got.drift.loc[got.drift["period"] == "current", "alert"].any()


def test_a_real_table_read_from_parquet_gives_the_tables_of_its_frames(tmp_path):
    from palmerpenguins import load_penguins

    # penguins as ingest writes text (categories), with its missing values; the file is sorted
    # by species, so the current half (the later rows) holds other species: drift to find
    table = load_penguins().drop(columns=["species"])
    table[["island", "sex"]] = table[["island", "sex"]].astype("category")
    ref, cur = table.iloc[:172].reset_index(drop=True), table.iloc[172:].reset_index(drop=True)
    kinds = {c: "numeric" for c in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm",
             "body_mass_g")} | {"island": "categorical", "sex": "categorical"}  # fmt: skip
    paths = tmp_path / "reference.parquet", tmp_path / "current.parquet"
    for frame, path in zip((ref, cur), paths, strict=True):
        frame.to_parquet(path, index=False, row_group_size=50)
    cur_w = split(len(cur), WindowSpec("rows", 40))
    ref_w = reference_windows(len(ref), WindowSpec("rows", 40), cur_w)
    want = window_checks.run_window_checks(ref, cur, kinds, ref_w, cur_w, PARAMS)
    lazy = [frames.ParquetColumns(p) for p in paths]
    got = window_checks.run_window_checks(*lazy, kinds, ref_w, cur_w, PARAMS)
    for name in ("drift", "quality"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name), check_exact=True)
    pd.testing.assert_frame_equal(got.multivariate, want.multivariate, rtol=1e-12)
    drifted = set(got.drift.loc[(got.drift["period"] == "current") & got.drift["alert"], "column"])
    assert "flipper_length_mm" in drifted  # Gentoo's long flippers
    assert (got.quality["missing"] > 0).any()  # the table's own missing values, counted
