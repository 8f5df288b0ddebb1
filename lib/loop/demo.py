"""``make demo``: the whole loop in a few minutes on the built-in data.

1. run_all on the parameters (the pipeline: ingest, train, evaluate, monitor);
2. the model server on 127.0.0.1 (it follows the champion alias);
3. the replay tool sends the generator's drifted production batch through the REST API;
4. the monitor stage runs on the server's prediction log: drift found, alerts fired;
5. the Voila dashboard starts; the report, dashboard and API addresses are printed.

Then it waits (Ctrl-C stops the server and the dashboard it started), or with ``--no-wait``
stops them at once. Every step is the project's own command, shown before it runs, so the demo
is also a script to copy from. The true labels of the replayed rows are saved (``ids.csv`` in the
logs folder) for the feedback and retrain steps the summary suggests.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_fixed
from tenacity.stop import stop_base

from lib.core import startup
from lib.core.contracts.summary import read_summary
from lib.core.layout import Layout
from lib.core.paths import PROJECT_ROOT


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


def _show(cmd: Sequence[str]) -> None:
    shown = [Path(c).name if c == sys.executable else c for c in cmd]
    print(f"\n$ {shlex.join(shown)}", flush=True)


def _run(cmd: Sequence[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> int:
    _show(cmd)
    code = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=False).returncode
    if code not in ok:
        raise SystemExit(f"demo stopped: the step above exited with {code}")
    return code


@contextmanager
def _service(
    cmd: Sequence[str], env: dict[str, str], ready: str, log: Path, any_answer: bool = False
) -> Iterator[None]:
    """Start a background process, wait until ``ready`` answers, stop it (by PID) after.

    Ready is a 200, or with ``any_answer`` any answer below 500 (the server is listening).
    """
    _show(cmd)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out)
    try:
        if not _wait_ready(proc, ready, any_answer=any_answer):
            raise SystemExit(f"demo stopped: {cmd[1:3]} did not start; see {log}")
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _answers(url: str, any_answer: bool = False) -> bool:
    """Whether ``url`` answers 200 now (``any_answer``: any status below 500).

    Only the status line is awaited, never the body: a page that streams its body slowly (a
    Voila page runs its notebook while it answers) must not time out and be asked again - each
    request for a Voila page starts a kernel of its own.
    """
    try:
        with httpx.stream("GET", url, timeout=2) as answer:
            return answer.status_code < 500 if any_answer else answer.status_code == 200
    except httpx.TransportError:
        return False


class _Exited(stop_base):
    """Stop polling once the process has ended."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.proc.poll() is not None


def _wait_ready(
    proc: subprocess.Popen[bytes], url: str, seconds: float = 180, any_answer: bool = False
) -> bool:
    """Poll ``url`` every half second until it answers; False if ``proc`` ends or time is up."""
    poll = Retrying(
        stop=stop_after_delay(seconds) | _Exited(proc),
        wait=wait_fixed(0.5),
        retry=retry_if_result(lambda ok: not ok),
        retry_error_callback=lambda _state: False,
    )
    return bool(poll(_answers, url, any_answer))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    """Return the demo's command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m lib.loop.demo", description=__doc__)
    startup.add_arguments(parser, "generator.rows=5000")
    parser.add_argument("--port", type=int, default=8000, help="model server port")
    parser.add_argument("--dashboard-port", type=int, default=8866)
    parser.add_argument("--rate", type=float, default=1000.0, help="replayed rows per second")
    parser.add_argument(
        "--no-wait", action="store_true", help="stop the server and dashboard at the end"
    )
    return parser


@startup.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the exit code."""
    args = build_parser().parse_args(argv)
    given = startup.Layers.from_args(args)
    layers = given.argv()
    params = startup.start(given)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    # the server and dashboard read params from the environment: pass the layers on
    for section in ("project", "mlflow"):
        values = getattr(params, section).model_dump(mode="json")
        env.update({f"QUIRE__{section.upper()}__{k.upper()}": str(v) for k, v in values.items()
                    if v is not None})  # fmt: skip
    env.update({"QUIRE_SERVER_PORT": str(args.port), "QUIRE_SERVER_POLL_SECONDS": "5"})
    env["QUIRE_SERVER_LOG_FLUSH_SECONDS"] = "1"
    logs = Layout.of(params).logs
    ids = logs / "demo-ids.csv"
    base = f"http://127.0.0.1:{args.port}"
    dashboard = f"http://127.0.0.1:{args.dashboard_port}"

    # SIGTERM (a service manager, CI, kill) unwinds like Ctrl-C: the server and the dashboard
    # it started stop with it, instead of living on
    signal.signal(signal.SIGTERM, _interrupt)
    print("Quire demo: pipeline -> server -> drifted traffic -> monitor -> dashboard", flush=True)
    _run(_python("run_all.py", *layers), env)
    with ExitStack() as stack:
        stack.enter_context(
            _service(_python("-m", "server"), env, f"{base}/health/ready", logs / "demo-server.log")
        )
        _run(
            _python("-m", "lib.loop.replay", "--url", base, "--rate", str(args.rate),
                    "--batch-size", "10", "--ids-out", str(ids), *layers),
            env,
        )  # fmt: skip
        time.sleep(2)  # the server flushes its prediction log every second
        monitor = ["--only", "monitor", "-p", "monitor.current=log", "--fail-on-alert"]
        _run(_python("run_all.py", *layers, *monitor), env, ok=(0, 3))
        layout = Layout.of(params)
        summary = read_summary(layout.monitoring_summary)
        dash = _python("-m", "lib.monitoring.dashboard", "--port", str(args.dashboard_port))
        # not the page itself: every request for it runs the dashboard in a new kernel (~270 MiB)
        dash_up = f"{dashboard}/favicon.ico"
        stack.enter_context(
            _service(dash, env, dash_up, logs / "demo-dashboard.log", any_answer=True)
        )
        print("\n" + "=" * 78)
        print(f"monitoring verdict: {summary.verdict}")
        for alert in summary.alerts:
            print(f"  ALERT {alert.rule}: {alert.message}")
        print(f"\ndrift dashboard   {dashboard}")
        print(f"model API         {base}/docs   (model: {base}/model)")
        print(f"reports           {layout.index.as_uri()}")
        print(f"monitor report    {layout.report('04_monitor').as_uri()}")
        print(f"Evidently report  {layout.evidently_report.as_uri()}")
        labels = layout.feedback
        print("\nclose the loop: hand back the true labels of the replayed rows (POST /feedback,")
        print("or drop the file in the feedback folder), then retrain:")
        print(f"  mkdir -p {labels} && cp {ids} {labels}/")
        print(f"  {Path(sys.executable).name} run_all.py --retrain {shlex.join(layers)}".rstrip())
        delta, gate = params.evaluate.min_delta, params.evaluate.gate
        print("  (the server picks up a new champion within 5 s, without a restart; the gate")
        print(f"  promotes a gain of at least evaluate.min_delta = {delta} in the primary metric")
        recent = (
            "all the labelled served rows"
            if gate.recent_windows == "all"
            else f"the last {gate.recent_windows} of the labelled served rows' windows "
            f"({gate.window})"
        )
        print(f"  on the whole test split, or one on the test rows among {recent}")
        print("  that its bootstrap interval supports; 03_evaluate's report shows both")
        print("  comparisons and which way it went)")
        print("=" * 78, flush=True)
        if args.no_wait:
            return 0
        print("Ctrl-C stops the server and the dashboard.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
