"""The ``quire.*`` tags on MLflow model versions: what a version is, where it came from.

Train writes the provenance tags when it registers a version (:func:`provenance_tags`,
:func:`version_tags`), evaluate adds the decision threshold, the reference folder and the test
score (:func:`evaluation_tags`); everything that reads them (evaluate, the server, run_all's
digests, lineage) goes through :func:`read_version_tags`, which parses each value once. The tags on
MLflow runs (:func:`stage_tags`, :func:`best_family_tags`, :func:`promotion_tags`) are for people
reading the MLflow UI; Quire writes them here and never reads them back. Versions
registered by earlier Quire versions read unchanged (their threshold may be the text ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "quire."


@dataclass(frozen=True)
class VersionTags:
    """The ``quire.*`` tags of one model version (None where a tag is absent)."""

    run_id: str | None = None
    family: str | None = None
    dataset: str | None = None
    task: str | None = None
    params_digest: str | None = None
    manifest_sha256: str | None = None
    schema_sha256: str | None = None
    git_commit: str | None = None
    primary_metric: str | None = None
    threshold: float | None = None
    reference_dir: str | None = None


def provenance_tags(
    *,
    dataset: str,
    task: str,
    params_digest: str,
    manifest_sha256: str,
    schema_sha256: str,
    git_commit: str,
) -> dict[str, str]:
    """Return the tags a training run and the version it registers carry: data, params, code."""
    return {
        f"{PREFIX}dataset": dataset,
        f"{PREFIX}task": task,
        f"{PREFIX}params_digest": params_digest,
        f"{PREFIX}manifest_sha256": manifest_sha256,
        f"{PREFIX}schema_sha256": schema_sha256,
        f"{PREFIX}git_commit": git_commit,
    }


def version_tags(*, family: str, run_id: str, primary_metric: str) -> dict[str, str]:
    """Return the tags naming the registered version's family, run and selection metric."""
    return {
        f"{PREFIX}family": family,
        f"{PREFIX}run_id": run_id,
        f"{PREFIX}primary_metric": primary_metric,
    }


def evaluation_tags(
    *, threshold: float | None, reference_dir: str, metric: str, score: float
) -> dict[str, str]:
    """Return the tags evaluate sets on the version: threshold, reference folder, test score."""
    tags = {f"{PREFIX}reference_dir": reference_dir, f"{PREFIX}test_{metric}": f"{score:.6f}"}
    if threshold is not None:
        tags[f"{PREFIX}threshold"] = repr(float(threshold))
    return tags


def promotion_tags(*, promoted: bool, reason: str) -> dict[str, str]:
    """Return the tags evaluate sets on the challenger's training run: the gate's decision."""
    return {
        f"{PREFIX}promotion": "promoted" if promoted else "not promoted",
        f"{PREFIX}promotion_reason": reason,
    }


def best_family_tags(*, family: str, run_id: str) -> dict[str, str]:
    """Return the tags train sets on its parent run: the family it registered, and its run."""
    return {f"{PREFIX}best_family": family, f"{PREFIX}best_run_id": run_id}


def stage_tags(stage: str) -> dict[str, str]:
    """Return the tag naming the stage that wrote a run."""
    return {f"{PREFIX}stage": stage}


def read_version_tags(tags: Mapping[str, str]) -> VersionTags:
    """Return the ``quire.*`` tags of a version (``ModelVersion.tags``), each value parsed."""

    def get(key: str) -> str | None:
        value = tags.get(PREFIX + key)
        return None if value in (None, "", "None") else str(value)

    raw = get("threshold")
    return VersionTags(
        run_id=get("run_id"),
        family=get("family"),
        dataset=get("dataset"),
        task=get("task"),
        params_digest=get("params_digest"),
        manifest_sha256=get("manifest_sha256"),
        schema_sha256=get("schema_sha256"),
        git_commit=get("git_commit"),
        primary_metric=get("primary_metric"),
        threshold=None if raw is None else float(raw),
        reference_dir=get("reference_dir"),
    )
