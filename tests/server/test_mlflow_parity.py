"""Quire's /invocations answers as `mlflow models serve` does for the same model.

The same shape and the same labels, except where the version's decision threshold (a registry
tag MLflow's server does not read) decides the label: Quire applies it on every route.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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
        assert quire.get("/ping").status_code == mlflow.get("/ping").status_code == 200
        assert quire.get("/version").text == mlflow.get("/version").text


def test_bad_input_gets_the_same_status_and_error_code_as_mlflow(
    served_params, test_rows, mlflow_server
):
    rows = test_rows[:3]
    missing = [{k: v for k, v in r.items() if k != "tenure_months"} for r in rows]
    bodies = {
        "no format": {"records": rows},
        "two formats": {"instances": rows, "inputs": rows},
        "missing field": {"dataframe_records": missing},
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
            assert (ours.status_code, ours.json()["error_code"]) == (
                theirs.status_code,
                theirs.json()["error_code"],
            ), (name, theirs.text[:300])
            assert set(ours.json()) == {"error_code", "message"}, name
