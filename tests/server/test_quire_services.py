"""The long-running ``quire`` subcommands, for real: serve, replay into it, lineage, MLflow UI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from lib.core.paths import PROJECT_ROOT
from tests.conftest import tiny_training_overrides
from tests.server import helpers

pytestmark = pytest.mark.slow


def _layers(root: Path) -> list[str]:
    overrides = [*tiny_training_overrides(root), "evaluate.bootstrap=0"]
    return [arg for o in overrides for arg in ("-p", o)]


def quire(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lib.cli", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, **kw,
    )  # fmt: skip


@contextmanager
def started(args: list[str], ready: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lib.cli", *args],
            cwd=PROJECT_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
            stdout=out, stderr=out,
        )  # fmt: skip
        try:
            helpers.wait_until_ready(ready, proc, 120)
            yield
        finally:
            helpers.stop(proc)


def test_serve_replay_and_lineage_through_quire(served_root, tmp_path):
    port = helpers.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "QUIRE__PROJECT__DATA_DIR": str(served_root / "data"),
        "QUIRE__MLFLOW__STORE_DIR": str(served_root / "mlruns"),
        "QUIRE_SERVER_LOG_FLUSH_SECONDS": "1",
    }
    rows = tmp_path / "rows.parquet"
    test = pd.read_parquet(served_root / "data" / "processed" / "churn" / "test.parquet")
    test.head(12).to_parquet(rows)
    ids = tmp_path / "ids.csv"
    with started(["serve", "--port", str(port)], f"{base}/health/ready", tmp_path / "s.log", env):
        assert httpx.get(f"{base}/model", timeout=30).json()["version"] == "1"
        sent = quire(
            "replay", str(rows), *_layers(served_root), "--url", base, "--batch-size", "4",
            "--ids-out", str(ids), "--no-progress",
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr[-2000:]
    with ids.open() as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == 12 and len({r["request_id"] for r in logged}) == 3
    found = quire("lineage", logged[0]["request_id"], *_layers(served_root))
    assert found.returncode == 0, found.stderr[-2000:]
    assert '"version": "1"' in found.stdout and logged[0]["request_id"] in found.stdout


def test_mlflow_ui_opens_the_projects_store(served_root, tmp_path):
    port = helpers.free_port()
    args = ["mlflow-ui", "--port", str(port), *_layers(served_root)]
    with started(args, f"http://127.0.0.1:{port}/health", tmp_path / "ui.log", {}):
        search = httpx.get(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/search", timeout=30
        ).json()
    assert [m["name"] for m in search["registered_models"]] == ["quire-churn"]
