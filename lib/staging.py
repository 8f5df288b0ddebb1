"""Crash-safe stage runs: outputs are built in a staging area and promoted as one set.

run_all gives every stage a staging area before it starts. Each of the stage's declared outputs
(``Stage.outputs``: folders and files under the data and reports folders) is cloned into it with
hard links, and the stage's kernel gets the area's path in ``QUIRE_STAGING``. While it is set,
:func:`location` sends the stage's writes (and its reads of its own outputs) into the clone, and
:mod:`lib.tracking` records registry changes (aliases, version tags) in the area instead of
making them. Nothing the users, the server or the dashboard read changes while a stage runs.

On success run_all writes a journal, the commit point, then moves every staged output into
place, applies the registry changes and records the stage's status. A crash before the journal
leaves the previous set untouched (the area is simply discarded at the next start); a crash after
it is rolled forward by :func:`recover` at the next start, from the journal alone. Every step of
the roll-forward is idempotent, so a crash during recovery is recovered too.

Writers in lib replace files by rename (:mod:`lib.atomic`), never in place, so a hard-linked
clone never changes the file it was cloned from.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lib.atomic import write_text
from lib.logs import get_logger

log = get_logger(__name__)

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


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block (a promotion finishes before the process stops)."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def commit(staging: Staging, data_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write the journal: from here on the stage's new outputs are the truth.

    Parameters
    ----------
    staging
        The stage's area, its outputs complete.
    data_dir
        The project's data folder (the journal lives in its staging area).
    record
        What run_all needs to finish the promotion (the stage's status entry).

    Returns
    -------
    dict
        The journal.
    """
    journal = {
        "stage": staging.stage,
        "moves": [
            [staged, final, Path(staged).exists()] for final, staged in staging.outputs.items()
        ],
        "registry": staging.registry_changes(),
        "roots": list(staging.roots),
        "record": record,
    }
    write_text(data_dir / AREA / JOURNAL, json.dumps(journal, indent=1))
    return journal


def apply(journal: dict[str, Any]) -> None:
    """Move the staged outputs into place and apply the registry changes (idempotent)."""
    for staged, final, present in journal["moves"]:
        _move(Path(staged), Path(final), present)
    changes = journal["registry"]
    if changes["aliases"] or changes["tags"]:
        from lib import tracking

        for model, version, key, value in changes["tags"]:
            tracking.set_version_tag(model, version, key, value, staged=False)
        for alias, (model, version) in changes["aliases"].items():
            tracking.set_alias(model, alias, version, staged=False)


def _move(staged: Path, final: Path, present: bool) -> None:
    aside = final.with_name(f".{final.name}.replaced")
    if present and (staged.exists() or staged.is_symlink()):
        if staged.is_dir():
            if aside.exists():
                shutil.rmtree(aside)
            if final.exists():
                os.rename(final, aside)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, final)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
    elif not present:  # the stage's new set has no such output: drop the old one
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
    if aside.exists():
        shutil.rmtree(aside)


def finish(journal: dict[str, Any], data_dir: Path) -> None:
    """Drop the journal and the area once the promotion is complete."""
    (data_dir / AREA / JOURNAL).unlink(missing_ok=True)
    for folder in journal["roots"]:
        shutil.rmtree(folder, ignore_errors=True)


def pending_journal(data_dir: Path) -> dict[str, Any] | None:
    """Return the journal of a promotion a crash interrupted, or None."""
    path = data_dir / AREA / JOURNAL
    if not path.exists():
        return None
    journal: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return journal


def discard_all(data_dir: Path, reports_dir: Path) -> list[str]:
    """Remove every staging area left by a crash (their kernels stopped first).

    Returns
    -------
    list of str
        The stages whose areas were discarded.
    """
    stages = []
    for area in sorted((data_dir / AREA).glob("*-*")):
        if (area / KERNELS).exists():
            _stop_kernels(json.loads((area / KERNELS).read_text(encoding="utf-8")))
        stages.append(area.name.rsplit("-", 1)[0])
    for base in (data_dir, reports_dir):
        for area in (base / AREA).glob("*-*"):
            shutil.rmtree(area, ignore_errors=True)
    return stages


def _stop_kernels(pids: Sequence[int]) -> None:
    """SIGKILL what is left of the recorded kernels: each one's whole process group.

    A kernel runs in its own session (jupyter_client starts it so), and its workers (joblib's,
    multiprocessing's) share its process group, which outlives the kernel itself. A dead
    run_all's kernels exit on their own within a second or so, but their workers may idle for
    minutes; this makes sure none of them writes into an area being discarded.
    """
    import psutil

    for pgid in pids:
        members = []
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(proc.pid) == pgid and proc.uids().real == os.getuid():
                    members.append(proc)
        for proc in members:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(members, timeout=10)
