"""One run_all at a time per project: an exclusive ``flock`` on a file in the data folder.

The operating system drops the lock when the holding process ends however it ends (even
SIGKILL), so a crash never leaves a stale lock behind. The file also records who holds it, for
the message a second run prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from lib.core.errors import QuireError
from lib.core.layout import LOCK


class RunLocked(QuireError):
    """Another run_all holds the project's lock.

    Parameters
    ----------
    message
        The full explanation.
    holder
        What the lock file says about the running process (pid, started, command).
    """

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass
class RunLock:
    """Hold the project's run lock for the life of a ``with`` block.

    Parameters
    ----------
    folder
        The project's data folder; the lock file lives there.
    """

    folder: Path
    _handle: IO[str] | None = None

    @property
    def path(self) -> Path:
        """The lock file."""
        return self.folder / LOCK

    def __enter__(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _parse(handle.read())
            handle.close()
            raise RunLocked(_message(self.path, holder), holder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "started": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
                    "command": " ".join(sys.argv)[:300],
                }
            )
        )
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()  # nobody holds it now
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _parse(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _message(path: Path, holder: dict[str, Any]) -> str:
    who = f"process {holder['pid']}" if "pid" in holder else "another process"
    since = f" since {holder['started']}" if "started" in holder else ""
    command = f" ({holder['command']})" if holder.get("command") else ""
    return (
        f"{path.parent}: another run_all is running on this project: {who}{since}{command}. "
        f"Wait for it to finish, or stop it (kill {holder.get('pid', '<pid>')}) and run again."
    )
