"""lib.loop.replay: rows of a table sent through a real server's REST API into its prediction log.

Lives beside the server tests to share their tiny promoted model (tests/server/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from lib.core.errors import DataValidationError, ParamsError, ServerUnavailableError
from lib.core.params import load_params
from lib.core.paths import PROJECT_ROOT
from lib.loop.replay import (
    DEFAULT_URL,
    ReplayConfig,
    check_url,
    default_url,
    load_source,
    replay,
    request_rows,
)
from lib.loop.replay import cli as replay_cli
from tests.conftest import tiny_training_overrides
from tests.server.helpers import free_port, real_server, stop

PRODUCTION_ROWS = 240


# --- a real server with its own prediction log ----------------------------------------------


@contextlib.contextmanager
def server(served_root: Path, data_dir: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The tiny champion, its prediction log in ``data_dir`` (not shared with other tests).

    The log is flushed only when the server stops (SIGTERM), so a test reads exactly what this
    server logged.
    """
    with real_server(data_dir, served_root / "mlruns", log, log_flush_seconds="600") as served:
        yield served


def prediction_log(data_dir: Path) -> pd.DataFrame:
    files = sorted((data_dir / "predictions" / "quire-churn").glob("part-*.parquet"))
    assert files, f"no prediction log under {data_dir}"
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], pd.DataFrame]:
    """-p overrides giving a small generated production batch, and that batch."""
    root = tmp_path_factory.mktemp("replay-source")
    overrides = [*tiny_training_overrides(root), f"generator.production.rows={PRODUCTION_ROWS}"]
    frame, _ = load_source(load_params(overrides=overrides))
    return overrides, frame


# --- without a server -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3:8000", "http://example.com:8000", "https://192.168.0.7"]
)
def test_a_host_that_is_not_loopback_is_refused_without_allow_remote(url):
    with pytest.raises(ParamsError, match="is not loopback.*--allow-remote") as info:
        check_url(url)
    assert info.value.key == "--url"
    assert check_url(url + "/", allow_remote=True) == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:9", "http://[::1]:8000", "http://127.0.0.2"]
)
def test_loopback_hosts_are_allowed(url):
    assert check_url(url + "/") == url


def test_cli_refuses_a_remote_host_before_contacting_it(monkeypatch, capsys):
    def contacted(*args, **kwargs):
        raise AssertionError("the server was contacted")

    monkeypatch.setattr(replay_cli, "server_model", contacted)
    code = replay_cli.main(["data.csv", "--url", "http://10.1.2.3:8000", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'10.1.2.3' is not loopback" in err and "--allow-remote" in err


def test_default_url_follows_the_server_settings():
    assert default_url({}) == DEFAULT_URL
    assert default_url({"QUIRE_SERVER_PORT": "9001"}) == "http://127.0.0.1:9001"
    assert default_url({"QUIRE_SERVER_HOST": "0.0.0.0", "QUIRE_SERVER_PORT": "5"}) == (
        "http://127.0.0.1:5"
    )
    assert default_url({"QUIRE_SERVER_HOST": "::1"}) == "http://[::1]:8000"


@pytest.mark.parametrize(
    ("kwargs", "key", "message"),
    [
        ({"concurrency": 33}, "--concurrency", "expected 1 to 32"),
        ({"batch_size": 0}, "--batch-size", "expected 1 to 10,000"),
        ({"rows": 100_001}, "--rows", "raise --max-rows"),
        ({"retries": 11}, "--retries", "expected 0 to 10"),
        ({"rate": -1.0}, "--rate", "0 \\(no limit\\) or above"),
    ],
)
def test_bounds_are_enforced(kwargs, key, message):
    with pytest.raises(ParamsError, match=message) as info:
        ReplayConfig(**kwargs)
    assert info.value.key == key
    assert ReplayConfig(rows=100_001, max_rows=100_001).rows == 100_001  # raised explicitly


def test_rows_become_json_ready_dicts_of_the_requested_columns_only():
    frame = pd.DataFrame(
        {
            "n": [1.5, np.nan, 0.1 + 0.2],
            "i": np.array([1, 2, 3], dtype=np.int64),
            "b": pd.Series([True, None, False], dtype=object),
            "d": pd.to_datetime(["2024-01-31", None, "2023-05-06 07:08:09"], format="ISO8601"),
            "c": pd.Categorical(["x", None, "y"]),
            "churned": [0, 1, 0],
        }
    )
    rows = request_rows(frame, ["n", "i", "b", "d", "c"])
    assert rows == [
        {"n": 1.5, "i": 1, "b": True, "d": "2024-01-31T00:00:00", "c": "x"},
        {"n": None, "i": 2, "b": None, "d": None, "c": None},
        {"n": 0.1 + 0.2, "i": 3, "b": False, "d": "2023-05-06T07:08:09", "c": "y"},
    ]
    assert type(rows[0]["i"]) is int
    assert json.loads(json.dumps(rows)) == rows  # exact round trip, no NaN left


def _mock_server(fail_first: int = 0, reject: frozenset[float] = frozenset()):
    """A transport answering like the server: 503 for the first calls, 422 for some rows."""
    calls = {"predict": 0}
    schema = {"target": "label", "features": [{"name": "x", "kind": "numeric"}]}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/model":
            return httpx.Response(200, json={"name": "m", "version": "7", "schema": schema})
        calls["predict"] += 1
        if calls["predict"] <= fail_first:
            return httpx.Response(503, json={"error": {"code": "not_ready", "message": "later"}})
        row = json.loads(request.content)
        assert set(row) == {"x"}  # the label and the id never leave
        if row["x"] in reject:
            error = {"code": "invalid_input", "message": "bad x"}
            return httpx.Response(422, json={"error": error})
        answer = {"request_id": f"r{row['x']:g}", "model": {"name": "m", "version": "7"}}
        return httpx.Response(200, json={**answer, "predictions": [{"prediction": 0}]})

    return httpx.MockTransport(handle), calls


def test_retries_503_and_counts_failures_by_status_code():
    transport, calls = _mock_server(fail_first=2, reject=frozenset({3.0}))
    frame = pd.DataFrame({"id": list("abcde"), "x": [0.0, 1.0, 2.0, 3.0, 4.0], "label": 1})
    config = ReplayConfig(concurrency=1, backoff=0.0, progress=False)
    summary = replay(frame, config, transport=transport)
    assert calls["predict"] == 5 + 2
    assert (summary.rows_ok, summary.rows_failed, summary.retries) == (4, 1, 2)
    assert summary.failed_by_status == {"422": 1}
    assert summary.first_errors == {"422": "invalid_input: bad x"}
    assert summary.model_versions == {"7": 4}
    assert (summary.first_request_id, summary.last_request_id) == ("r0", "r4")
    assert summary.answered["position"].tolist() == [0, 1, 2, 4]
    assert not summary.ok
    assert "failed: 1 rows (422: 1)" in summary.format()


def test_retries_are_bounded():
    transport, calls = _mock_server(fail_first=100)
    frame = pd.DataFrame({"x": [0.0, 1.0]})
    summary = replay(
        frame, ReplayConfig(retries=2, backoff=0.0, progress=False), transport=transport
    )
    assert calls["predict"] == 2 * 3
    assert summary.failed_by_status == {"503": 2} and summary.retries == 4


def test_max_seconds_stops_sending_and_is_reported():
    transport, calls = _mock_server()
    frame = pd.DataFrame({"x": np.arange(50.0)})
    config = ReplayConfig(rate=10.0, max_seconds=0.3, progress=False)
    summary = replay(frame, config, transport=transport)
    # Row k may leave at k/rate seconds at the earliest: rows due after 0.3 s are never sent.
    assert summary.rows_sent == calls["predict"] <= 3
    assert summary.stopped == "max_seconds" and not summary.ok
    assert "stopped at --max-seconds" in summary.format()


def test_a_table_without_the_model_columns_is_refused_before_sending():
    transport, calls = _mock_server()
    frame = pd.DataFrame({"y": [1.0]})
    with pytest.raises(
        DataValidationError, match=r"t.csv: the served model needs column\(s\) x, which"
    ):
        replay(frame, ReplayConfig(progress=False), source="t.csv", transport=transport)
    assert calls["predict"] == 0


def test_an_unreachable_port_exits_2_naming_the_url_before_reading_data(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    data_dir = tmp_path / "data"
    env = {**os.environ, "QUIRE__PROJECT__DATA_DIR": str(data_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "lib.loop.replay", "--url", url, "--retries", "1", "--no-progress"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert f"no server answers at {url}" in result.stderr
    assert "make serve" in result.stderr
    assert not data_dir.exists()  # the production batch was not generated for nothing


def test_unreachable_server_error_names_the_url():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    config = ReplayConfig(url="http://127.0.0.1:1", retries=0, progress=False)
    with pytest.raises(ServerUnavailableError, match="no server answers at http://127.0.0.1:1"):
        replay(pd.DataFrame({"x": [1.0]}), config, transport=httpx.MockTransport(refuse))


# --- against a real server --------------------------------------------------------------------


@pytest.mark.slow
def test_cli_replays_the_production_batch_row_by_row_into_the_log(
    served_root, production, tmp_path, capsys
):
    overrides, source = production
    ids_out = tmp_path / "ids.csv"
    data_dir = tmp_path / "served"
    with server(served_root, data_dir, tmp_path / "server.log") as (base, proc):
        args = ["--url", base, "--concurrency", "4", "--no-progress", "--ids-out", str(ids_out)]
        code = replay_cli.main([*args, *(a for o in overrides for a in ("-p", o))])
        out = capsys.readouterr().out
        stop(proc)
    assert code == 0, out
    assert f"{PRODUCTION_ROWS} of {PRODUCTION_ROWS} rows sent" in out
    assert f"ok: {PRODUCTION_ROWS} rows; failed: 0 rows" in out

    ids = pd.read_csv(ids_out)
    assert list(ids.columns) == ["request_id", "row", "customer_id", "churned"]
    assert ids["customer_id"].tolist() == source["customer_id"].tolist()
    assert ids["churned"].tolist() == source["churned"].tolist()
    assert (ids["row"] == 0).all() and ids["request_id"].is_unique
    first, last = ids["request_id"].iloc[0], ids["request_id"].iloc[-1]
    assert f"request ids: first {first}, last {last}" in out

    logged = prediction_log(data_dir)
    assert len(logged) == PRODUCTION_ROWS
    assert sorted(logged["request_id"]) == sorted(ids["request_id"])
    # Each logged row is the source row the tool says it sent under that request id.
    # replay sends the features and the id column (logged as text), never the target
    assert "churned" not in logged.columns
    joined = logged.merge(ids, on=["request_id", "row"], validate="one_to_one")
    assert (joined["customer_id_x"] == joined["customer_id_y"].astype(str)).all()
    joined = joined.rename(columns={"customer_id_y": "customer_id"})
    expected = source.set_index("customer_id").loc[joined["customer_id"]]
    np.testing.assert_array_equal(
        joined["monthly_charges"].to_numpy(), expected["monthly_charges"].to_numpy()
    )


@pytest.mark.slow
def test_batches_of_50_with_four_requests_in_flight(served_root, production, tmp_path):
    _, source = production
    data_dir = tmp_path / "served"
    with server(served_root, data_dir, tmp_path / "server.log") as (base, proc):
        version = httpx.get(f"{base}/model").json()["version"]
        config = ReplayConfig(url=base, batch_size=50, concurrency=4, progress=False)
        summary = replay(source, config)
        stop(proc)
    assert summary.ok and summary.route == "/predict/batch"
    assert (summary.rows_planned, summary.rows_ok, summary.requests) == (240, 240, 5)
    assert summary.failed_by_status == {} and summary.model_versions == {version: 240}
    answered = summary.answered
    assert sorted(answered["position"]) == list(range(240))
    assert answered.groupby("request_id")["row"].max().sort_values().tolist() == [
        39,
        49,
        49,
        49,
        49,
    ]

    logged = prediction_log(data_dir)
    assert len(logged) == 240
    pairs = set(zip(logged["request_id"], logged["row"], strict=True))
    assert pairs == set(zip(answered["request_id"], answered["row"], strict=True))
    assert {summary.first_request_id, summary.last_request_id} <= set(logged["request_id"])
    joined = logged.merge(answered, on=["request_id", "row"], validate="one_to_one")
    np.testing.assert_array_equal(
        joined["avg_session_minutes"].to_numpy(),
        source["avg_session_minutes"].to_numpy()[joined["position"]],
    )


@pytest.mark.slow
def test_rate_bounds_the_speed(served_root, production, tmp_path):
    _, source = production
    rows, rate = 40, 20.0
    with server(served_root, tmp_path / "served", tmp_path / "server.log") as (base, _):
        config = ReplayConfig(url=base, rows=rows, rate=rate, concurrency=4, progress=False)
        started = time.monotonic()
        summary = replay(source, config)
        elapsed = time.monotonic() - started
    assert summary.rows_ok == rows and summary.rows_planned == rows
    assert summary.seconds >= rows / rate * 0.9  # a lower bound only
    assert elapsed >= summary.seconds
    assert summary.rows_per_second <= rate
