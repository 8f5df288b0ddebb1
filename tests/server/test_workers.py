"""`python -m server --workers 2`: one port, two processes; metrics, log, reload, faults, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lib.core.contracts import predlog
from server.segments import open_values
from tests.server import helpers
from tests.server.conftest import move_champion

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def two_workers(served_root: Path, tmp_path: Path, **settings: str) -> Iterator[tuple[str, Any]]:
    with helpers.real_server(
        served_root / "data", served_root / "mlruns", tmp_path / "server.log", workers="2",
        **settings,
    ) as (base, proc):  # fmt: skip
        helpers.wait_for(lambda: len(serving(base)) == 2, 120)
        yield base, proc


def samples(base: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric family on ``/metrics`` (whichever worker answers)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def serving(base: str) -> dict[int, str]:
    """Each running worker's pid and the model version it serves (``quire_model_info`` = 1)."""
    try:
        info = samples(base, "quire_model_info")
    except httpx.TransportError:
        return {}
    return {int(labels["pid"]): labels["version"] for labels, value in info if value == 1}


def replaced(workers: dict[int, str], victim: int) -> bool:
    """Whether two workers serve, ``victim`` not among them (one scrape: a reaped zombie)."""
    return len(workers) == 2 and victim not in workers


def answered(base: str) -> float:
    got = samples(base, "quire_requests_total")
    return sum(v for labels, v in got if labels == {"route": "/predict", "status": "200"})


def post_rows(base: str, rows: list[dict], clients: int = 8) -> list[str]:
    """Post each row on a new connection (so the kernel spreads them); return the request ids."""

    def one(row: dict) -> str:
        answer = httpx.post(f"{base}/predict", json=row, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-request-id"]

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, rows))


def logged_requests(folder: Path) -> pd.Series:
    return predlog.read_log(folder)[predlog.REQUEST_ID]


def test_two_workers_share_port_metrics_log_and_reload(
    served_root, served_params, test_rows, tmp_path, second_version
):
    old, new = second_version
    folder = served_root / "data" / "predictions" / "quire-churn"
    before = set(logged_requests(folder)) if folder.exists() else set()
    with two_workers(served_root, tmp_path, log_durability="fsync", log_flush_seconds="600") as (
        base,
        proc,
    ):
        pids = set(serving(base))
        assert len(pids) == 2 and proc.pid not in pids and set(serving(base).values()) == {old}
        sent = post_rows(base, test_rows * 3)
        # every scrape, whichever worker answers it, counts the requests of both
        assert [answered(base) for _ in range(6)] == [len(sent)] * 6
        writers = {p.name.split("-")[1] for p in (folder / "segments").glob("segment-*.arrows")}
        assert writers == {str(p) for p in pids}  # each worker logs to its own segment
        # labels for rows either worker served, not yet in parts: both workers know them all
        labels = {"labels": [{"request_id": r, "label": 1} for r in sent]}
        for _ in range(4):
            answer = httpx.post(f"{base}/feedback", json=labels, timeout=30)
            assert answer.status_code == 200 and "unknown_requests" not in answer.json(), (
                answer.text
            )

        move_champion(served_params, new)
        reloaded = httpx.post(f"{base}/admin/reload", timeout=180).json()
        assert reloaded["status"] == "reloaded" and reloaded["version"] == new
        assert reloaded["workers"] == {"total": 2, "reloaded": 2, "failed": [], "late": []}
        assert serving(base) == {p: new for p in pids}  # the other worker followed

        # a worker killed: started again; its segment becomes a part (nothing answered lost)
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        assert helpers.wait_for(lambda: replaced(serving(base), victim), 120), serving(base)
        assert set(serving(base).values()) == {new}  # the new worker loads the champion
        segments = {p.name.split("-")[1] for p in (folder / "segments").glob("segment-*.arrows")}
        assert str(victim) not in segments
        # the victim's rows are in parts now, the survivor's still in its open segment
        kept = set(logged_requests(folder)) | open_values(folder, predlog.REQUEST_ID)
        assert set(sent) <= kept
        sent += post_rows(base, test_rows)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    logged = logged_requests(folder)
    logged = logged[~logged.isin(before)]
    assert sorted(logged) == sorted(sent)  # all answered rows, each once
    assert not list(
        (folder / "segments").glob("segment-*.arrows")
    )  # every worker flushed at SIGTERM


def test_sigterm_drains_every_worker_under_keep_alive_load(served_root, test_rows, tmp_path):
    with two_workers(served_root, tmp_path, prediction_log="false") as (base, proc):
        until = time.monotonic() + 30
        with ThreadPoolExecutor(16) as pool:
            futures = [
                pool.submit(helpers.client_loop, base, test_rows[i], until) for i in range(16)
            ]
            helpers.wait_for(lambda: answered(base) >= 300, 60)
            proc.send_signal(signal.SIGTERM)
            seen = [f.result() for f in futures]
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert sum(s["reset"] for s in seen) == 0, seen
    assert all(s["refused"] == 1 for s in seen)
    assert sum(s["answered"] for s in seen) >= 300


def test_no_model_to_serve_is_one_error_line_and_exit_1(tmp_path):
    from lib.core.paths import PROJECT_ROOT

    env = {
        **os.environ,
        "QUIRE_SERVER_PORT": str(helpers.free_port()),
        "QUIRE__PROJECT__DATA_DIR": str(tmp_path / "data"),
        "QUIRE__MLFLOW__STORE_DIR": str(tmp_path / "mlruns"),  # empty: no champion
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "--workers", "2"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    error = done.stderr.splitlines()[-1]
    assert (
        error.startswith("error: model 'quire-churn' has no versions")
        and "run the pipeline" in error
    )
    assert "Traceback" not in done.stderr
