"""Micro-batching: concurrent small requests of every route share model calls, each gets its rows."""

from __future__ import annotations

import asyncio
import concurrent.futures
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lib.serving.batch import Batch
from server.batcher import MicroBatcher
from server.config import Settings
from server.main import create_app
from tests.server.helpers import mlflow_payloads


def batch(*values: float) -> Batch:
    return Batch({"x": np.array(values)}, [[] for _ in values], None)


def fake_model(name: str, calls: list) -> SimpleNamespace:
    """A model whose prediction is its rows' ``x`` plus an offset (to tell the models apart)."""
    offset = {"a": 0.0, "b": 100.0}[name]

    def predict(b: Batch) -> tuple[np.ndarray, None]:
        calls.append((name, len(b)))
        if np.isnan(b.columns["x"]).any():
            raise ValueError("no NaN")
        return b.columns["x"] + offset, None

    return SimpleNamespace(predict=predict)


async def slow_first(method, b):
    """The first call waits: the requests that arrive meanwhile queue up for the next one."""
    await asyncio.sleep(0.05)
    return method(b)


def run_batched(jobs, current) -> list:
    async def main():
        batcher = MicroBatcher(lambda: current, slow_first)
        batcher.start()
        results = await asyncio.gather(
            *(batcher.predict(b, m) for b, m in jobs), return_exceptions=True
        )
        await batcher.stop()
        return results

    return asyncio.run(main())


def test_queued_requests_share_one_call_and_each_gets_its_own_rows():
    calls: list = []
    a = fake_model("a", calls)
    jobs = [(batch(float(i), float(i) + 0.5), None) for i in range(10)]
    results = run_batched(jobs, a)
    assert calls == [("a", 20)]  # all ten were queued before the worker ran
    for i, (model, labels, proba) in enumerate(results):
        assert model is a and proba is None
        assert labels.tolist() == [i, i + 0.5]


def test_requests_for_different_models_never_share_a_call():
    """A reload between two requests' checks: each is predicted by the model it was checked by."""
    calls: list = []
    a, b = fake_model("a", calls), fake_model("b", calls)
    jobs = [(batch(1.0), None), (batch(2.0), a), (batch(3.0), b), (batch(4.0), a)]
    results = run_batched(jobs, a)
    assert sorted(calls) == [("a", 3), ("b", 1)]
    assert [r[1].tolist() for r in results] == [[1.0], [2.0], [103.0], [4.0]]
    assert [r[0] for r in results] == [a, a, b, a]


def test_a_failed_call_fails_its_requests_and_the_batcher_goes_on():
    calls: list = []
    a = fake_model("a", calls)
    jobs = [(batch(1.0), None), (batch(float("nan")), None), (batch(3.0), None)]
    results = run_batched(jobs, a)
    assert calls == [("a", 3)] and all(isinstance(r, ValueError) for r in results)

    async def after_failure():
        batcher = MicroBatcher(lambda: a, slow_first)
        batcher.start()
        first = await asyncio.gather(batcher.predict(batch(float("nan"))), return_exceptions=True)
        second = await batcher.predict(batch(5.0))
        await batcher.stop()
        return first, second

    first, second = asyncio.run(after_failure())
    assert isinstance(first[0], ValueError) and second[1].tolist() == [5.0]


@pytest.mark.parametrize(
    "route", ["/invocations", "/v2/models/quire-churn/infer", "/predict/batch"]
)
def test_concurrent_small_requests_of_every_route_share_model_calls(
    served_params, test_rows, monkeypatch, route
):
    """16 concurrent one-row requests: fewer model calls than requests, the same answers."""
    app = create_app(Settings(prediction_log=False), served_params)
    rows = [r for r in test_rows if None not in r.values()][:16]  # V2 tensors: no nulls
    with TestClient(app) as client:
        state = app.state.serving
        if route == "/invocations":
            bodies = [mlflow_payloads([r])["dataframe_records"][1] for r in rows]
        elif route.startswith("/v2"):
            bodies = [{"inputs": [{"name": k, "shape": [1], "datatype": v2_type(v),
                                   "data": [v]} for k, v in r.items()]} for r in rows]  # fmt: skip
        else:
            bodies = [[r] for r in rows]
        alone = [client.post(route, json=b).json() for b in bodies]
        calls: list[int] = []
        real_run = state.batcher._run_model

        async def counted(method, b):
            calls.append(len(b))
            await asyncio.sleep(0.05)  # the others arrive meanwhile
            return await real_run(method, b)

        monkeypatch.setattr(state.batcher, "_run_model", counted)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            together = list(pool.map(lambda b: client.post(route, json=b), bodies))
    assert [a.status_code for a in together] == [200] * 16
    assert sum(calls) == 16 and len(calls) < 8, calls
    strip = ("request_id", "id")
    assert [drop(a.json(), strip) for a in together] == [drop(a, strip) for a in alone]


def v2_type(value) -> str:
    return {bool: "BOOL", int: "INT64", float: "FP64"}.get(type(value), "BYTES")


def drop(answer, keys):
    """An answer without its per-request fields (request ids), its floats to 12 places (a row's
    probabilities may differ in the last bit with the size of the call, as in-process)."""
    if isinstance(answer, float):
        return round(answer, 12)
    if isinstance(answer, dict):
        return {k: drop(v, keys) for k, v in answer.items() if k not in keys}
    if isinstance(answer, list):
        return [drop(v, keys) for v in answer]
    return answer
