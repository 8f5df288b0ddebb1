"""One run_all at a time: the lock, its message, and release on any kind of exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.core.layout import LOCK
from lib.core.paths import PROJECT_ROOT
from lib.run.runlock import RunLock, RunLocked

HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from lib.run.runlock import RunLock
with RunLock(Path({folder!r})):
    print("held", flush=True)
    time.sleep(60)
"""


def hold(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(root=str(PROJECT_ROOT), folder=str(folder))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_is_refused_naming_the_running_process(tmp_path):
    proc = hold(tmp_path)
    try:
        expected = rf"another run_all is running on this project: process {proc.pid} since"
        with pytest.raises(RunLocked, match=expected) as err, RunLock(tmp_path):
            pass
        assert err.value.holder["pid"] == proc.pid
        assert f"kill {proc.pid}" in err.value.message
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_lock_is_released_when_the_holder_dies(tmp_path, sig):
    proc = hold(tmp_path)
    os.kill(proc.pid, sig)
    proc.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            with RunLock(tmp_path) as lock:
                assert str(os.getpid()) in lock.path.read_text()
            break
        except RunLocked:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert (tmp_path / LOCK).read_text() == ""  # released: nobody named


def test_run_all_exits_4_while_another_runs(tmp_path, capsys):
    from lib.run.runner import EXIT_LOCKED, main
    from tests.conftest import dirs_overrides

    proc = hold(tmp_path / "data")
    try:
        args = [a for o in dirs_overrides(tmp_path) for a in ("-p", o)]
        started = time.monotonic()
        assert main([*args, "--only", "ingest"]) == EXIT_LOCKED
        assert time.monotonic() - started < 10  # at once, not after waiting
    finally:
        proc.kill()
        proc.wait()
    err = capsys.readouterr().err
    assert f"another run_all is running on this project: process {proc.pid}" in err
    assert not (tmp_path / "reports" / "01_ingest.html").exists()
