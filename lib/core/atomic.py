"""Atomic file and folder replacement: readers see the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` if the block succeeds.

    Parameters
    ----------
    final
        The file to create or replace.

    Yields
    ------
    Path
        Where to write. On an exception it is removed and ``final`` is left as it was.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if tmp.is_dir():
            raise IsADirectoryError(f"{tmp}: expected a file; use replace_dir for folders")
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(final: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def staging_dir(final: Path) -> Path:
    """Return a new empty folder beside ``final`` to build its replacement in."""
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.staging")
    stage.mkdir()
    return stage


def replace_dir(stage: Path, final: Path) -> None:
    """Put the finished folder ``stage`` in place of ``final``.

    The old folder is first renamed aside, so the window without ``final`` is two renames long;
    :func:`recover_dir` restores it if a crash falls in that window.
    """
    backup = final.with_name(f".{final.name}.previous")
    if backup.exists():
        shutil.rmtree(backup)
    if final.exists():
        os.rename(final, backup)
    os.rename(stage, final)
    if backup.exists():
        shutil.rmtree(backup)


def recover_dir(final: Path) -> None:
    """Undo a :func:`replace_dir` interrupted between its renames, and drop stale staging."""
    backup = final.with_name(f".{final.name}.previous")
    if backup.exists() and not final.exists():
        os.rename(backup, final)
    for stale in final.parent.glob(f".{final.name}.*.staging"):
        shutil.rmtree(stale, ignore_errors=True)


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
