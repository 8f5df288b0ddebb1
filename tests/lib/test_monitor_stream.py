"""The monitor stage in bounded memory (monitor.backend: stream | dask) against the memory one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lib.core.errors import ParamsError
from lib.core.params import load_params
from lib.monitoring import monitor
from lib.monitoring.result import MonitorResult
from tests.conftest import monitor_overrides
from tests.lib.test_monitor import params_for, write_log


@pytest.fixture(scope="module")
def labelled_log(monitored_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The production batch served over three days into the log; its labels in a CSV file."""
    labels = write_log(monitored_root, params_for(monitored_root))
    path = tmp_path_factory.mktemp("labels") / "labels.csv"
    labels.to_csv(path, index=False)
    return path


def _production(root: Path) -> Path:
    from lib.data.ingest import load_manifest

    return Path(load_manifest(params_for(root)).production_batch or "")


def _run(root: Path, *extra: str) -> MonitorResult:
    return monitor.run_monitor(params_for(root, *extra), webhook_url="")


def _same_results(got: MonitorResult, want: MonitorResult) -> None:
    pd.testing.assert_frame_equal(got.features.table(), want.features.table())
    pd.testing.assert_frame_equal(got.outputs.table(), want.outputs.table())
    for key, table in want.windows.tables().items():
        pd.testing.assert_frame_equal(got.windows.tables()[key], table, obj=key)
    assert got.quality.current_metrics == want.quality.current_metrics
    assert got.quality.concept == want.quality.concept
    assert [a.rule for a in got.alerting.alerts] == [a.rule for a in want.alerting.alerts]


def test_a_streamed_log_with_labels_equals_the_memory_backend(monitored_root, labelled_log):
    common = ("monitor.current=log", "monitor.since=2026-11-02", f"monitor.labels={labelled_log}")
    want = _run(monitored_root, *common)
    got = _run(monitored_root, *common, "monitor.backend=stream")
    assert len(want.current.frame) == 1000 and want.current.y is not None
    _same_results(got, want)
    summary = got.summary().current
    assert (summary.rows, summary.sampled_rows, summary.labelled) == (1000, 1000, 1000)
    assert want.summary().current.sampled_rows is None
    assert "every one of the 1,000 rows is used" in got.markdown()
    monitor.check_gate(got)


@pytest.mark.parametrize("window", ["null", "1D", "400 rows"])
def test_a_sample_smaller_than_the_log_keeps_the_drift_of_every_row(
    monitored_root, labelled_log, window
):
    common = ("monitor.current=log", f"monitor.window={window}")
    want = _run(monitored_root, *common)
    got = _run(monitored_root, *common, "monitor.backend=stream", "monitor.sample_rows=1000")
    assert (got.current.rows, len(got.current.frame), len(want.current.frame)) == (1500, 1000, 1500)
    # the whole-period verdicts are over all 1,500 rows, as the memory backend's
    pd.testing.assert_frame_equal(got.features.table(), want.features.table())
    pd.testing.assert_frame_equal(got.outputs.table(), want.outputs.table())
    # the sample: distinct logged rows, in time order, from every day
    sample = got.current.frame
    assert not sample.duplicated(["request_id", "row"]).any()
    assert sample["time"].is_monotonic_increasing
    assert set(sample["request_id"]) == {"req0", "req1", "req2"}
    assert got.current.versions == want.current.versions == [str(want.version)]
    assert (
        "exact over all 1,500 rows" in got.markdown() and "sample of 1,000 rows" in got.markdown()
    )
    # so is the drift per window: the windows of all rows, scored from their summaries
    pd.testing.assert_frame_equal(got.windows.drift, want.windows.drift)
    # the other per-window checks read the sample: its rows, in the same windows
    quality, expected = got.windows.quality, want.windows.quality
    current = quality[quality["period"] == "current"].drop_duplicates("window")
    whole = expected[expected["period"] == "current"].drop_duplicates("window")
    assert current["window"].tolist() == whole["window"].tolist()
    assert current["rows"].sum() == 1000 and whole["rows"].sum() == 1500
    history = pd.read_parquet(got.out_dir / "history.parquet")
    assert history.loc[history["run_id"] == got.run_id, "current_rows"].unique().tolist() == [1500]


def test_a_streamed_parquet_file_equals_the_memory_backend(monitored_root):
    want = _run(monitored_root)  # the generator's production batch (a Parquet file)
    got = _run(monitored_root, "monitor.backend=stream")
    assert got.current.source == want.current.source
    _same_results(got, want)


@pytest.mark.slow
def test_the_dask_backend_equals_the_stream_backend(monitored_root, labelled_log):
    extra = ("monitor.current=log", "monitor.sample_rows=1000", "monitor.dask_workers=2")
    want = _run(monitored_root, *extra, "monitor.backend=stream")
    got = _run(monitored_root, *extra, "monitor.backend=dask")
    pd.testing.assert_frame_equal(got.current.frame, want.current.frame)  # the same sample
    _same_results(got, want)


def test_a_csv_current_file_says_how_to_stream_it(monitored_root, tmp_path):
    csv = tmp_path / "current.csv"
    pd.read_parquet(_production(monitored_root)).head(50).to_csv(csv, index=False)
    with pytest.raises(ParamsError, match=r"current.csv: monitor.backend: stream reads Parquet"):
        _run(monitored_root, f"monitor.current={csv}", "monitor.backend=stream")


def test_window_rows_with_a_bounded_backend_names_both_keys(tmp_path):
    overrides = monitor_overrides(tmp_path, "monitor.backend=stream", "monitor.window_rows=500")
    with pytest.raises(ParamsError, match=r"monitor.window_rows \(500\) reads the last rows"):
        load_params(overrides=overrides)
