"""What each stage depends on and what it produced, as hashes: the basis of incremental runs.

A stage's *fingerprint* hashes everything that decides its result: the notebook's cells (not
their outputs), the parameter sections it receives, the code in ``lib/``, the digests of the
upstream stages' outputs, and its own outside inputs (the raw data files for ingest, the current
data for monitor). Its *outputs digest* names what it produced and is recomputed from the
artefacts themselves (files re-hashed, registry aliases looked up), so an artefact changed or
removed behind Quire's back counts as a change. A stage is up to date when its fingerprint and
its outputs digest both equal those recorded when it last succeeded.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lib.core.atomic import sha256_file
from lib.core.errors import QuireError
from lib.core.layout import MANIFEST, Layout, reference_dir
from lib.core.params import Params
from lib.core.paths import PROJECT_ROOT, resolve
from lib.run.stages import Stage

LIB_DIR = PROJECT_ROOT / "lib"


def _sha(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def notebook_hash(path: Path) -> str:
    """Hash a notebook's cell types, sources and tags: outputs and counts do not count."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return _sha(
        [
            (c["cell_type"], "".join(c["source"]), c.get("metadata", {}).get("tags", []))
            for c in cells
        ]
    )


def code_hash(folder: Path = LIB_DIR) -> str:
    """Hash every Python file and template under ``folder`` (paths and bytes)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in {".py", ".j2"})
    digest = hashlib.sha256()
    for p in files:
        if "__pycache__" in p.parts:
            continue
        digest.update(str(p.relative_to(folder)).encode())
        digest.update(p.read_bytes())
    return digest.hexdigest()[:16]


def _files_digest(paths: Iterable[Path]) -> str:
    return _sha([(str(p), sha256_file(p)) for p in sorted(paths)])


def outside_inputs(stage: Stage, params: Params) -> str:
    """Hash the stage's inputs that no earlier stage produces.

    Inputs that cannot be read hash as ``unreadable``: the stage then runs, and its notebook
    reports the problem where the user looks for it.
    """
    from lib.core import tracking
    from lib.data import feedback

    model = tracking.model_name(params)
    try:
        if stage.name == "ingest":
            labels = feedback.labels_digest(params.project.data_dir, model)
            labels = labels if params.ingest.feedback else ""
            if params.data.source in ("generator", "penguins"):
                return labels
            from lib.data.readers import expand_source

            return _files_digest(expand_source(str(resolve(params.data.source)))) + labels
        if stage.name == "monitor":
            spec = params.monitor.labels
            labels = ""
            if spec == "feedback":
                labels = feedback.labels_digest(params.project.data_dir, model)
            elif spec:
                from lib.data.readers import expand_source

                labels = _files_digest(expand_source(str(resolve(spec))))
            return _current_data(params) + labels
    except (QuireError, OSError):
        return f"unreadable {uuid.uuid4()}"  # never equal to a recorded fingerprint
    return ""


def _current_data(params: Params) -> str:
    spec = params.monitor.current
    if spec == "log":  # the log only grows: names and sizes of its parts say what it holds
        folder = Layout.of(params, staged=False).predictions
        return _sha([(p.name, p.stat().st_size) for p in sorted(folder.glob("part-*.parquet"))])
    if spec in ("production", "penguins"):
        return spec  # produced by ingest (in its outputs digest) or shipped with a package
    from lib.data.readers import expand_source

    return _files_digest(expand_source(str(resolve(spec))))


def components(
    stage: Stage, params: Params, upstream: Sequence[str], notebooks_dir: Path, lib_hash: str
) -> dict[str, str]:
    """Return the hashes of what the stage depends on, by kind (see the module docstring)."""
    return {
        "notebook": notebook_hash(notebooks_dir / stage.notebook),
        "params": _sha(params.section_dicts(stage.sections)),
        "lib": lib_hash,
        "upstream": _sha(list(upstream)),
        "inputs": _sha(outside_inputs(stage, params)),
    }


def combine(parts: dict[str, str]) -> str:
    """Return one fingerprint from the components."""
    return _sha(parts)


def outputs_digest(stage: Stage, params: Params) -> str | None:
    """Return the digest of what the stage produced, or None when it is missing or damaged."""
    try:
        return _DIGESTS[stage.name](params)
    except (OSError, ValueError, KeyError, LookupError):
        return None


def _ingest(params: Params) -> str | None:
    folder = Layout.of(params).processed
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    for info in [*manifest["splits"].values(), manifest["preprocessor"]]:
        if sha256_file(folder / info["file"]) != info["sha256"]:
            return None
    batch = manifest.get("production_batch")
    extra = sha256_file(Path(batch)) if batch else ""
    return _sha(sha256_file(folder / MANIFEST), extra)


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


def _train(params: Params) -> str | None:
    from lib.core import tracking

    version = _alias(params, tracking.CHALLENGER)
    return None if version is None else _sha(version.name, version.version, version.run_id)


def _evaluate(params: Params) -> str | None:
    from lib.core import tracking
    from lib.model.reference import DRIFT_PROFILE, REFERENCE

    champion = _alias(params, tracking.CHAMPION)
    challenger = _alias(params, tracking.CHALLENGER)
    if champion is None or challenger is None:
        return None
    folder = reference_dir(params.project.data_dir, champion.name, str(champion.version))
    decided = challenger.tags.get("quire.reference_dir")  # set once the challenger is evaluated
    return _sha(
        champion.version,
        challenger.version,
        decided,
        sha256_file(folder / REFERENCE),
        sha256_file(folder / DRIFT_PROFILE),
    )


def _monitor(params: Params) -> str | None:

    latest = Layout.of(params).monitoring_summary
    return _sha(json.loads(latest.read_text(encoding="utf-8"))["run_id"])


_DIGESTS = {"ingest": _ingest, "train": _train, "evaluate": _evaluate, "monitor": _monitor}
