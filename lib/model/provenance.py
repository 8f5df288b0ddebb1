"""Where a registered model version came from: runs, params digest, git commit, training data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lib.core.contracts.manifest import MANIFEST_ARTIFACT, Manifest
from lib.core.contracts.tags import read_version_tags
from lib.core.logs import get_logger

log = get_logger(__name__)


def known_lineage(name: str, version: str) -> dict[str, Any] | None:
    """Return :func:`model_lineage`, or None (logged) when the registry cannot give it."""
    from mlflow.exceptions import MlflowException

    try:
        return model_lineage(name, version)
    except MlflowException as exc:
        log.warning("lineage_not_found", model=name, version=version, error=str(exc)[:200])
        return None


def model_lineage(name: str, version: str) -> dict[str, Any]:
    """Return where a model version came from: runs, params, code and training data."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from lib.core.tracking import mlflow_ui

    client = MlflowClient()
    mv = client.get_model_version(name, version)
    tags = read_version_tags(mv.tags)
    run_id = str(tags.run_id or mv.run_id)
    info: dict[str, Any] = {
        "name": name,
        "version": str(version),
        "aliases": list(getattr(mv, "aliases", []) or []),
        "run_id": run_id,
        "family": tags.family,
        "params_digest": tags.params_digest,
        "git_commit": tags.git_commit,
        "manifest_sha256": tags.manifest_sha256,
        "reference_dir": tags.reference_dir,
        "registered_at": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC").isoformat(),
    }
    try:
        run = client.get_run(run_id)
        parent = run.data.tags.get("mlflow.parentRunId")
        info["parent_run_id"] = parent
        info["mlflow_url"] = f"{mlflow_ui()}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
        import mlflow

        logged = mlflow.artifacts.load_dict(f"runs:/{parent or run_id}/{MANIFEST_ARTIFACT}")
        info["data_manifest"] = _manifest_summary(Manifest.model_validate(logged))
    except (MlflowException, OSError, ValueError) as exc:  # an older run without the artefact
        info["data_manifest"] = None
        info["note"] = f"training data manifest not found: {str(exc).splitlines()[0][:200]}"
    return info


def _manifest_summary(manifest: Manifest) -> dict[str, Any]:
    keep = ("dataset", "created_at", "params_digest", "task", "target", "rows", "schema_sha256")
    summary: dict[str, Any] = {k: getattr(manifest, k) for k in keep}
    summary["sources"] = [{"path": s.path, "sha256": s.sha256} for s in manifest.sources]
    summary["splits"] = {k: v.rows for k, v in manifest.splits.items()}
    return summary
