"""Where a registered model version came from: runs, params digest, git commit, training data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lib.core.logs import get_logger

log = get_logger(__name__)

MANIFEST_ARTIFACT = "data_manifest.json"  # logged on the training run by lib.model.train


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
    tags = dict(mv.tags)
    run_id = str(tags.get("quire.run_id") or mv.run_id)
    info: dict[str, Any] = {
        "name": name,
        "version": str(version),
        "aliases": list(getattr(mv, "aliases", []) or []),
        "run_id": run_id,
        "family": tags.get("quire.family"),
        "params_digest": tags.get("quire.params_digest"),
        "git_commit": tags.get("quire.git_commit"),
        "manifest_sha256": tags.get("quire.manifest_sha256"),
        "reference_dir": tags.get("quire.reference_dir"),
        "registered_at": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC").isoformat(),
    }
    try:
        run = client.get_run(run_id)
        parent = run.data.tags.get("mlflow.parentRunId")
        info["parent_run_id"] = parent
        info["mlflow_url"] = f"{mlflow_ui()}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
        import mlflow

        info["data_manifest"] = _manifest_summary(
            mlflow.artifacts.load_dict(f"runs:/{parent or run_id}/{MANIFEST_ARTIFACT}")
        )
    except (MlflowException, OSError, ValueError) as exc:  # an older run without the artefact
        info["data_manifest"] = None
        info["note"] = f"training data manifest not found: {str(exc).splitlines()[0][:200]}"
    return info


def _manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    keep = ("dataset", "created_at", "params_digest", "task", "target", "rows", "schema_sha256")
    summary = {k: manifest.get(k) for k in keep}
    summary["sources"] = [
        {"path": s.get("path"), "sha256": s.get("sha256")} for s in manifest.get("sources", [])
    ]
    summary["splits"] = {k: v.get("rows") for k, v in manifest.get("splits", {}).items()}
    return summary
