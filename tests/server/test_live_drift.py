"""Live drift on /metrics: the served window judged as the monitor stage judges the same rows."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from lib.core.params import load_params
from lib.loop.replay import load_source, request_rows
from lib.monitoring.findings import find_drift
from lib.monitoring.inputs import drift_kinds, load_current
from lib.monitoring.reference_rows import load_reference
from lib.serving.loading import load_model
from server.config import Settings
from server.main import create_app
from tests.conftest import tiny_training_overrides

WINDOW = 400


def gauges(client: TestClient) -> dict[tuple[str, tuple], float]:
    """The live-drift samples on /metrics: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name.startswith(("quire_drift", "quire_dataset", "quire_quality", "quire_live")):
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def wait_for_rows(client: TestClient, rows: int, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = gauges(client)
        if found.get(("quire_live_window_rows", ())) == rows:
            return found
        time.sleep(0.1)
    pytest.fail(f"the live window did not reach {rows} rows: {gauges(client)}")


@pytest.fixture(scope="module")
def live_params(served_root):
    overrides = [
        *tiny_training_overrides(served_root), "evaluate.bootstrap=0",
        f"monitor.live.window_rows={WINDOW}", "monitor.live.min_rows=50",
        "monitor.live.every_seconds=0.1", "monitor.current=log", f"monitor.window_rows={WINDOW}",
    ]  # fmt: skip
    return load_params(overrides=overrides)


@pytest.fixture(scope="module")
def drifted_rows(tmp_path_factory, live_params):
    """The generator's drifted production batch, as JSON rows of the model's fields."""
    root = tmp_path_factory.mktemp("live-source")
    frame, _ = load_source(load_params(overrides=[*tiny_training_overrides(root),
                                                  "generator.production.rows=600"]))  # fmt: skip
    schema = load_model(live_params, fast=False).schema
    return request_rows(frame, schema.names())


def test_live_drift_equals_the_monitor_stage_on_the_same_rows(live_params, drifted_rows, tmp_path):
    params = live_params  # serves the champion, whose reference is in the project's data folder
    folder = tmp_path / "log"
    app = create_app(Settings(log_flush_seconds=0.2), params)
    with TestClient(app) as client:
        state = app.state.serving
        state.predlog.folder = folder  # this test's rows only, in a folder of its own
        assert gauges(client).get(("quire_live_window_rows", ())) == 0  # nothing served yet
        for start in range(0, WINDOW, 50):  # exactly the window: the last update holds them all
            assert client.post("/predict/batch", json=drifted_rows[start : start + 50]).is_success
        live = wait_for_rows(client, WINDOW)
    # the monitor stage reads that log: a data folder whose predictions/<model> is it
    model = load_model(params, fast=False)
    log_params = params.model_copy(
        update={"project": params.project.model_copy(update={"data_dir": str(tmp_path / "d")})}
    )
    (tmp_path / "d" / "predictions").mkdir(parents=True)
    (tmp_path / "d" / "predictions" / "quire-churn").symlink_to(folder)
    kinds = drift_kinds(model.schema, params.monitor)
    ref = load_reference(params, model.schema, "quire-churn", model.version)
    cur = load_current(log_params, model.schema, "quire-churn", model.predict)
    assert len(cur.frame) == WINDOW
    stage = find_drift(ref, cur, model.schema, kinds, params.monitor)
    for role, report in (("feature", stage.features), ("output", stage.outputs)):
        for col in report.columns:
            labels = (("column", col.column), ("method", col.method), ("role", role))
            assert live[("quire_drift_score", labels)] == pytest.approx(col.score, rel=1e-9)
            flag = live[("quire_drift_detected", (("column", col.column), ("role", role)))]
            assert flag == int(col.drifted), col.column
    assert live[("quire_drift_share", ())] == pytest.approx(stage.features.drifted_share)
    assert live[("quire_dataset_drift", ())] == int(stage.features.dataset_drift)
    assert stage.drifted, "the production batch is drifted: the comparison must see drift"
    unseen = [k for k, v in live.items() if k[0] == "quire_quality_unknown_share" and v > 0]
    assert unseen, "the production batch brings a payment method never seen in training"
