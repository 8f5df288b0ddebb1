"""What each stage depends on, as hashes: the basis of incremental runs.

A stage's *fingerprint* hashes everything that decides its result: the notebook's cells (not
their outputs), the parameter sections it receives, the code in ``lib/``, the digests of the
upstream stages' outputs, and its own outside inputs (``Stage.outside``). Its *outputs digest*
(``Stage.digest``, :mod:`lib.run.digests`) names what it produced. A stage is up to date when its
fingerprint and its outputs digest both equal those recorded when it last succeeded.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path

from lib.core.errors import DataValidationError, QuireError
from lib.core.params import Params
from lib.core.paths import PROJECT_ROOT
from lib.run.digests import sha
from lib.run.stages import Stage

LIB_DIR = PROJECT_ROOT / "lib"


def notebook_hash(path: Path) -> str:
    """Hash a notebook's cell types, sources and tags: outputs and counts do not count."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return sha(
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


def outside_inputs(stage: Stage, params: Params) -> str:
    """Hash the stage's inputs that no earlier stage produces.

    Inputs that cannot be read hash as ``unreadable``: the stage then runs, and its notebook
    reports the problem where the user looks for it.
    """
    if stage.outside is None:
        return ""
    try:
        return stage.outside(params)
    except (QuireError, OSError):
        return f"unreadable {uuid.uuid4()}"  # never equal to a recorded fingerprint


def components(
    stage: Stage, params: Params, upstream: Sequence[str], notebooks_dir: Path, lib_hash: str
) -> dict[str, str]:
    """Return the hashes of what the stage depends on, by kind (see the module docstring)."""
    return {
        "notebook": notebook_hash(notebooks_dir / stage.notebook),
        "params": sha(params.section_dicts(stage.sections)),
        "lib": lib_hash,
        "upstream": sha(list(upstream)),
        "inputs": sha(outside_inputs(stage, params)),
    }


def combine(parts: dict[str, str]) -> str:
    """Return one fingerprint from the components."""
    return sha(parts)


def outputs_digest(stage: Stage, params: Params) -> str | None:
    """Return the digest of what the stage produced, or None when it is missing or damaged."""
    if stage.digest is None:
        return None
    try:
        return stage.digest(params)
    except (OSError, ValueError, KeyError, LookupError, DataValidationError):
        return None
