"""What the workers of one multi-worker server share: who runs, and reloads (server/workers.py)."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.core.atomic import write_text

SHARED_ENV = "QUIRE_SERVER_SHARED_DIR"  # set by the supervisor for its workers


@dataclass
class Ack:
    """One worker's answer to a reload."""

    pid: int
    ok: bool
    version: str | None = None
    error: str | None = None


class Peers:
    """A worker's view of the folder it shares with the other workers of one server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid = os.getpid()
        self.members = folder / "workers"
        self._reload = folder / "reload"
        self._seen_stamp: tuple[int, int] | None = None
        self.seen: str | None = None  # the last reload generation this worker followed

    @classmethod
    def from_env(cls) -> Peers | None:
        """Return the peers of a worker (server/workers.py); None in a single-process server."""
        folder = os.environ.get(SHARED_ENV)
        return cls(Path(folder)) if folder else None

    def join(self) -> None:
        """Register this worker; a reload asked for before it started is already followed."""
        self.members.mkdir(parents=True, exist_ok=True)
        (self.members / str(self.pid)).touch()
        self.seen = self._read().get("generation")

    def leave(self) -> None:
        """Unregister this worker (it stops)."""
        (self.members / str(self.pid)).unlink(missing_ok=True)

    def alive(self) -> list[int]:
        """Return the pids of the registered workers that still run, this one included."""
        pids = []
        for path in self.members.glob("*"):
            with contextlib.suppress(ValueError):
                pid = int(path.name)
                if _running(pid):
                    pids.append(pid)
                else:
                    path.unlink(missing_ok=True)
        return sorted(pids)

    def announce(self, version: str | None) -> str:
        """Ask every other worker to reload; return the request's generation."""
        generation = uuid.uuid4().hex
        self.seen = generation
        write_text(
            self._reload,
            json.dumps({"generation": generation, "version": version, "by": self.pid}),
        )
        return generation

    def pending(self) -> str | None:
        """Return the generation of a reload this worker has not followed yet, if any."""
        try:
            info = self._reload.stat()
        except FileNotFoundError:
            return None
        stamp = (info.st_mtime_ns, info.st_ino)
        if stamp == self._seen_stamp:
            return None  # cheap: a stat every poll, a read only when the file changed
        self._seen_stamp = stamp
        generation = self._read().get("generation")
        return generation if generation and generation != self.seen else None

    def ack(self, generation: str, ok: bool, version: str | None, error: str | None) -> None:
        """Record this worker's answer to the reload ``generation``."""
        self.seen = generation
        body = {"generation": generation, "ok": ok, "version": version, "error": error}
        write_text(self.folder / f"ack-{self.pid}", json.dumps(body))

    def wait_acks(self, generation: str, seconds: float) -> tuple[list[Ack], list[int]]:
        """Wait for the other running workers' answers to ``generation``.

        Returns
        -------
        tuple
            The answers, and the pids of the running workers that did not answer in time.
        """
        deadline = time.monotonic() + seconds
        while True:
            others = [p for p in self.alive() if p != self.pid]
            acks = [a for a in (self._ack(p, generation) for p in others) if a is not None]
            late = sorted(set(others) - {a.pid for a in acks})
            if not late or time.monotonic() >= deadline:
                return acks, late
            time.sleep(0.05)

    def _ack(self, pid: int, generation: str) -> Ack | None:
        try:
            body = json.loads((self.folder / f"ack-{pid}").read_text())
        except (FileNotFoundError, ValueError):
            return None
        if body.get("generation") != generation:
            return None
        return Ack(pid, bool(body["ok"]), body.get("version"), body.get("error"))

    def _read(self) -> dict[str, Any]:
        try:
            body = json.loads(self._reload.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True
