"""The staging area a stage's kernel writes into, seen from inside the stage.

run_all (:mod:`lib.run.staging`) gives every stage a staging area: its declared outputs cloned
with hard links, and ``QUIRE_STAGING`` set in the stage's kernel. While it is set,
:func:`location` sends the stage's writes (and its reads of its own outputs) into the clone, and
:mod:`lib.core.tracking` records registry changes (aliases, version tags) in the area instead of
making them (:func:`record_registry`). This module is the part every stage needs; creating,
committing and promoting areas is :mod:`lib.run.staging`'s.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lib.core.atomic import write_text

ENV = "QUIRE_STAGING"
AREA = ".staging"  # under the data and the reports folders
JOURNAL = "journal.json"  # in the data folder's staging area: a promotion in progress
MAP = "staging.json"
REGISTRY = "registry.json"
KERNELS = "kernels.json"


@dataclass(frozen=True)
class Staging:
    """One stage's staging area.

    Parameters
    ----------
    root
        The area's folder under ``<data>/.staging/`` (its map, registry changes and kernels).
    outputs
        Final path -> staged path, for every declared output of the stage.
    roots
        The area's folders (one under the data folder, one under the reports folder).
    stage
        The stage's name.
    """

    root: Path
    outputs: dict[str, str]
    roots: tuple[str, ...]
    stage: str

    @classmethod
    def begin(
        cls,
        stage: str,
        finals: Sequence[Path],
        data_dir: Path,
        reports_dir: Path,
        name: str | None = None,
    ) -> Staging:
        """Create the area and clone the current outputs into it.

        Parameters
        ----------
        stage
            The stage's name.
        finals
            The stage's declared outputs (each under ``data_dir`` or ``reports_dir``).
        data_dir, reports_dir
            The project's folders.
        name
            The area's name (:func:`area_name`), when a kernel was already told where it is.
        """
        run = name or area_name(stage)
        bases = {data_dir: data_dir / AREA / run, reports_dir: reports_dir / AREA / run}
        outputs = {}
        for final in finals:
            base = next(b for b in bases if final.is_relative_to(b))
            staged = bases[base] / final.relative_to(base)
            _clone(final, staged)
            outputs[str(final)] = str(staged)
        for folder in bases.values():
            folder.mkdir(parents=True, exist_ok=True)
        staging = cls(bases[data_dir], outputs, tuple(str(b) for b in bases.values()), stage)
        write_text(staging.root / MAP, json.dumps(staging.__dict__ | {"root": str(staging.root)}))
        return staging

    @classmethod
    def load(cls, root: Path) -> Staging:
        """Read the area's map (written by :meth:`begin`)."""
        raw = json.loads((root / MAP).read_text(encoding="utf-8"))
        return cls(Path(raw["root"]), raw["outputs"], tuple(raw["roots"]), raw["stage"])

    def environ(self) -> dict[str, str]:
        """Return the environment variables a stage's kernel needs to write here."""
        return {ENV: str(self.root)}

    def staged(self, final: Path) -> Path:
        """Return where the stage writes ``final``, one of its declared outputs."""
        return Path(self.outputs[str(final)])

    def registry_changes(self) -> dict[str, Any]:
        """Return the aliases and version tags the stage set (empty when none)."""
        path = self.root / REGISTRY
        if not path.exists():
            return {"aliases": {}, "tags": []}
        changes: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return changes

    def record_kernels(self, pids: Sequence[int]) -> None:
        """Remember the stage's kernel processes, to stop them if run_all dies first."""
        write_text(self.root / KERNELS, json.dumps(list(pids)))

    def discard(self) -> None:
        """Remove the area: nothing of it is promoted."""
        for folder in self.roots:
            shutil.rmtree(folder, ignore_errors=True)


def area_name(stage: str) -> str:
    """Return a new staging area name for ``stage``."""
    return f"{stage}-{uuid.uuid4().hex[:8]}"


def area_root(data_dir: Path, name: str) -> Path:
    """Return the folder of the staging area ``name`` (what ``QUIRE_STAGING`` points at)."""
    return data_dir / AREA / name


def _clone(final: Path, staged: Path) -> None:
    """Copy ``final`` (file or folder, if present) to ``staged`` with hard links."""
    staged.parent.mkdir(parents=True, exist_ok=True)
    if final.is_dir():
        shutil.copytree(final, staged, copy_function=_link)
    elif final.exists():
        _link(str(final), str(staged))


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy is as good, only slower
        shutil.copy2(src, dst)


@lru_cache(maxsize=4)
def _active(root: str) -> Staging:
    return Staging.load(Path(root))


def active() -> Staging | None:
    """Return the staging area this process writes to (``QUIRE_STAGING``), or None."""
    root = os.environ.get(ENV)
    return _active(root) if root else None


def location(final: Path) -> Path:
    """Return where to read and write ``final`` in this process.

    Inside a staged stage run, a path at or under one of the stage's outputs maps into the
    staging area; everything else (the stage's inputs, other stages' outputs) is read in place.
    """
    staging = active()
    return final if staging is None else _remap(final, staging.outputs.items())


def published(path: Path) -> Path:
    """Return the final location of a path that :func:`location` mapped into a staging area."""
    staging = active()
    if staging is None:
        return path
    return _remap(path, ((staged, out) for out, staged in staging.outputs.items()))


def _remap(path: Path, pairs: Iterable[tuple[str, str]]) -> Path:
    """Move ``path`` from under the first ``from`` folder containing it to under its ``to``."""
    for source, target in pairs:
        if path == Path(source) or path.is_relative_to(source):
            return Path(target) / path.relative_to(source)
    return path


def record_registry(kind: str, *values: str) -> bool:
    """Record a registry change in the active staging area; False when there is none.

    ``kind`` is ``alias`` (model, alias, version) or ``tag`` (model, version, key, value).
    """
    staging = active()
    if staging is None:
        return False
    changes = staging.registry_changes()
    if kind == "alias":
        model, alias, version = values
        changes["aliases"][alias] = [model, version]
    else:
        changes["tags"].append(list(values))
    write_text(staging.root / REGISTRY, json.dumps(changes, indent=1))
    return True


def staged_alias(model: str, alias: str) -> str | None:
    """Return the version the running stage pointed ``alias`` at, or None if it did not."""
    staging = active()
    if staging is None:
        return None
    found = staging.registry_changes()["aliases"].get(alias)
    return found[1] if found and found[0] == model else None
