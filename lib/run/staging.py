"""Crash-safe stage runs: outputs are built in a staging area and promoted as one set.

run_all gives every stage a staging area before it starts. Each of the stage's declared outputs
(``Stage.outputs``: folders and files under the data and reports folders) is cloned into it with
hard links, and the stage's kernel gets the area's path in ``QUIRE_STAGING``. While it is set,
:func:`location` sends the stage's writes (and its reads of its own outputs) into the clone, and
:mod:`lib.core.tracking` records registry changes (aliases, version tags) in the area instead of
making them. Nothing the users, the server or the dashboard read changes while a stage runs.

On success run_all writes a journal, the commit point, then moves every staged output into
place, applies the registry changes and records the stage's status. A crash before the journal
leaves the previous set untouched (the area is simply discarded at the next start); a crash after
it is rolled forward by :func:`recover` at the next start, from the journal alone. Every step of
the roll-forward is idempotent, so a crash during recovery is recovered too.

Writers in lib replace files by rename (:mod:`lib.core.atomic`), never in place, so a hard-linked
clone never changes the file it was cloned from.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

from lib.core.contracts.journal import Journal, RegistryChanges, read_journal, write_journal
from lib.core.contracts.status import StageRecord
from lib.core.logs import get_logger
from lib.core.staging_area import (
    AREA,
    JOURNAL,
    KERNELS,
    Staging,
)

log = get_logger(__name__)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block (a promotion finishes before the process stops)."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def commit(staging: Staging, data_dir: Path, record: StageRecord) -> Journal:
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
    Journal
        The journal.
    """
    journal = Journal(
        stage=staging.stage,
        moves=[(staged, final, Path(staged).exists()) for final, staged in staging.outputs.items()],
        registry=RegistryChanges.model_validate(staging.registry_changes()),
        roots=list(staging.roots),
        record=record,
    )
    write_journal(data_dir / AREA / JOURNAL, journal)
    return journal


def apply(journal: Journal) -> None:
    """Move the staged outputs into place and apply the registry changes (idempotent)."""
    for staged, final, present in journal.moves:
        _move(Path(staged), Path(final), present)
    changes = journal.registry
    if changes.aliases or changes.tags:
        from lib.core import tracking

        for model, version, key, value in changes.tags:
            tracking.set_version_tag(model, version, key, value, staged=False)
        for alias, (model, version) in changes.aliases.items():
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


def finish(journal: Journal, data_dir: Path) -> None:
    """Drop the journal and the area once the promotion is complete."""
    (data_dir / AREA / JOURNAL).unlink(missing_ok=True)
    for folder in journal.roots:
        shutil.rmtree(folder, ignore_errors=True)


def pending_journal(data_dir: Path) -> Journal | None:
    """Return the journal of a promotion a crash interrupted, or None."""
    return read_journal(data_dir / AREA / JOURNAL)


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
