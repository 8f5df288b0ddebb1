"""The loop a user closes after the first run, and the process plumbing the real-data bench shares.

After ``run_all.py`` has promoted a champion, the monitor stage has nothing to compare yet (the
server's prediction log is empty, so it is skipped). A user then serves the champion, sends it
traffic and runs the monitor again; :func:`run_loop` does the same for one corpus table:

1. ``python -m server`` on 127.0.0.1 and a free port, in its own process group, with the
   preset (``QUIRE_SERVER_PARAMS_FILE``) and the ``-p`` overrides as ``QUIRE__SECTION__KEY``
   variables (the server reads its parameters from the environment); wait for
   ``GET /health/ready``;
2. ``python -m lib.loop.replay <table> --rows 300``: the exported table's first rows, through REST;
3. stop the server's process group (SIGTERM, then SIGKILL): it flushes its prediction log;
4. ``run_all.py --only monitor`` with the same layers, and read its verdict and alerts.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPLAY_ROWS = 300
READY_SECONDS = 180.0  # the server loads the model and warms it up before it is ready
STOP_SECONDS = 30.0
STEP_SECONDS = 900.0  # replay and the monitor stage, each


@dataclass
class Loop:
    """What the loop after a first run gave: served rows, the monitor's exit and verdict."""

    port: int | None = None
    ready_seconds: float | None = None
    replay_exit: int | None = None
    replay_seconds: float | None = None
    served_rows: int | None = None  # rows in the prediction log once the server stopped
    monitor_exit: int | None = None
    monitor_seconds: float | None = None
    monitor_status: str = ""  # the monitor stage's status.json record: ok, skipped, failed
    verdict: str = ""
    alerts: list[str] = field(default_factory=list)  # the fired rules
    failed_step: str | None = None  # server, replay or monitor
    error: str = ""


# --------------------------------------------------------------------------------------------
# Processes


def environment() -> dict[str, str]:
    """Return the environment of every child: no Quire settings of the caller's, one thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUIRE__", "QUIRE_SERVER_"))}
    env.pop("MLFLOW_TRACKING_URI", None)  # the run's own store, never the user's server
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_session(
    command: Sequence[str], timeout: float, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run ``command`` in its own session; return (exit code, stdout, stderr).

    A timeout stops the whole session (run_all's notebook kernels too) and gives exit code -1.
    """
    child = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env or environment(),
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
        return child.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
        return -1, stdout, f"{stderr}\ntimeout: stopped after {timeout:g} s"


def last_error_line(output: str) -> str:
    """Return the line of a command's output that best says what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    markers = ("Error", "error:", "failed", "Traceback")
    for line in reversed(lines):
        if any(m in line for m in markers) and not line.startswith("File "):
            return line[:400]
    return lines[-1][:400] if lines else ""


def replay_error(output: str) -> str:
    """Return the replay's first refused answer (``422: invalid_input: ...``), else its error line.

    The replay prints its tally (``ok: 0 rows; failed: 300 rows``), then the first answer of each
    refused status: that answer says why.
    """
    for line in output.splitlines():
        if re.match(r"\s+\d{3}: ", line):
            return line.strip()[:400]
    return last_error_line(output)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Command lines


def layer_args(presets: Sequence[Path], overrides: Sequence[str]) -> list[str]:
    """Return ``--params`` for each preset, then ``-p`` for each override, in order."""
    return [
        *[arg for p in presets for arg in ("--params", str(p))],
        *[arg for o in overrides for arg in ("-p", o)],
    ]


def run_all_command(layers: Sequence[str], *extra: str) -> list[str]:
    """Return ``run_all.py`` with ``layers`` (and ``extra``, e.g. ``--only monitor``)."""
    return [sys.executable, str(ROOT / "run_all.py"), *layers, *extra]


def replay_command(table: Path, port: int, layers: Sequence[str]) -> list[str]:
    """Return the replay of ``table``'s first rows to the server on ``port``."""
    url = f"http://127.0.0.1:{port}"
    return [
        *(sys.executable, "-m", "lib.loop.replay", str(table)),
        *("--url", url, "--rows", str(REPLAY_ROWS), *layers, "--no-progress"),
    ]


def server_environment(preset: Path, overrides: Sequence[str], port: int) -> dict[str, str]:
    """Return the server's environment: the preset, the overrides as variables, the address.

    The server takes one preset file; later presets (``params/ci.yaml`` with ``--fast``) set
    only training sizes, which serving does not read.
    """
    env = environment()
    env.update(QUIRE_SERVER_PARAMS_FILE=str(preset), QUIRE_SERVER_HOST="127.0.0.1")
    env["QUIRE_SERVER_PORT"] = str(port)
    for override in overrides:
        key, _, value = override.partition("=")
        env["QUIRE__" + key.strip().replace(".", "__").upper()] = value
    return env


# --------------------------------------------------------------------------------------------
# The server


def start_server(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m server`` as its own process group, writing its output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "server"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )


def wait_ready(proc: subprocess.Popen[bytes], port: int, seconds: float = READY_SECONDS) -> bool:
    """Poll ``/health/ready`` until it answers 200; False when ``proc`` ends or time is up."""
    import httpx

    url = f"http://127.0.0.1:{port}/health/ready"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.5)
    return False


def stop_group(proc: subprocess.Popen[Any], seconds: float = STOP_SECONDS) -> None:
    """Stop ``proc``'s process group: SIGTERM (it flushes its log), SIGKILL after ``seconds``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            continue


# --------------------------------------------------------------------------------------------
# The loop


def run_loop(
    table: Path, presets: Sequence[Path], overrides: Sequence[str], params: Any, root: Path
) -> Loop:
    """Serve the champion, replay ``table``'s first rows, stop the server, run the monitor.

    Parameters
    ----------
    table
        The exported table (the first run's ``data.source``).
    presets, overrides
        The first run's layers: the user's preset first, then ``--fast``'s, and the ``-p``
        overrides putting every folder under ``root``.
    params
        The first run's resolved parameters (where the log and the summary are).
    root
        The dataset's folder: the server's output goes to ``server.log``, the monitor's to
        ``monitor.stdout`` / ``monitor.stderr``.

    Returns
    -------
    Loop
        Rows served, timings, the monitor stage's exit, verdict and alerts, or the failed step.
    """
    loop = Loop(port=free_port())
    layers = layer_args(presets, overrides)
    log = root / "server.log"
    started = time.perf_counter()
    server = start_server(server_environment(presets[0], overrides, loop.port), log)
    try:
        if not wait_ready(server, loop.port):
            loop.failed_step = "server"
            loop.error = last_error_line(log.read_text(encoding="utf-8", errors="replace"))
            loop.error = loop.error or f"not ready after {READY_SECONDS:g} s"
            return loop
        loop.ready_seconds = time.perf_counter() - started
        started = time.perf_counter()
        loop.replay_exit, out, err = run_session(
            replay_command(table, loop.port, layers), STEP_SECONDS
        )
        loop.replay_seconds = time.perf_counter() - started
        (root / "replay.stdout").write_text(out + err, encoding="utf-8")
        if loop.replay_exit != 0:
            loop.failed_step, loop.error = "replay", replay_error(out + "\n" + err)
    finally:
        stop_group(server)
    loop.served_rows = logged_rows(params)
    _monitor(loop, layers, params, root)
    return loop


def logged_rows(params: Any) -> int:
    """Return the rows in the server's prediction log for ``params``' model."""
    import pyarrow.parquet as pq

    from lib.core.contracts.predlog import log_files
    from lib.core.layout import Layout

    files = log_files(Layout.of(params, staged=False).predictions)
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _monitor(loop: Loop, layers: list[str], params: Any, root: Path) -> None:
    """Run ``run_all.py --only monitor``; record its exit, the stage's status and the summary."""
    from lib.core.contracts.status import read_status
    from lib.core.contracts.summary import read_summary
    from lib.core.errors import DataValidationError
    from lib.core.layout import Layout

    started = time.perf_counter()
    code, out, err = run_session(run_all_command(layers, "--only", "monitor"), STEP_SECONDS)
    loop.monitor_exit, loop.monitor_seconds = code, time.perf_counter() - started
    (root / "monitor.stdout").write_text(out, encoding="utf-8")
    (root / "monitor.stderr").write_text(err, encoding="utf-8")
    layout = Layout.of(params, staged=False)
    record = read_status(layout.status).stages.get("monitor")
    loop.monitor_status = record.status if record else ""
    if record is not None and record.status == "skipped":
        loop.verdict = f"skipped: {record.reason or ''}".strip()
    if code != 0 and loop.failed_step is None:
        lines = ((record.error if record else None) or "").strip().splitlines()
        loop.failed_step = "monitor"
        loop.error = lines[-1] if lines else last_error_line(out + "\n" + err)
    if record is None or record.status != "ok":
        return
    try:
        summary = read_summary(layout.monitoring_summary)
    except DataValidationError as exc:  # an unreadable summary is itself a finding
        loop.verdict = f"unreadable summary: {exc}"
        return
    loop.verdict, loop.alerts = summary.verdict, [a.rule for a in summary.alerts]
