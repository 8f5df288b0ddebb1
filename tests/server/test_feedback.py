"""POST /feedback (labels joined to the prediction log by request id) and GET /lineage."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lib.core.contracts import predlog
from lib.core.layout import feedback_dir, predictions_dir
from lib.data import feedback
from server.config import Settings
from server.main import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(served_params):
    with TestClient(create_app(Settings(log_flush_seconds=0.1), served_params)) as c:
        yield c


def _flushed(served_params, request_id: str) -> pd.DataFrame:
    folder = predictions_dir(served_params.project.data_dir, "quire-churn")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = predlog.read_log(folder)
        if not log.empty and request_id in set(log["request_id"]):
            return log
        time.sleep(0.1)
    raise AssertionError(f"{request_id} never reached the prediction log")


def test_labels_join_the_log_by_request_id_and_row(client, served_params, test_rows):
    single = client.post("/predict", json=test_rows[0]).json()
    batch = client.post("/predict/batch", json=test_rows[1:4]).json()
    log = _flushed(served_params, batch["request_id"])
    posted = client.post(
        "/feedback",
        json={
            "labels": [
                {"request_id": single["request_id"], "label": 1},
                {"request_id": batch["request_id"], "row": 2, "label": 0},
                {"request_id": batch["request_id"], "row": 2, "label": 1},  # a correction: wins
            ]
        },
    )
    assert posted.status_code == 200, posted.text
    assert posted.json()["accepted"] == 3
    folder = feedback_dir(served_params.project.data_dir, "quire-churn")
    labels = feedback.load_labels(folder, "churned", served_params.data.csv)
    mine = labels[labels["request_id"].isin([single["request_id"], batch["request_id"]])]
    assert sorted(zip(mine["request_id"], mine["row"], mine["churned"], strict=True)) == sorted(
        [(single["request_id"], 0, 1), (batch["request_id"], 2, 1)]
    )
    rows = feedback.labelled_rows(log, mine, "churned", "customer_id")
    assert len(rows) == 2 and set(rows["churned"]) == {1}
    assert not {"request_id", "prediction", "model_version", "time"} & set(rows.columns)
    assert rows["customer_id"].str.endswith(":0").any()  # the id was not served: request:row
    assert rows["monthly_charges"].tolist() == pytest.approx(
        [test_rows[0]["monthly_charges"], test_rows[3]["monthly_charges"]]
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"labels": [{"request_id": "x", "label": "maybe"}]}, "label"),
        ({"labels": [{"request_id": "", "label": 1}]}, "request_id"),
        ({"labels": [{"request_id": "x", "row": -1, "label": 1}]}, "row"),
        ({"labels": [{"request_id": "x"}]}, "label"),
        ({"labels": []}, "labels"),
        ([1, 2], "labels"),
    ],
)
def test_bad_labels_are_422_naming_the_entry_and_field(client, body, field):
    answer = client.post("/feedback", json=body)
    assert answer.status_code == 422
    problem = answer.json()["problems"][0] if "problems" in answer.json() else answer.json()
    assert field in str(problem), answer.text


def test_lineage_names_the_model_version_run_and_training_data(client, test_rows):
    served = client.post("/predict", json=test_rows[5]).json()
    deadline = time.monotonic() + 10
    found = client.get(f"/lineage/{served['request_id']}")
    while found.status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.1)
        found = client.get(f"/lineage/{served['request_id']}")
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["rows"][0]["prediction"] == served["predictions"][0]["prediction"]
    (model,) = body["models"]
    assert model["version"] == str(served["model"]["version"])
    assert model["run_id"] and model["params_digest"] and model["git_commit"]
    assert model["data_manifest"]["dataset"] == "churn"
    assert model["data_manifest"]["splits"]["train"] > 0
    info = client.get("/model").json()
    assert info["lineage"]["run_id"] == model["run_id"]
    missing = client.get("/lineage/no-such-request")
    assert missing.status_code == 404 and "no logged prediction" in missing.text


def _label_files(served_params) -> list:
    return feedback.label_files(feedback_dir(served_params.project.data_dir, "quire-churn"))


def test_labels_for_requests_never_served_are_refused_naming_them(client, served_params, test_rows):
    served = client.post("/predict", json=test_rows[6]).headers["x-request-id"]
    before = _label_files(served_params)
    entries = [{"request_id": served, "label": 1}, {"request_id": "never-served", "label": 0}]
    answer = client.post("/feedback", json={"labels": entries})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unknown_request_id"
    assert [(d["row"], d["field"]) for d in error["details"]] == [(1, "request_id")]
    assert error["details"][0]["reason"].startswith("'never-served': no request with this id")
    assert '"allow_unknown": true' in error["message"]
    assert _label_files(served_params) == before  # nothing saved


def test_allow_unknown_saves_labels_for_unknown_requests_and_names_them(client, served_params):
    body = {"labels": [{"request_id": f"gone-{i}", "label": 1} for i in range(25)]}
    answer = client.post("/feedback", json={**body, "allow_unknown": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["unknown_requests"] == 25
    assert answer.json()["unknown_request_ids"] == [f"gone-{i}" for i in range(20)]
    refused = client.post("/feedback", json={**body, "allow_unknown": "yes"})
    assert refused.status_code == 422 and "allow_unknown" in refused.text
    too_long = client.post("/feedback", json={"labels": [{"request_id": "r" * 5000, "label": 1}]})
    assert too_long.status_code == 422 and len(too_long.text) < 600
    assert "at most 128 characters, got 5,000" in too_long.text


@pytest.fixture(scope="module")
def unflushed(served_params):
    """A server whose log is written only at shutdown: every request is 'served lately'."""
    settings = Settings(log_flush_seconds=3600, log_flush_rows=1_000_000)
    with TestClient(create_app(settings, served_params)) as c:
        yield c


def test_a_request_served_but_not_yet_logged_takes_labels(unflushed, test_rows):
    served = unflushed.post("/predict/batch", json=test_rows[:2]).headers["x-request-id"]
    answer = unflushed.post("/feedback", json={"labels": [{"request_id": served, "label": 1}]})
    assert answer.status_code == 200, answer.text
    assert "unknown_requests" not in answer.json()
    lineage = unflushed.get(f"/lineage/{served}")
    assert lineage.status_code == 404 and "served moments ago" in lineage.text
