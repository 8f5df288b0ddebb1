"""One answer per row: the same rows get the same label from every prediction route.

The served model is the package's tiny binary model, with a decision threshold that is not 0.5
(chosen from the rows' own probabilities, so that some rows fall between it and 0.5 and one
sits exactly on it).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lib.serving.contract import check_rows
from server.config import Settings
from server.main import create_app
from tests.server.helpers import mlflow_payloads, post_payload, v2_body

pytestmark = pytest.mark.slow


def _threshold(proba: np.ndarray) -> float:
    """A threshold below 0.5 with at least two rows in [threshold, 0.5), one exactly on it."""
    below = np.sort(proba[proba < 0.5])
    assert len(below) >= 3, "the test rows need probabilities below 0.5"
    return float(below[-3])


@pytest.fixture(scope="module")
def thresholded(served_params, test_rows):
    """A client whose served model has a non-0.5 threshold, and that threshold."""
    app = create_app(Settings(prediction_log=False), served_params)
    with TestClient(app) as client:
        state = app.state.serving
        model = state.current()
        _, proba = model.predict(check_rows(test_rows, model.schema))
        threshold = _threshold(proba[:, 1])
        state.model = replace(model, threshold=threshold)
        yield client, threshold, proba[:, 1]


def _v2(client: TestClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``rows`` as a V2 request, each input of the datatype the model's metadata declares."""
    inputs = client.get("/v2/models/quire-churn").json()["inputs"]
    return v2_body(rows, {i["name"]: i["datatype"] for i in inputs})


def labels_from_every_route(client: TestClient, rows: list[dict[str, Any]]) -> dict[str, list]:
    """The label each route answers for ``rows``."""
    answers = {
        "predict": [client.post("/predict", json=r).json()["predictions"][0] for r in rows],
        "predict/batch": client.post("/predict/batch", json=rows).json()["predictions"],
    }
    labels = {k: [p["prediction"] for p in v] for k, v in answers.items()}
    for name, (kind, body) in mlflow_payloads(rows).items():
        answer = post_payload(client, "/invocations", kind, body)
        assert answer.status_code == 200, (name, answer.text)
        labels[f"invocations {name}"] = answer.json()["predictions"]
    infer = client.post("/v2/models/quire-churn/infer", json=_v2(client, rows))
    assert infer.status_code == 200, infer.text
    outputs = {o["name"]: o for o in infer.json()["outputs"]}
    labels["v2"] = outputs["predict"]["data"]
    return labels


def test_every_route_answers_the_same_label_at_a_non_default_threshold(thresholded, test_rows):
    client, threshold, positive = thresholded
    expected = np.where(positive >= threshold, 1, 0).tolist()
    between = (positive >= threshold) & (positive < 0.5)
    assert between.sum() >= 2 and (positive == threshold).sum() >= 1  # the test means something
    for route, labels in labels_from_every_route(client, test_rows).items():
        assert labels == expected, route
    assert client.get("/model").json()["threshold"] == threshold


def test_probabilities_are_the_same_on_every_route(thresholded, test_rows):
    client, _, positive = thresholded
    rows = test_rows[:5]
    batch = client.post("/predict/batch", json=rows).json()["predictions"]
    expected = [p["probabilities"] for p in batch]
    assert [p["1"] for p in expected] == positive[:5].tolist()
    asked = client.post(
        "/invocations", json={"dataframe_records": rows, "params": {"probabilities": True}}
    ).json()
    assert asked["probabilities"] == expected
    assert asked["predictions"] == [p["prediction"] for p in batch]
    plain = client.post("/invocations", json={"dataframe_records": rows, "params": {"x": 1}})
    assert set(plain.json()) == {"predictions"}  # unknown params are ignored, as MLflow does
    infer = client.post("/v2/models/quire-churn/infer", json=_v2(client, rows)).json()
    proba = {o["name"]: o for o in infer["outputs"]}["predict_proba"]
    assert proba["shape"] == [5, 2]
    assert proba["data"] == [v for p in expected for v in (p["0"], p["1"])]


def test_bad_invocation_params_are_a_400_in_mlflow_shape(thresholded, test_rows):
    client = thresholded[0]
    body = {"dataframe_records": test_rows[:1], "params": {"probabilities": "yes"}}
    answer = client.post("/invocations", json=body)
    assert answer.status_code == 400
    assert answer.json() == {
        "error_code": "BAD_REQUEST",
        "message": "params.probabilities: expected true or false, got str",
    }


def test_params_that_are_not_an_object_are_ignored_as_mlflow_does(thresholded, test_rows):
    client = thresholded[0]
    plain = client.post("/invocations", json={"dataframe_records": test_rows[:2]}).json()
    for params in ([1], "x", 3):
        body = {"dataframe_records": test_rows[:2], "params": params}
        assert client.post("/invocations", json=body).json() == plain, params
