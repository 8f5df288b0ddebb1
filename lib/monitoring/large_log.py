"""``quire drift``: a prediction log (or Parquet files) of any size checked for drift per window.

The monitor stage reads its current data into memory; this command does not. It checks the
champion's prediction log - or the Parquet files and folders given - against the champion's
saved reference profile with :func:`lib.monitoring.stream.stream_drift`: the monitor stage's
columns (features as ``monitor.columns``/``exclude`` pick them, and the model's outputs), methods,
thresholds and ``drift_share``, per window (``--window-rows N``, or ``--period W`` of the log's
``time`` column) and over all rows, in memory that does not grow with the log. ``--backend dask``
summarises the files on a dask.distributed cluster (a local one of ``--workers`` processes, or
``--scheduler ADDRESS``).

The verdicts go to ``<data>/monitoring/<model>/stream/windows.parquet`` (replaced atomically; a
row per window and column, window ``all`` for every row) and a line per window is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from lib.core import startup
from lib.core.atomic import atomic_path
from lib.core.contracts import predlog
from lib.core.errors import DataValidationError, ParamsError
from lib.core.layout import Layout
from lib.core.params import Params
from lib.data.drift_profile import Profile
from lib.monitoring.stream import OVERALL, StreamResult, Windows, stream_drift

RESULTS = "stream"
TABLE = "windows.parquet"


def log_drift(
    params: Params,
    sources: Sequence[Path] = (),
    *,
    windows: Windows | None = None,
    backend: str = "stream",
    scheduler: str | None = None,
    workers: int = 2,
) -> tuple[pd.DataFrame, Path]:
    """Check ``sources`` (default: the champion's prediction log) against its reference.

    Returns
    -------
    tuple
        The verdicts (:func:`table`), and the file they were written to.
    """
    from lib.core import tracking
    from lib.model.reference import DRIFT_PROFILE, output_kinds
    from lib.monitoring.inputs import drift_kinds
    from lib.serving.loading import load_model

    given = parquet_files(sources) if sources else None  # a bad path fails before any load
    model = load_model(params, fast=False)
    name = str(model.name or tracking.model_name(params))
    layout = Layout.of(params, model=name)
    profile_path = layout.reference(str(model.version)) / DRIFT_PROFILE
    if not profile_path.exists():
        raise DataValidationError(
            f"{profile_path} is missing: rerun the evaluate stage for version {model.version}",
            path=profile_path,
        )
    profile = Profile.load(profile_path)
    paths = given or parquet_files([layout.predictions])
    columns = [c for c in drift_kinds(model.schema, params.monitor) if c in profile.columns]
    logged = set(pq.ParquetFile(paths[0]).schema_arrow.names)
    # the model's outputs when the files hold them (a prediction log does; a table may not)
    outputs = [c for c in output_kinds(model.schema) if c in profile.columns and c in logged]
    columns += outputs
    result = stream_drift(
        paths,
        profile,
        columns=columns,
        methods={k: v for k, v in params.monitor.methods.items() if k in columns},
        thresholds={k: v for k, v in params.monitor.thresholds.items() if k in columns},
        drift_share=params.monitor.drift_share,
        windows=windows,
        backend=backend,
        scheduler=scheduler,
        workers=workers,
    )
    out = layout.monitoring / RESULTS / TABLE
    out.parent.mkdir(parents=True, exist_ok=True)
    verdicts = table(result, outputs)
    with atomic_path(out) as tmp:
        verdicts.to_parquet(tmp, index=False)
    return verdicts, out


def parquet_files(sources: Sequence[Path]) -> list[Path]:
    """Return the Parquet files named and those in the folders named (a log's parts)."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = sorted(source.glob(predlog.PART_GLOB)) or sorted(source.glob("*.parquet"))
            if not found:
                raise DataValidationError(
                    f"{source}: no Parquet files in this folder; serve some requests first, or "
                    "name the files to check",
                    path=source,
                )
            files += found
        elif source.is_file():
            files.append(source)
        else:
            raise DataValidationError(f"{source}: no such file or folder", path=source)
    return files


def table(result: StreamResult, outputs: Sequence[str] = ()) -> pd.DataFrame:
    """Return a row per window and column: its verdict, role, and the window's dataset verdict.

    The dataset verdict counts the features only (``role`` ``feature``), as the monitor stage
    does; the model's outputs (``role`` ``output``) are judged column by column.
    """
    rows = []
    for window, report in [*result.windows.items(), (OVERALL, result.overall)]:
        features = [c for c in report.columns if c.column not in outputs]
        share = sum(c.drifted for c in features) / max(len(features), 1)
        dataset = bool(features) and share >= report.drift_share
        for col in report.columns:
            role = "output" if col.column in outputs else "feature"
            rows.append({"window": str(window), **asdict(col), "role": role,
                         "drifted_share": share, "dataset_drift": dataset})  # fmt: skip
    return pd.DataFrame(rows)


@startup.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lib.monitoring.large_log [FILE|FOLDER ...]``: see the module."""
    parser = argparse.ArgumentParser(prog="python -m lib.monitoring.large_log", description=__doc__)
    parser.add_argument("sources", nargs="*", type=Path, metavar="FILE|FOLDER")
    parser.add_argument("--window-rows", type=int, help="rows per window (default: --period W)")
    parser.add_argument("--period", default="W", help="a pandas period of the time column: D, W, M")
    parser.add_argument("--date-column", default=predlog.TIME, help="the time column [time]")
    parser.add_argument("--backend", choices=["stream", "dask"], default="stream")
    parser.add_argument("--scheduler", help="a dask.distributed scheduler address (dask)")
    parser.add_argument("--workers", type=int, default=2, help="local Dask workers [2]")
    startup.add_arguments(parser, "monitor.drift_share=0.3")
    args = parser.parse_args(argv)
    if args.window_rows is not None and args.window_rows < 1:
        raise ParamsError(
            f"--window-rows: expected a positive number of rows, got {args.window_rows}"
        )
    params = startup.start(startup.Layers.from_args(args), log_level="WARNING")
    windows = (
        Windows(rows=args.window_rows)
        if args.window_rows
        else Windows(date_column=args.date_column, period=args.period)
    )
    verdicts, out = log_drift(
        params, args.sources, windows=windows, backend=args.backend,
        scheduler=args.scheduler, workers=args.workers,
    )  # fmt: skip
    for window, rows in verdicts.groupby("window", sort=False):
        features = rows[rows["role"] == "feature"]
        drifted = features.loc[features["drifted"], "column"].tolist()
        outputs = rows.loc[(rows["role"] == "output") & rows["drifted"], "column"].tolist()
        verdict = "DRIFT" if rows["dataset_drift"].iat[0] else "ok"
        print(f"{window}: {rows['current_rows'].max()} rows, {len(drifted)}/{len(features)} "
              f"features drifted ({verdict}){': ' + ', '.join(drifted) if drifted else ''}"
              f"{'; outputs: ' + ', '.join(outputs) if outputs else ''}")  # fmt: skip
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
