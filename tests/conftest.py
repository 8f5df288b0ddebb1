"""Shared fixtures: every test writes under its own tmp_path, never into the project."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from lib.core.params import Params, folder_overrides, load_params
from lib.core.paths import PARAMS_DIR

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests track into their own tmp_path stores, never into a tracking server the user points at.
for _name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
    os.environ.pop(_name, None)


def dirs_overrides(root: Path) -> list[str]:
    return folder_overrides(root)


@pytest.fixture
def tiny_params(tmp_path: Path) -> Params:
    """CI-sized generator params writing under tmp_path."""
    return load_params([PARAMS_DIR / "ci.yaml"], dirs_overrides(tmp_path))


@pytest.fixture
def csv_params(tmp_path: Path):
    """Factory: params that ingest a CSV/Parquet file or glob written by the test."""

    def make(source: Path | str, *extra: str) -> Params:
        overrides = [
            f"data.source={source}",
            "data.target=label",
            "data.id_column=null",
            "data.date_column=null",
            "project.name=fixture",
            "ingest.split.validation=0.2",
            "ingest.split.test=0.2",
            *dirs_overrides(tmp_path),
            *extra,
        ]
        return load_params(overrides=overrides)

    return make


def small_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A small table with numeric, categorical, boolean and date columns and a binary label."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(1, 70, n),
            "charges": rng.normal(60, 10, n).round(2),
            "plan": rng.choice(["basic", "pro", "max"], n),
            "paperless": rng.choice(["yes", "no"], n),
            "joined": pd.date_range("2020-01-01", periods=n, freq="7D").strftime("%Y-%m-%d"),
            "label": np.tile([0, 1, 0], n // 3 + 1)[:n],
        }
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name → bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def tiny_training_overrides(root: Path) -> list[str]:
    """Overrides for a fast train stage on 600 generated rows, tracked under ``root``."""
    return [
        *dirs_overrides(root),
        "generator.rows=600",
        "generator.production.rows=0",
        "train.cv_folds=3",
        "train.families=[logistic, hist_gradient_boosting]",
        "train.grids={logistic: {C: [0.1, 1.0]}, hist_gradient_boosting: {max_leaf_nodes: [7, 15]}}",
        "train.learning_curve=false",
    ]


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ingested tiny data (no training yet), shared by a test module."""
    from lib.data.ingest import run_ingest

    root = tmp_path_factory.mktemp("trained")
    run_ingest(load_params(overrides=tiny_training_overrides(root)))
    return root


def monitor_overrides(root: Path, *extra: str) -> list[str]:
    """Overrides for a tiny trained, evaluated and monitored project under ``root``."""
    return [
        *tiny_training_overrides(root),
        "generator.production.rows=1500",
        "train.families=[logistic]",
        "evaluate.bootstrap=0",
        "monitor.bootstrap=20",
        "monitor.evidently_max_rows=400",
        *extra,
    ]


@pytest.fixture(scope="session")
def monitored_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with a champion model and its monitoring reference (no monitor run yet)."""
    from lib.data.ingest import run_ingest
    from lib.model.evaluate import run_evaluation
    from lib.model.train import run_training

    root = tmp_path_factory.mktemp("monitored")
    params = load_params(overrides=monitor_overrides(root))
    run_ingest(params)
    run_training(params)
    run_evaluation(params)
    return root


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri() -> Iterator[None]:
    """Drop MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID after each test: mlflow exports them
    (set_tracking_uri, set_experiment), and every later subprocess (run_all, a server) would
    then write to that test's store and experiment."""
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
