"""Lineage of a served prediction: model version, MLflow runs, training data, params, monitoring.

``python -m lib.loop.lineage REQUEST_ID`` (or the server's ``GET /lineage/{request_id}``) answers,
for one logged request: the rows it served and their predictions; the model version that made
them, its MLflow run (and the parent training run), the params digest, git commit, and the data
manifest it was trained on; and the monitor runs whose current window held those rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib.core import startup
from lib.core.contracts import predlog
from lib.core.layout import Layout, predictions_dir
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data.feedback import LogIndex, log_index
from lib.model.provenance import model_lineage

log = get_logger(__name__)


MAX_REQUEST_ID_CHARS = 128  # the server's ids are 32 hex digits; a longer one is no request id


def find_rows(folder: Path, request_id: str, index: LogIndex | None = None) -> pd.DataFrame:
    """Return the logged rows of one request (empty when it is not in the log).

    Only the part files the log's index names are read (:func:`lib.data.feedback.log_index`,
    kept for the process, unless ``index`` is given), filtered by the request id.
    """
    index = index if index is not None else log_index(folder)
    tables = []
    for path in index.files(predlog.REQUEST_ID, request_id):
        try:
            tables.append(pq.read_table(path, filters=[(predlog.REQUEST_ID, "==", request_id)]))
        except FileNotFoundError:  # removed since it was indexed
            continue
    if not tables:
        return pd.DataFrame()
    frame: pd.DataFrame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    return frame if frame.empty else frame.sort_values(predlog.ROW, ignore_index=True)


def monitoring_runs(folder: Path, version: str, when: pd.Timestamp) -> list[dict[str, Any]]:
    """Return the monitor runs on the prediction log whose current window held time ``when``."""
    from lib.monitoring.monitor_results import HISTORY

    path = folder / HISTORY
    if not path.exists():
        return []
    history = pd.read_parquet(path)
    if "current_from" not in history.columns:  # saved before windows were recorded
        return []
    runs = history[
        (history["version"].astype(str) == str(version))
        & (history["current"] == "log")
        & (pd.to_datetime(history["current_from"], utc=True) <= when)
        & (pd.to_datetime(history["current_to"], utc=True) >= when)
    ]
    out = []
    for run_id, rows in runs.groupby("run_id", sort=False):
        first = rows.iloc[0]
        out.append(
            {
                "run_id": str(run_id),
                "time": str(first["time"]),
                "drifted_share": float(first["drifted_share"]),
                "dataset_drift": bool(first["dataset_drift"]),
                "alerts": int(first["alerts"]),
                "drifted": sorted(rows.loc[rows["drifted"].astype(bool), "column"].astype(str)),
            }
        )
    return sorted(out, key=lambda r: r["time"])


def lineage(
    params: Params, model: str, request_id: str, index: LogIndex | None = None
) -> dict[str, Any] | None:
    """Return the lineage of one logged request, or None when it is not in the log.

    ``index`` is the log's index (default: the process's own, built on first use).
    """
    rows = find_rows(predictions_dir(params.project.data_dir, model), request_id, index)
    if rows.empty:
        return None
    when = pd.Timestamp(rows[predlog.TIME].iloc[0])
    when = when.tz_localize("UTC") if when.tz is None else when.tz_convert("UTC")
    versions = sorted(set(rows[predlog.MODEL_VERSION].astype(str)))
    proba = [c for c in rows.columns if c.startswith(predlog.PROBA_PREFIX)]
    shown = [predlog.ROW, predlog.PREDICTION, *proba]
    return {
        "request_id": request_id,
        "time": when.isoformat(),
        "rows": json.loads(rows[shown].to_json(orient="records")),
        "models": [model_lineage(model, v) for v in versions],
        "monitoring": [
            run
            for v in versions
            for run in monitoring_runs(Layout.of(params, model=model).monitoring, v, when)
        ],
    }


@startup.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lib.loop.lineage REQUEST_ID``: print a prediction's lineage as JSON."""
    from lib.core import tracking

    parser = argparse.ArgumentParser(prog="python -m lib.loop.lineage", description=__doc__)
    parser.add_argument("request_id")
    startup.add_arguments(parser, "project.data_dir=data")
    args = parser.parse_args(argv)
    params = startup.start(startup.Layers.from_args(args), log_level="WARNING")
    tracking.setup(params)
    model = tracking.model_name(params)
    found = lineage(params, model, args.request_id)
    if found is None:
        folder = predictions_dir(params.project.data_dir, model)
        return startup.fail(
            f"no logged prediction has request_id {args.request_id!r} (prediction log: "
            f"{folder}); check the id (the X-Request-ID header of the answer) and the "
            "project's parameters (--params, -p project.data_dir=...)"
        )
    print(json.dumps(found, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
