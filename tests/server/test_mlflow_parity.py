"""Quire's /invocations answers as `mlflow models serve` does for the same model.

The same shape and the same labels, except where the version's decision threshold (a registry
tag MLflow's server does not read) decides the label: Quire applies it on every route.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from lib.core import tracking
from lib.serving.contract import check_rows
from server.config import Settings
from server.main import create_app
from tests.server.helpers import free_port, mlflow_payloads, post_payload, wait_until_ready

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(served_params, tmp_path_factory):
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(served_params),
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),  # mlflow runs `uvicorn`
    }
    model = f"models:/{tracking.model_name(served_params)}@{tracking.CHAMPION}"
    proc = subprocess.Popen(
        [f"{bin_dir}/mlflow", "models", "serve", "-m", model, "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=tmp_path_factory.mktemp("mlflow-serve"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/ping", proc, 180)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_every_format_gets_the_same_answer_as_mlflow(served_params, test_rows, mlflow_server):
    rows = test_rows[:25]
    with (
        TestClient(create_app(Settings(prediction_log=False), served_params)) as quire,
        httpx.Client(base_url=mlflow_server, timeout=30) as mlflow,
    ):
        model = quire.app.state.serving.current()
        labels, proba = model.predict(check_rows(rows, model.schema))
        expected = labels.tolist()
        positive = proba[:, 1]
        threshold = model.threshold if model.threshold is not None else 0.5
        decided_by_threshold = (
            (np.minimum(threshold, 0.5) <= positive) & (positive < np.maximum(threshold, 0.5))
        ).tolist()
        answers = {}
        for name, (kind, body) in mlflow_payloads(rows).items():
            ours = post_payload(quire, "/invocations", kind, body)
            theirs = post_payload(mlflow, "/invocations", kind, body)
            assert ours.status_code == 200, (name, ours.text)
            answers[name] = ours.json()
            if name == "csv" and theirs.status_code == 400:
                # MLflow cannot read the model's date column from CSV (it enforces the
                # signature's datetime type); Quire parses it and answers as for JSON.
                assert "datetime64" in theirs.json()["message"]
                continue
            assert theirs.status_code == 200, (name, theirs.text[:300])
            assert set(ours.json()) == set(theirs.json()) == {"predictions"}, name
            assert ours.json()["predictions"] == expected, name
            # MLflow serves the artefact alone, without the version's threshold tag: its labels
            # are the pipeline's predict (0.5), and differ exactly where the threshold decides
            flipped = [a != b for a, b in zip(expected, theirs.json()["predictions"], strict=True)]
            assert flipped == decided_by_threshold, name
        assert answers["csv"] == answers["dataframe_records"]
        # params that are not an object: MLflow ignores them (the model declares none)
        odd = {"dataframe_records": rows, "params": [1]}
        ours, theirs = quire.post("/invocations", json=odd), mlflow.post("/invocations", json=odd)
        assert ours.status_code == theirs.status_code == 200, theirs.text[:300]
        assert ours.json() == answers["dataframe_records"]
        assert quire.get("/ping").status_code == mlflow.get("/ping").status_code == 200
        assert quire.get("/version").text == mlflow.get("/version").text


def test_bad_input_gets_the_same_status_and_error_code_as_mlflow(
    served_params, test_rows, mlflow_server
):
    rows = test_rows[:3]
    missing = [{k: v for k, v in r.items() if k != "tenure_months"} for r in rows]
    columns = list(rows[0])
    data = [[r[c] for c in columns] for r in rows]

    def split(**part: Any) -> dict[str, Any]:
        return {"dataframe_split": {"columns": columns, "data": data, **part}}

    bodies = {
        "no format": {"records": rows},
        "two formats": {"instances": rows, "inputs": rows},
        "missing field": {"dataframe_records": missing},
        # dataframe_split bodies pandas cannot build a frame from (Quire answered 500 or
        # silently dropped the extra values)
        "columns not a list": split(columns="age"),
        "data not a list": split(data=5),
        "data [null]": split(data=[None]),
        "a row of scalars": split(data=[data[0], 4]),
        "more values than columns": split(data=[data[0], [*data[1], 1]]),
        "every row with fewer values than columns": split(data=[d[:-1] for d in data]),
        "a column twice": split(columns=[*columns, columns[1]], data=[[*d, d[1]] for d in data]),
        "an index of another length": split(index=[0]),
        "no columns": {"dataframe_split": {"data": data}},
        "no data": {"dataframe_split": {"columns": columns}},
    }
    with (
        TestClient(create_app(Settings(prediction_log=False), served_params)) as quire,
        httpx.Client(base_url=mlflow_server, timeout=30) as mlflow,
    ):
        for name, body in bodies.items():
            ours, theirs = (
                quire.post("/invocations", json=body),
                mlflow.post("/invocations", json=body),
            )
            if name == "a column twice":  # MLflow's code depends on the column's type
                assert ours.status_code == theirs.status_code == 400
                continue
            assert (ours.status_code, ours.json().get("error_code")) == (
                theirs.status_code,
                theirs.json().get("error_code"),
            ), (name, ours.text[:300], theirs.text[:300])
            assert set(ours.json()) == {"error_code", "message"}, name


def test_nan_is_read_as_mlflow_reads_it(served_params, test_rows, mlflow_server):
    """NaN (how pandas and MLflow's client write a missing value) in each kind of column."""
    row = test_rows[0]
    with (
        TestClient(create_app(Settings(prediction_log=False), served_params)) as quire,
        httpx.Client(base_url=mlflow_server, timeout=30) as mlflow,
    ):
        model = quire.app.state.serving.current()
        for column in ("age", "region", "signup_date", "is_senior"):
            content = json.dumps({"dataframe_records": [{**row, column: float("nan")}]})
            headers = {"content-type": "application/json"}
            ours = quire.post("/invocations", content=content, headers=headers)
            theirs = mlflow.post("/invocations", content=content, headers=headers)
            assert ours.status_code == theirs.status_code == 200, (column, theirs.text[:300])
            labels, proba = model.predict(check_rows([{**row, column: None}], model.schema))
            assert ours.json()["predictions"] == labels.tolist(), column
            # MLflow's server reads the same probability, labelled at 0.5 (no threshold tag)
            assert theirs.json()["predictions"] == [int(proba[0, 1] >= 0.5)], column
