"""What each stage produced and what it reads from outside the pipeline, as short hashes.

A stage's *outputs digest* names what it produced and is recomputed from the artefacts
themselves (files re-hashed, registry aliases looked up), so an artefact changed or removed
behind Quire's back counts as a change. Its *outside inputs* digest hashes what it reads that no
earlier stage produces (the raw data for ingest, the current data for monitor). Each
:class:`lib.run.stages.Stage` names its two functions from here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lib.core.atomic import sha256_file
from lib.core.contracts.manifest import read_manifest
from lib.core.contracts.summary import read_summary
from lib.core.contracts.tags import read_version_tags
from lib.core.layout import Layout
from lib.core.params import Params
from lib.core.paths import resolve


def sha(*parts: Any) -> str:
    """Return a short hash of JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def files_digest(paths: Iterable[Path]) -> str:
    """Hash files by path and content."""
    return sha([(str(p), sha256_file(p)) for p in sorted(paths)])


def _source_files(spec: str) -> str:
    from lib.data.readers import expand_source

    return files_digest(expand_source(str(resolve(spec))))


def _labels(params: Params) -> str:
    from lib.data import feedback

    return feedback.labels_digest(params.project.data_dir, Layout.of(params).model)


# Outside inputs. A QuireError or OSError here makes the stage run (lib.run.fingerprint).


def ingest_inputs(params: Params) -> str:
    """Hash the raw files ingest reads (none for the built-in sources) and the labels it adds."""
    labels = _labels(params) if params.ingest.feedback else ""
    if params.data.source in ("generator", "penguins"):
        return labels
    return _source_files(params.data.source) + labels


def monitor_inputs(params: Params) -> str:
    """Hash the current data the monitor compares with the reference, and its labels."""
    spec = params.monitor.labels
    labels = ""
    if spec == "feedback":
        labels = _labels(params)
    elif spec:
        labels = _source_files(spec)
    return _current_data(params) + labels


def _current_data(params: Params) -> str:
    spec = params.monitor_current()
    if spec == "log":  # the log only grows: names and sizes of its parts say what it holds
        folder = Layout.of(params, staged=False).predictions
        return sha([(p.name, p.stat().st_size) for p in sorted(folder.glob("part-*.parquet"))])
    if spec in ("production", "penguins"):
        return spec  # produced by ingest (in its outputs digest) or shipped with a package
    return _source_files(spec)


# Outputs digests. None, or OSError, ValueError, KeyError, LookupError: missing or damaged.


def ingest_outputs(params: Params) -> str | None:
    """Hash the processed splits and preprocessor, checked against ingest's manifest."""
    layout = Layout.of(params, staged=False)
    folder = layout.processed
    manifest = read_manifest(layout.manifest)
    for file, digest in manifest.files().items():
        if sha256_file(folder / file) != digest:
            return None
    batch = manifest.production_batch
    extra = sha256_file(Path(batch)) if batch else ""
    return sha(sha256_file(layout.manifest), extra)


_SET_UP: set[str] = set()


def _alias(params: Params, alias: str) -> Any:
    from lib.core import tracking
    from lib.core.errors import ModelNotFoundError

    uri = tracking.tracking_uri(params)
    if uri not in _SET_UP:  # once per process: each setup costs a store round trip
        tracking.setup(params)
        _SET_UP.add(uri)
    try:
        return tracking.version_by_alias(tracking.model_name(params), alias)
    except ModelNotFoundError:
        return None


def train_outputs(params: Params) -> str | None:
    """Hash the challenger version train registered."""
    from lib.core import tracking

    version = _alias(params, tracking.CHALLENGER)
    return None if version is None else sha(version.name, version.version, version.run_id)


def evaluate_outputs(params: Params) -> str | None:
    """Hash the champion and challenger evaluate decided on, and the champion's reference."""
    from lib.core import tracking
    from lib.model.reference import DRIFT_PROFILE, REFERENCE

    champion = _alias(params, tracking.CHAMPION)
    challenger = _alias(params, tracking.CHALLENGER)
    if champion is None or challenger is None:
        return None
    folder = Layout.of(params, model=champion.name, staged=False).reference(str(champion.version))
    decided = read_version_tags(challenger.tags).reference_dir  # set once it is evaluated
    return sha(
        champion.version,
        challenger.version,
        decided,
        sha256_file(folder / REFERENCE),
        sha256_file(folder / DRIFT_PROFILE),
    )


def monitor_outputs(params: Params) -> str | None:
    """Hash the latest monitoring run."""
    latest = Layout.of(params, staged=False).monitoring_summary
    return sha(read_summary(latest).run_id)
