"""``manifest.json``: what the ingest stage produced (splits, preprocessor) and from what.

Written once per ingest run into the processed folder (:func:`write_manifest`), read by every
later stage and by run_all's digests (:func:`read_manifest`), and logged with the training run as
``data_manifest.json`` (:meth:`Manifest.as_json`). The JSON on disk is the model's fields as
they are named here: projects made by earlier versions read unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from lib.core.atomic import write_text
from lib.core.contracts.files import read_json_model

MANIFEST_ARTIFACT = "data_manifest.json"  # the manifest, logged on the training run


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class SourceFile(_Frozen):
    """One input file: where it was, its size and content hash."""

    path: str
    bytes: int
    sha256: str


class SplitFile(_Frozen):
    """One split's Parquet file, its rows, hash and (classification) class counts."""

    file: str
    rows: int
    sha256: str
    class_counts: dict[str, int] | None = None


class ArtefactFile(_Frozen):
    """A file of the processed folder and its content hash."""

    file: str
    sha256: str


class Manifest(_Frozen):
    """The processed data of one ingest run."""

    dataset: str
    created_at: str
    params_digest: str
    task: str
    target: str
    rows: int
    schema_sha256: str
    split_method: str
    sources: list[SourceFile]
    production_batch: str | None = None
    preprocessor: ArtefactFile
    splits: dict[str, SplitFile]

    def files(self) -> dict[str, str]:
        """Return file name -> sha256 for every file the manifest vouches for."""
        found = {s.file: s.sha256 for s in self.splits.values()}
        return found | {self.preprocessor.file: self.preprocessor.sha256}

    def as_json(self) -> dict[str, Any]:
        """Return the manifest as the JSON mapping written to disk and logged to MLflow."""
        return self.model_dump(mode="json")


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write ``manifest`` to ``path`` (replaced atomically)."""
    write_text(path, json.dumps(manifest.as_json(), indent=2) + "\n")


def read_manifest(path: Path, hint: str = "run the ingest stage") -> Manifest:
    """Read the manifest at ``path``; a missing or unreadable one names the file and ``hint``."""
    return read_json_model(
        path,
        Manifest,
        what="a manifest",
        missing="no processed data here",
        fix=hint,
        check="manifest",
    )
