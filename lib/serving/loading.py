"""Loading a model with its contract: the champion (or a URI), its schema, facts and fast path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from lib.core import tracking
from lib.core.contracts.tags import read_version_tags
from lib.core.errors import ModelNotFoundError
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.data.schema import Schema
from lib.serving.contract import check_rows, probe_rows
from lib.serving.fastpath import compile_pipeline
from lib.serving.predictor import LoadedModel

log = get_logger(__name__)


def _resolve_version(params: Params) -> tuple[Any, str | None]:
    """Return the champion, or else the newest version, of the project's registered model."""
    from mlflow import MlflowClient

    name = tracking.model_name(params)
    try:
        return tracking.version_by_alias(name, tracking.CHAMPION), tracking.CHAMPION
    except ModelNotFoundError:
        versions = MlflowClient().search_model_versions(f"name = '{name}'")
        if not versions:
            raise ModelNotFoundError(
                f"model {name!r} has no versions in {tracking.tracking_uri(params)}; run the "
                "pipeline first (make run) or set QUIRE_SERVER_MODEL_URI"
            ) from None
        return max(versions, key=lambda v: int(v.version)), None


def load_model(params: Params, uri: str | None = None, *, fast: bool = True) -> LoadedModel:
    """Load ``uri`` (an MLflow model URI or local path), or the project's champion.

    Parameters
    ----------
    params
        Gives the MLflow store and the registered model name.
    uri
        ``models:/name@alias``, ``models:/name/3``, ``runs:/...`` or a local model folder.
    fast
        Compile the pipeline into its fast path (used only if it matches the pipeline exactly).

    Returns
    -------
    LoadedModel
        The pipeline, its schema (from its training run, else the processed data's) and facts.
    """
    import mlflow

    tracking.setup(params)
    if uri is None:
        version, alias = _resolve_version(params)
        uri = f"models:/{version.name}/{version.version}"
    else:
        version, alias = _version_for_uri(uri)
    try:
        pipeline = mlflow.sklearn.load_model(uri)
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        raise ModelNotFoundError(f"cannot load model {uri!r}: {str(exc).splitlines()[0]}") from None
    if version is None:
        model = LoadedModel(pipeline, _local_schema(params), uri)
        return with_fast_path(model) if fast else model
    tags = read_version_tags(version.tags)
    run_id = tags.run_id or version.run_id
    metrics = mlflow.get_run(run_id).data.metrics if run_id else {}
    model = LoadedModel(
        pipeline=pipeline,
        schema=_run_schema(run_id) if run_id else _local_schema(params),
        uri=uri,
        name=version.name,
        version=str(version.version),
        alias=alias,
        run_id=run_id,
        threshold=tags.threshold,
        metrics={k: float(v) for k, v in metrics.items()},
        trained_at=pd.Timestamp(version.creation_timestamp, unit="ms", tz="UTC").isoformat(),
    )
    return with_fast_path(model) if fast else model


def with_fast_path(model: LoadedModel) -> LoadedModel:
    """Return ``model`` with its compiled fast path, if that matches the pipeline bit for bit."""
    fast = compile_pipeline(model.pipeline)
    if fast is None:
        log.info("fast_path_unsupported", model=model.name, version=model.version)
        return model
    batch = check_rows(probe_rows(model.schema), model.schema)
    if not fast.verify(model.pipeline, batch.columns, batch.frame()):
        log.warning("fast_path_mismatch", model=model.name, version=model.version)
        return model
    return replace(model, fast=fast)


def registered_version(params: Params, uri: str | None = None) -> str | None:
    """Return the registry version ``uri`` (default: the project's champion) points at now.

    None for URIs that name a fixed model (a version number, a run, a local folder).
    """
    tracking.setup(params)
    if uri is None:
        return str(_resolve_version(params)[0].version)
    if uri.startswith("models:/") and "@" in uri:
        return str(_version_for_uri(uri)[0].version)
    return None


def _version_for_uri(uri: str) -> tuple[Any, str | None]:
    from mlflow import MlflowClient

    if not uri.startswith("models:/"):
        return None, None
    name, _, ref = uri.removeprefix("models:/").partition("@")
    if ref:
        return tracking.version_by_alias(name, ref), ref
    name, _, number = uri.removeprefix("models:/").partition("/")
    return MlflowClient().get_model_version(name, number), None


def _run_schema(run_id: str) -> Schema:
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="schema.json")
    return Schema.load(Path(path))


def _local_schema(params: Params) -> Schema:
    from lib.data.ingest import SCHEMA

    return Schema.load(Layout.of(params).processed / SCHEMA)
