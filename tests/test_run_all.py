"""run_all end to end: real papermill kernels, real HTML, exit codes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lib.core.logs import LOG_FILE_ENV, configure_logging
from lib.core.params import load_params
from lib.core.paths import NOTEBOOKS_DIR, PARAMS_DIR, PROJECT_ROOT
from lib.run import fingerprint
from lib.run.runner import run_pipeline
from lib.run.stages import STAGES, Followup, Stage
from tests.conftest import dirs_overrides

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "notebooks"


def run_all(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run_all.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=300,
    )


def dir_args(root: Path) -> list[str]:
    return [arg for o in dirs_overrides(root) for arg in ("-p", o)]


@pytest.mark.slow
def test_success_then_failure_keeps_good_report(tmp_path):
    ok = run_all("--params", "params/ci.yaml", *dir_args(tmp_path))
    assert ok.returncode == 0, ok.stderr[-3000:]
    check_quiet_console(ok)
    reports = tmp_path / "reports"
    for html in reports.glob("*.html"):
        assert not third_party_warnings(html.read_text()), html.name
    index = (reports / "index.html").read_text()
    assert '<a href="01_ingest.html">' in index and '<a href="02_train.html">' in index
    stages_table = index.split('<table id="history">')[0]  # then the recent runs
    assert stages_table.count('<td class="ok">ok</td>') == 4
    assert (reports / "04_monitor_evidently.html").stat().st_size > 50_000
    assert b"Gate passed" in (reports / "04_monitor.html").read_bytes()
    status = json.loads((reports / "status.json").read_text())
    digest = load_params([PARAMS_DIR / "ci.yaml"], dirs_overrides(tmp_path)).digest()
    assert status["stages"]["ingest"]["params_digest"] == digest and digest in index
    good_html = (reports / "01_ingest.html").read_bytes()
    assert b"Plotly.newPlot" in good_html and b"Gate passed" in good_html
    (run,) = status["history"]  # the index keeps the run, its reports and its MLflow runs
    assert run["status"] == "ok" and [s["status"] for s in run["stages"]] == ["ok"] * 4
    assert f'href="runs/{run["id"]}/01_ingest.html"' in index
    assert (reports / "runs" / run["id"] / "01_ingest.html").read_bytes() == good_html
    train_run = status["stages"]["train"]["mlflow_runs"][0]["run_id"]
    assert f"#/experiments/1/runs/{train_run}" in index
    assert not list((tmp_path / "data" / ".staging").glob("*")), "staging areas left behind"
    assert b"quire-churn@challenger" in (reports / "02_train.html").read_bytes()
    assert (tmp_path / "data" / "processed" / "churn" / "manifest.json").exists()
    logs = list((tmp_path / "logs").glob("run_all-*.jsonl"))
    events = [json.loads(line)["event"] for line in logs[0].read_text().splitlines()]
    assert "run_start" in events and "stage_done" in events

    alerted = run_all("--params", "params/ci.yaml", *dir_args(tmp_path), "--only", "monitor",
                      "--force", "monitor", "--fail-on-alert")  # fmt: skip
    assert alerted.returncode == 3, alerted.stderr[-3000:]
    assert "alerts fired: key_feature: key features drifted: monthly_charges" in alerted.stderr
    history = tmp_path / "data" / "monitoring" / "quire-churn" / "history.parquet"
    assert pd.read_parquet(history)["run_id"].nunique() == 2

    check_incremental_runs(tmp_path, good_html)

    missing = tmp_path / "nope.csv"
    early = run_all(
        "--params", "params/ci.yaml", *dir_args(tmp_path), "-p", f"data.source={missing}",
        "-p", "data.target=churned",
    )  # fmt: skip
    assert early.returncode == 2  # found by the check before any stage starts
    assert "error: data.source" in early.stderr and str(missing) in early.stderr
    assert not (reports / "01_ingest.failed.html").exists()

    strict = "data.columns={age: {kind: numeric, nullable: false}}"  # the data has missing ages
    bad = run_all("--params", "params/ci.yaml", *dir_args(tmp_path), "-p", strict)
    assert bad.returncode == 2, bad.stderr  # a data problem: exit 2, as a parameter problem
    line = next(x for x in bad.stderr.splitlines() if x.startswith("01_ingest.ipynb failed"))
    assert "DataValidationError:" in line and "'age'" in line
    assert (reports / "01_ingest.html").read_bytes() == good_html
    failed = (reports / "01_ingest.failed.html").read_text()
    assert 'data-status="failed"' in failed and 'id="papermill-error-cell"' in failed
    index = (reports / "index.html").read_text()
    assert '<td class="failed">failed</td>' in index and '<td class="skipped">skipped</td>' in index
    assert (
        json.loads((reports / "status.json").read_text())["stages"]["train"]["status"] == "skipped"
    )
    assert (reports / "02_train.html").exists()  # the earlier good report of the skipped stage

    again = run_all(
        "--params", "params/ci.yaml", *dir_args(tmp_path), "--only", "ingest", "--hide-code", "-v"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Executing Cell 1-" in again.stderr  # -v: papermill's cell log, as before
    assert "[info     ] ingested" in again.stderr  # and library events
    assert not (reports / "01_ingest.failed.html").exists()
    assert "run_ingest" not in (reports / "01_ingest.html").read_text()


@pytest.mark.slow
def test_failing_stage_stops_pipeline_and_skips_later_ones(tmp_path):
    params = load_params(overrides=dirs_overrides(tmp_path))
    stages = [
        Stage("first", "ok.ipynb", ("project",)),
        Stage("second", "fail.ipynb", ("project",)),
        Stage("third", "ok.ipynb", ("project",)),
    ]
    outcomes = run_pipeline(params, stages, notebooks_dir=FIXTURES)
    assert [o.status for o in outcomes] == ["ok", "failed", "skipped"]
    assert outcomes[1].error == (
        "fail.ipynb failed in cell 4 (In [4] in the report): DataValidationError: fixture.csv: column 'x' row 3: broken on purpose"
    )
    reports = tmp_path / "reports"
    assert (reports / "ok.html").exists() and (reports / "fail.failed.html").exists()
    assert not (reports / "fail.html").exists()


@pytest.mark.slow
def test_cell_timeout_and_dead_kernel_name_the_notebook_and_cell(tmp_path):
    params = load_params(overrides=[*dirs_overrides(tmp_path), "run.cell_timeout=3"])
    slow = run_pipeline(params, [Stage("slow", "slow.ipynb", ("project",))], notebooks_dir=FIXTURES)
    assert slow[0].error == (
        "slow.ipynb failed in cell 3: the cell ran longer than run.cell_timeout = 3 s and was "
        "stopped; make it faster, or raise run.cell_timeout in params (0: no limit)"
    )
    assert slow[0].seconds < 30
    dead = run_pipeline(params, [Stage("dead", "dead.ipynb", ("project",))], notebooks_dir=FIXTURES)
    assert dead[0].error == (
        "dead.ipynb failed in cell 3: the kernel died while running it (killed, out of memory, "
        "or a crash in native code); check memory use and the data size, then rerun"
    )
    reports = tmp_path / "reports"
    assert (reports / "slow.failed.html").exists() and (reports / "dead.failed.html").exists()
    status = json.loads((reports / "status.json").read_text())
    assert status["stages"]["dead"]["error"] == dead[0].error


def test_invalid_params_exit_2_before_anything_runs(tmp_path):
    result = run_all(*dir_args(tmp_path), "-p", "ingest.split.tset=0.3")
    assert result.returncode == 2
    assert "unknown key 'ingest.split.tset'" in result.stderr
    assert not (tmp_path / "reports").exists()


def test_print_params_shows_resolved_layers(tmp_path):
    result = run_all("--params", "params/penguins.yaml", "-p", "project.seed=9", "--print-params")
    assert result.returncode == 0
    assert "name: penguins" in result.stdout and "seed: 9" in result.stdout


def plan(stdout: str) -> dict[str, tuple[str, str]]:
    """The summary table's rows: stage -> (status, reason)."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        m = re.match(
            r"^(\w+)\s+(ran|up to date|would run|stale|failed|skipped)\s+(\S+)\s+(.*)$", line
        )
        if m:
            rows[m.group(1)] = (m.group(2), m.group(4).strip())
    return rows


def check_incremental_runs(root: Path, ingest_html: bytes) -> None:
    """After a full run: unchanged reruns skip everything; each kind of change reruns its part."""
    args = ["--params", "params/ci.yaml", *dir_args(root)]
    again = run_all(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(plan(again.stdout).values()) == {("up to date", "nothing it depends on changed")}
    assert (root / "reports" / "01_ingest.html").read_bytes() == ingest_html  # kept
    index = (root / "reports" / "index.html").read_text()
    assert index.count('<td class="up-to-date">up to date</td>') == 4
    status = run_all(*args, "--status", "-p", "monitor.drift_share=0.4")
    assert plan(status.stdout)["monitor"] == ("stale", "its parameters changed")
    assert plan(status.stdout)["evaluate"] == ("up to date", "nothing it depends on changed")
    assert "champion: quire-churn version 1 (run " in status.stdout
    assert "last monitoring (" in status.stdout and "alert(s)" in status.stdout

    changed = plan(run_all(*args, "-p", "train.cv_folds=2", "--dry-run").stdout)
    assert changed == {
        "ingest": ("up to date", "nothing it depends on changed"),
        "train": ("would run", "its parameters changed"),
        "evaluate": ("would run", "an earlier stage would rerun"),
        "monitor": ("would run", "an earlier stage would rerun"),
    }
    assert set(plan(run_all(*args, "--force", "--dry-run").stdout).values()) == {
        ("would run", "forced (--force)")
    }

    params = load_params([PARAMS_DIR / "ci.yaml"], dirs_overrides(root))
    edited = root / "edited_notebooks"
    shutil.copytree(NOTEBOOKS_DIR, edited)
    nb = nbformat.read(edited / "03_evaluate.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("A new closing remark."))
    nbformat.write(nb, edited / "03_evaluate.ipynb")
    outcomes = run_pipeline(params, list(STAGES), notebooks_dir=edited, dry_run=True)
    assert [(o.status, o.reason) for o in outcomes][1:3] == [
        ("up to date", "nothing it depends on changed"),
        ("would run", "its notebook's cells changed"),
    ]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fingerprint, "code_hash", lambda: "another lib")
        outcomes = run_pipeline(params, list(STAGES), dry_run=True)
    assert outcomes[0].reason == "code in lib/ changed"

    (root / "data" / "processed" / "churn" / "test.parquet").write_bytes(b"damaged")
    outcomes = run_pipeline(params, list(STAGES), dry_run=True)
    assert (outcomes[0].status, outcomes[0].reason) == (
        "would run",
        "its outputs are missing or were changed",
    )


def test_a_followup_reruns_the_stages_it_names_forced(tmp_path, monkeypatch):
    from lib.run import runner

    calls = []
    monkeypatch.setattr(
        runner, "run_pipeline", lambda params, stages, **kw: calls.append((stages, kw)) or []
    )
    params = load_params(overrides=dirs_overrides(tmp_path))
    assert runner._rerun(params, Followup(alerts=("a: b",)), False, quiet=True) == 0
    assert calls == []  # alerts alone: nothing to rerun
    retrain = Followup(rerun=("ingest", "train", "evaluate"), force=("ingest",))
    assert runner._rerun(params, retrain, False, quiet=True) == 0
    ((stages, kw),) = calls
    assert [s.name for s in stages] == ["ingest", "train", "evaluate"]
    assert kw["force"] == ["ingest"]


def third_party_warnings(html: str) -> list[str]:
    """Python warnings shown in a report (plotly.js, embedded in a script, names some itself)."""
    text = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)
    return re.findall(r"\b(?:Future|Deprecation|User|Runtime|PendingDeprecation)Warning\b", text)


def check_quiet_console(result: subprocess.CompletedProcess[str]) -> None:
    """A successful run prints a few lines per stage, the summary and where the reports are."""
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) < 60, "\n".join(lines)
    for stage in STAGES:
        assert f"{stage.name}: running {stage.notebook}" in result.stderr
        assert re.search(rf"^{stage.name}: done in \d+\.\d (s|min)$", result.stderr, re.M)
    assert "Executing Cell" not in result.stderr and "[info" not in result.stderr
    assert re.search(r"^reports: .*index\.html$", result.stderr, re.M)


@pytest.mark.slow
def test_warnings_in_a_cell_go_to_the_log_file_not_the_report(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    nb.cells = [
        nbformat.v4.new_code_cell("project = {}", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("from lib.core import plots\n\nplots.setup_notebook()"),
        nbformat.v4.new_code_cell(
            "import warnings\n\n"
            'warnings.warn("old_api is going away", FutureWarning)\n'
            'warnings.warn("odd dtype", UserWarning)\n'
            'print("cell done")'
        ),
    ]
    nbformat.write(nb, notebooks / "warns.ipynb")
    params = load_params(overrides=dirs_overrides(tmp_path))
    log_file = tmp_path / "logs" / "run.jsonl"
    log_file.parent.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(LOG_FILE_ENV, str(log_file))
        (outcome,) = run_pipeline(  # no code in the report: it names the warnings itself
            params,
            [Stage("warns", "warns.ipynb", ("project",))],
            notebooks_dir=notebooks,
            hide_code=True,
        )
    assert outcome.status == "ok", outcome.error
    html = (tmp_path / "reports" / "warns.html").read_text()
    assert "cell done" in html
    assert third_party_warnings(html) == [] and "old_api is going away" not in html
    executed = nbformat.read(tmp_path / "reports" / "warns.ipynb", as_version=4)
    streams = [o for o in executed.cells[-1].outputs if o.output_type == "stream"]
    assert [o.name for o in streams] == ["stdout"] and streams[0].text == "cell done\n"
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    warned = [e["event"] for e in logged if e.get("logger") == "py.warnings"]
    assert any("FutureWarning" in e and "old_api is going away" in e for e in warned), logged
    assert any("UserWarning" in e and "odd dtype" in e for e in warned)


@pytest.mark.slow
def test_a_run_uses_the_lib_of_the_project_it_runs(tmp_path):
    """Two checkouts share one environment (whose editable install points at this one): the
    other checkout's run_all must execute the other checkout's lib in its kernels."""
    other = tmp_path / "other"
    for part in ("lib", "notebooks", "params"):
        shutil.copytree(
            PROJECT_ROOT / part, other / part, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_ROOT / "run_all.py", other / "run_all.py")
    marker = tmp_path / "kernel_lib.txt"
    plots = other / "lib" / "core" / "plots.py"
    plots.write_text(
        plots.read_text().replace(
            "    configure_logging(",
            "    import os as _os\n"
            '    open(_os.environ["QUIRE_TEST_MARKER"], "w").write(__file__)\n'
            "    configure_logging(",
            1,
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"OMP_NUM_THREADS": "1", "QUIRE_TEST_MARKER": str(marker)}
    done = subprocess.run(
        [sys.executable, str(other / "run_all.py"), "--params", "params/ci.yaml", "--only", "ingest",
         *dir_args(tmp_path / "project")],
        capture_output=True, text=True, env=env, cwd=other, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(marker.read_text()).resolve() == (other / "lib" / "core" / "plots.py").resolve()


@pytest.fixture
def restore_logging():
    import logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    configure_logging(console=False)  # drops Quire's handlers
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)


def _emit_samples() -> None:
    import logging

    logging.getLogger("lib.data.ingest").info("ingested rows=5")
    logging.getLogger("lib.monitoring.alerts").warning("alert message=drifted")
    logging.getLogger("evidently").warning("Column churned have different types")
    logging.getLogger("papermill").info("Executing Cell 3---------")
    logging.getLogger("papermill").info(
        "2026-01-01T00:00:00Z [warning  ] alert   [lib.monitoring.alerts] message='from a cell'"
    )
    logging.getLogger("papermill").warning("/x/y.py:1: FutureWarning: old api")
    logging.getLogger("sqlalchemy").error("store is down")


def test_quiet_console_shows_quire_warnings_and_errors_only(tmp_path, restore_logging):
    import io

    out = io.StringIO()
    log_file = tmp_path / "run.jsonl"
    configure_logging("INFO", log_file, stream=out, quiet=True)
    _emit_samples()
    shown = out.getvalue()
    assert "alert message=drifted" in shown and "from a cell" in shown and "store is down" in shown
    for hidden in ("ingested", "Column churned", "Executing Cell", "FutureWarning"):
        assert hidden not in shown
    assert len(shown.splitlines()) == 3
    assert len(log_file.read_text().splitlines()) == 7  # the file has every event


def test_a_kernels_console_shows_quire_events_only(restore_logging):
    import io

    out = io.StringIO()
    configure_logging("INFO", stream=out, own_only=True)
    _emit_samples()
    shown = out.getvalue()
    assert "ingested rows=5" in shown and "alert message=drifted" in shown
    assert "Column churned" not in shown and "Executing Cell" not in shown
    assert "store is down" in shown


def user_table(root: Path) -> Path:
    from tests.conftest import small_frame

    root.mkdir(parents=True, exist_ok=True)
    csv = root / "shop.csv"
    small_frame(90).to_csv(csv, index=False)
    return csv


def test_dry_run_checks_every_parameter_against_the_data(tmp_path):
    csv = user_table(tmp_path)
    base = [*dir_args(tmp_path), "-p", f"data.source={csv}", "-p", "data.target=label"]
    good = run_all(*base, "--dry-run")
    assert good.returncode == 0, good.stderr
    assert "evaluate.segments: auto -> ['paperless', 'plan']" in good.stdout
    assert "(nothing trained)" in good.stdout
    bad = run_all(
        *base, "-p", "evaluate.segments=[charges]", "-p", "data.id_column=shop_id", "--dry-run"
    )
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "2 parameter problem(s), found before anything was trained" in bad.stderr
    assert "data.id_column (from -p data.id_column): no column 'shop_id'" in bad.stderr
    assert "evaluate.segments (from -p evaluate.segments): 'charges'" in bad.stderr
    assert not (tmp_path / "data" / "processed").exists()


def test_a_parameter_problem_stops_the_run_before_any_stage_with_every_line_shown(tmp_path):
    csv = user_table(tmp_path)
    result = run_all(
        *dir_args(tmp_path),
        "-p",
        f"data.source={csv}",
        "-p",
        "data.target=label",
        "-p",
        "evaluate.segments=[charges]",
        "-p",
        "evaluate.floors={rmse: 2}",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: 2 parameter problem(s), found before anything was trained" in result.stderr
    assert "evaluate.floors (from -p evaluate.floors): 'rmse': not a binary metric" in (
        result.stderr
    )
    assert "evaluate.segments (from -p evaluate.segments): 'charges'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "processed").exists()  # no stage ran
    assert not (tmp_path / "mlruns").exists()


def test_the_monitor_waits_for_data_instead_of_failing(tmp_path):
    from lib.run.stages import get_stage

    csv = user_table(tmp_path)
    params = load_params(
        overrides=[*dirs_overrides(tmp_path), f"data.source={csv}", "data.target=label"]
    )
    waits = get_stage("monitor").waits
    assert waits is not None
    assert waits(params).startswith("no champion yet: the evaluate stage promoted no version")
    with_file = load_params(
        overrides=[
            *dirs_overrides(tmp_path),
            f"data.source={csv}",
            "data.target=label",
            "monitor.reference=" + str(csv),
        ]
    )
    reason = waits(with_file)
    assert reason is not None and reason.startswith("no current data yet: the prediction log")
    assert (
        waits(
            load_params(
                overrides=[
                    *dirs_overrides(tmp_path),
                    f"data.source={csv}",
                    "data.target=label",
                    f"monitor.reference={csv}",
                    f"monitor.current={csv}",
                ]
            )
        )
        is None
    )
