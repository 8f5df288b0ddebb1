"""Live drift: a sliding window of served rows, judged as the monitor stage judges them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.core.contracts import predlog
from lib.data import drift
from lib.data.drift_profile import build_profile
from lib.monitoring.live import LiveDrift

KINDS = {"x": "numeric", "city": "categorical"}


@pytest.fixture
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "x": rng.normal(0, 1, 2000),
        "city": rng.choice(["a", "b", "c"], 2000),
        predlog.PREDICTION: rng.choice([0, 1], 2000),
    })  # fmt: skip


def live(reference: pd.DataFrame, **kw) -> LiveDrift:
    kinds = KINDS | {predlog.PREDICTION: "categorical"}
    profile = build_profile(reference, kinds)
    return LiveDrift(profile, KINDS, [predlog.PREDICTION], classes=[0, 1], **kw)


def request(x, city, pred=None, seconds_ago: float = 0.0) -> dict:
    """One request's log columns, as the server queues them."""
    n = len(x)
    stamp = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(seconds=seconds_ago)
    return {
        "x": np.asarray(x, dtype=float),
        "city": np.asarray(city, dtype=object),
        predlog.PREDICTION: np.asarray(pred if pred is not None else [0] * n),
        predlog.TIME: np.full(n, np.datetime64(stamp, "ns")),
        predlog.REQUEST_ID: np.full(n, "r", dtype=object),
    }


def test_the_verdict_equals_check_drift_on_the_same_rows(reference):
    rng = np.random.default_rng(1)
    window = live(reference, window_rows=500, min_rows=50)
    sent = []
    for _ in range(60):  # 600 rows in requests of 10: the window keeps the last 500
        x, city = rng.normal(0.4, 1, 10), rng.choice(["a", "b", "c", "zz"], 10)
        pred = rng.choice([0, 1], 10)
        window.add(request(x, city, pred))
        sent.append(pd.DataFrame({"x": x, "city": city, predlog.PREDICTION: pred}))
    verdict = window.update()
    rows = pd.concat(sent, ignore_index=True).tail(500).reset_index(drop=True)
    expected = drift.check_drift(window.profile, rows, columns=list(KINDS))
    assert verdict is not None and verdict.rows == 500 == window.rows
    assert [(c.column, c.method, c.score, c.drifted) for c in verdict.features.columns] == [
        (c.column, c.method, c.score, c.drifted) for c in expected.columns
    ]
    assert verdict.features.columns[0].drifted  # x moved by 0.4 sd
    outputs = drift.check_drift(window.profile, rows, columns=[predlog.PREDICTION])
    assert verdict.outputs.columns[0].score == outputs.columns[0].score
    unknown = (rows["city"] == "zz").mean()
    assert verdict.quality["city"].unknown == pytest.approx(unknown) and unknown > 0.15
    assert verdict.prediction_shares["1"] == pytest.approx((rows[predlog.PREDICTION] == 1).mean())


def test_no_verdict_below_min_rows_and_quality_shares(reference):
    window = live(reference, window_rows=100, min_rows=5)
    window.add(request([0.0, np.nan, 99.0], ["a", None, "b"]))
    assert window.update() is None
    window.add(request([0.1, -99.0], ["b", "c"]))
    verdict = window.update()
    assert verdict is not None
    assert verdict.quality["x"].missing == pytest.approx(1 / 5)
    assert verdict.quality["x"].out_of_range == pytest.approx(2 / 5)  # 99 and -99
    assert verdict.quality["city"].missing == pytest.approx(1 / 5)
    assert verdict.quality["city"].unknown == 0.0


def test_window_seconds_drops_rows_served_earlier(reference):
    window = live(reference, window_rows=1000, window_seconds=60, min_rows=1)
    window.add(request(np.zeros(30), ["a"] * 30, seconds_ago=120))
    window.add(request(np.ones(20), ["b"] * 20))
    assert len(window.window()) == 20 and window.rows == 20


def test_requests_missing_a_checked_column_are_not_taken(reference):
    window = live(reference, window_rows=1000, min_rows=1)
    broken = request([1.0], ["a"])
    del broken["city"]
    window.add(broken)
    assert window.window().empty


def test_a_column_with_no_value_in_the_window_is_left_out_not_fatal(reference):
    window = live(reference, window_rows=100, min_rows=5)
    window.add(request([0.1] * 6, [None] * 6))
    verdict = window.update()
    assert verdict is not None
    assert [c.column for c in verdict.features.columns] == ["x"]
    assert verdict.quality["city"].missing == 1.0
