"""The quire command (lib/cli/): every subcommand, its help, its exit codes, its start-up path.

Commands that run the pipeline start in a subprocess (`python -m lib.cli`, as the installed
`quire` script would run) on a project under tmp_path; the others run in-process through
Typer's CliRunner.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from lib.cli import app
from lib.cli.pipeline import bare_force
from lib.cli.services import flags_env, lab_command
from lib.core.errors import ParamsError
from lib.core.params import load_params
from lib.core.paths import PARAMS_DIR, PROJECT_ROOT
from lib.data.params_check import check_columns
from tests.conftest import dirs_overrides, small_frame

SUBCOMMANDS = (
    "run",
    "status",
    "check",
    "serve",
    "dashboard",
    "lab",
    "demo",
    "replay",
    "lineage",
    "drift",
    "mlflow-ui",
)
runner = CliRunner()


def quire(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `quire ARGS` as a separate process from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "lib.cli", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def layers(tmp_path, *extra: str) -> list[str]:
    """CI-sized params writing under tmp_path, as command-line layers."""
    out = ["--params", str(PARAMS_DIR / "ci.yaml")]
    for override in [*dirs_overrides(tmp_path), *extra]:
        out += ["-p", override]
    return out


# --- the command and its help -------------------------------------------------------------------


def test_help_lists_every_subcommand():
    result = quire("--help")
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", result.stdout, flags=re.MULTILINE)
    assert set(SUBCOMMANDS) <= set(listed), result.stdout
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_the_app_has_exactly_the_documented_subcommands():
    assert sorted(get_command(app).commands) == sorted(SUBCOMMANDS)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help_with_an_example(name):
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: quire {name}" in result.output or f"Usage: root {name}" in result.output
    assert "Examples" in result.output and f"quire {name}" in result.output.split("Examples")[1]


def test_serve_and_lab_help_say_what_they_start():
    serve = runner.invoke(app, ["serve", "--help"]).output
    assert "--host" in serve and "--port" in serve and "QUIRE_SERVER_" in serve
    lab = runner.invoke(app, ["lab", "--help"]).output
    assert "--port" in lab and "--print-command" in lab and "PYTHONPATH" in lab


def test_the_console_script_is_the_typer_app():
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts["quire"].partition(":")
    assert getattr(importlib.import_module(module), attribute) is app


def test_help_imports_no_heavy_library():
    code = (
        "import sys, runpy; sys.argv = ['quire', '--help']\n"
        "try:\n    runpy.run_module('lib.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('pandas', 'mlflow', 'papermill', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert "HEAVY []" in result.stdout, result.stdout[-500:] + result.stderr[-2000:]


# --- quire run and quire status -----------------------------------------------------------------


def test_every_run_all_flag_is_a_quire_run_option():
    usage = subprocess.run(
        [sys.executable, "run_all.py", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flags = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage)) - {"-h", "--help"}
    command = get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = {name for param in command.params for name in param.opts}
    assert {"--params", "-p", "--force", "--dry-run", "--from"} <= flags
    assert flags <= options, f"run_all flags quire run lacks: {sorted(flags - options)}"


def test_run_passes_every_flag_to_run_all_in_its_own_spelling(monkeypatch):
    from lib.run import runner as run_all

    seen = []
    monkeypatch.setattr(run_all, "main", lambda argv: seen.append(argv) or 3)
    args = ["--params", "a.yaml", "-p", "x.y=1", "--only", "train", "--only", "evaluate",
            "--from", "ingest", "--hide-code", "--log-level", "DEBUG", "--print-params",
            "--force", "--force", "train", "--dry-run", "--status", "--retrain",
            "--fail-on-alert"]  # fmt: skip
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 3  # run_all's exit code is quire run's
    assert seen == [
        ["--params", "a.yaml", "-p", "x.y=1", "--only", "train", "--only", "evaluate",
         "--from", "ingest", "--hide-code", "--log-level", "DEBUG", "--print-params",
         "--force", "--force", "train", "--dry-run", "--status", "--retrain", "--fail-on-alert"]
    ]  # fmt: skip
    seen.clear()
    assert runner.invoke(app, ["status", "--params", "b.yaml"]).exit_code == 3
    assert seen == [["--status", "--params", "b.yaml"]]


def test_a_bare_force_means_every_stage():
    assert bare_force(["--force"]) == ["--force=*"]
    assert bare_force(["--force", "--dry-run"]) == ["--force=*", "--dry-run"]
    assert bare_force(["--force", "train", "--force"]) == ["--force", "train", "--force=*"]


def test_run_dry_run_passes_the_flags_through_and_writes_only_under_the_project(tmp_path):
    result = quire("run", *layers(tmp_path), "--dry-run", "--force", "train", "--only", "train")
    assert result.returncode == 0, result.stderr
    table = result.stdout
    assert re.search(r"^train\s+would run\s+-\s+forced \(--force\)", table, re.MULTILINE), table
    assert "ingest" not in table  # --only train
    bare = quire("run", *layers(tmp_path), "--force", "--dry-run")
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.count("forced (--force)") == 4, bare.stdout
    assert not (tmp_path / "data" / "processed").exists()  # nothing ran


def test_status_reports_stale_stages_and_no_champion(tmp_path):
    result = quire("status", *layers(tmp_path))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^ingest\s+stale\s+-\s+it has not run before", result.stdout, re.MULTILINE)
    assert "champion: none yet for quire-churn" in result.stdout
    assert "last monitoring: none yet" in result.stdout


# --- quire check --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "status", "check", "dashboard", "demo", "replay",
                                     "mlflow-ui"])  # fmt: skip
def test_invalid_parameters_exit_2_with_the_key_and_no_traceback(command):
    result = runner.invoke(app, [command, "-p", "project.nam=x"])
    assert result.exit_code == 2, result.output
    assert "unknown key 'project.nam'" in result.stderr
    assert "did you mean 'name'" in result.stderr
    assert "Traceback" not in result.output


def test_check_passes_on_the_ci_params_and_says_what_it_checked(tmp_path):
    result = runner.invoke(app, ["check", *layers(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2,000 rows, 20 columns" in out  # generator.rows in params/ci.yaml, as ingest reads it
    assert "binary task, target 'churned'" in out
    assert "monitor.alerts.key_features" in out and "evaluate.segments" in out
    assert out.rstrip().endswith("(nothing trained)")
    assert not (tmp_path / "data" / "processed").exists()
    assert not (tmp_path / "mlruns").exists()


def test_check_names_every_column_param_the_data_lacks_in_one_message(tmp_path):
    result = quire(
        "check",
        *layers(
            tmp_path,
            "monitor.alerts.key_features=[nope, tenure_months]",
            "evaluate.segments=[monthly_charges, region]",
            "monitor.exclude=[churned]",
        ),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    # each line names the key and the layer its value came from
    assert (
        "monitor.alerts.key_features (from -p monitor.alerts.key_features): no column 'nope' "
        "in the data" in err
    )
    assert (
        "evaluate.segments (from -p evaluate.segments): 'monthly_charges': not a categorical "
        "or boolean feature" in err
    )
    assert "monitor.exclude (from -p monitor.exclude): 'churned': not a model feature" in err
    assert "3 parameter problem(s)" in err and "'tenure_months'" not in err  # a feature: fine
    assert "Traceback" not in err


def test_check_columns_without_a_target_names_it_and_skips_the_schema(tmp_path):
    frame = small_frame()
    params = load_params(
        overrides=[
            "data.source=unused.csv",
            "data.target=churn",
            "data.id_column=null",
            "data.date_column=joined",
            "evaluate.segments=[plan]",
            "monitor.alerts.key_features=[charges, tenure_x]",
            *dirs_overrides(tmp_path),
        ]
    )
    with pytest.raises(ParamsError) as info:
        check_columns(params, read=lambda _p: ([tmp_path / "t.csv"], [frame]))
    message = str(info.value)
    assert info.value.key == "data.target"
    assert "data.target (from -p data.target): no column 'churn' in the data" in message
    assert (
        "monitor.alerts.key_features (from -p monitor.alerts.key_features): no column " in message
    )
    assert "'tenure_x' in the data" in message
    assert "2 parameter problem(s)" in message  # segments and the present key feature are fine
    assert f"the data ({tmp_path / 't.csv'}) has the columns: tenure, charges" in message


def test_check_columns_reports_the_schema_when_all_is_well(tmp_path):
    params = load_params(
        overrides=[
            "data.source=unused.csv",
            "data.target=label",
            "data.id_column=null",
            "data.date_column=joined",
            "evaluate.segments=[plan, paperless]",
            "monitor.alerts.key_features=[charges]",
            *dirs_overrides(tmp_path),
        ]
    )
    report = check_columns(params, read=lambda _p: ([tmp_path / "t.csv"], [small_frame(60)]))
    assert report.rows == 60 and report.schema.target == "label"
    assert report.keys["evaluate.segments"] == ["plan", "paperless"]
    assert "monitor.columns" not in report.keys  # unset: nothing to check
    assert "5 features" in report.format()


def test_check_of_an_unreadable_source_exits_2_naming_the_file(tmp_path):
    bad = tmp_path / "empty.csv"
    bad.write_text("")
    result = runner.invoke(app, ["check", "-p", f"data.source={bad}", *layers(tmp_path)[2:]])
    assert result.exit_code == 2, result.output
    assert str(bad) in result.stderr and "Traceback" not in result.output


# --- quire lineage, serve, lab --------------------------------------------------------------------


def test_lineage_of_an_unknown_request_exits_1_with_a_clear_message(tmp_path):
    result = quire("lineage", "no-such-request", *layers(tmp_path))
    assert result.returncode == 1
    assert "error: no logged prediction has request_id 'no-such-request'" in result.stderr
    assert str(tmp_path / "data" / "predictions" / "quire-churn") in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_passes_host_and_port_as_the_servers_settings():
    assert flags_env(host="0.0.0.0", port=8123, workers=2) == {
        "QUIRE_SERVER_HOST": "0.0.0.0",
        "QUIRE_SERVER_PORT": "8123",
        "QUIRE_SERVER_WORKERS": "2",
    }
    assert flags_env(host=None, port=None) == {}  # the environment (or .env) decides


def test_lab_opens_jupyterlab_at_the_project_root_on_loopback():
    result = runner.invoke(app, ["lab", "--port", "8123", "--print-command", "--no-browser"])
    assert result.exit_code == 0, result.output
    shown = result.stdout.split()
    assert shown[0] == str(sys.executable).rsplit("/", 1)[0] + "/jupyter" and shown[1] == "lab"
    assert shown[shown.index("--ip") + 1] == "127.0.0.1"
    assert shown[shown.index("--port") + 1] == "8123"
    assert f"--ServerApp.root_dir={PROJECT_ROOT}" in shown
    assert shown[-1] == "--no-browser"  # extra arguments go to JupyterLab
    assert ("--allow-root" in shown) is (os.geteuid() == 0)
    assert "--allow-root" not in lab_command(8888, PROJECT_ROOT, [], as_root=False)


# --- the demo's readiness poll ------------------------------------------------------------------


def test_demo_stops_waiting_when_the_service_exits():
    from lib.loop.demo import _wait_ready

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert _wait_ready(proc, "http://127.0.0.1:9/", seconds=30) is False


def test_demo_waits_until_the_service_answers(tmp_path):
    import socket

    from lib.loop.demo import _wait_ready

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = (
        "import http.server, time; time.sleep(1.5); "
        f"http.server.HTTPServer(('127.0.0.1', {port}), "
        "http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    proc = subprocess.Popen([sys.executable, "-c", server], cwd=tmp_path)
    try:
        assert _wait_ready(proc, f"http://127.0.0.1:{port}/", seconds=60) is True
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


SLOW_PAGE = """
import http.server, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as seen:
            seen.write("GET\\n")
        self.send_response(200)
        self.end_headers()
        self.wfile.flush()
        time.sleep(4)  # a Voila page: its notebook runs while the body streams
        self.wfile.write(b"done")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
"""


def test_demo_asks_a_slow_page_once(tmp_path):
    """Each request for a Voila page starts a kernel: a poll timing out on the body asked again
    every 2.5 s, and one `make demo` filled the machine's memory with dashboard kernels."""
    import socket

    from lib.loop.demo import _wait_ready

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seen = tmp_path / "requests.txt"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_PAGE, str(port), str(seen)])
    try:
        assert _wait_ready(proc, f"http://127.0.0.1:{port}/", seconds=60) is True
        time.sleep(3)  # a poll that went on would have asked again by now
        assert seen.read_text().count("GET") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


SERVICE_UNDER_TERM = """
import signal, sys, time
from contextlib import ExitStack
from pathlib import Path
from lib.loop import demo
signal.signal(signal.SIGTERM, demo._interrupt)  # as demo.main installs it
child = [sys.executable, "-m", "http.server", sys.argv[1], "--bind", "127.0.0.1"]
try:
    with ExitStack() as stack:
        url = f"http://127.0.0.1:{sys.argv[1]}/"
        stack.enter_context(demo._service(child, {}, url, Path(sys.argv[2])))
        print("up", flush=True)
        time.sleep(60)
except KeyboardInterrupt:
    print("stopped", flush=True)
"""


def test_sigterm_to_the_demo_stops_the_services_it_started(tmp_path):
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = subprocess.Popen(
        [sys.executable, "-c", SERVICE_UNDER_TERM, str(port), str(tmp_path / "service.log")],
        stdout=subprocess.DEVNULL, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    deadline = time.monotonic() + 30
    while not listening() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert listening(), "the service did not start"
    time.sleep(1)  # the demo is past its readiness poll
    demo.send_signal(signal.SIGTERM)
    assert demo.wait(timeout=40) == 0  # unwound as Ctrl-C does
    assert not listening()  # and the service it started is gone
