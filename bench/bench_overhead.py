"""Cost of notebooks and reports: `run_all.py --force` vs the same lib calls in a plain script.

    .venv/bin/python bench/bench_overhead.py [--repeats 3] [--rows 20000] [--params FILE]
                                             [--stages all|ingest]

``--stages all`` (the default) runs the four stages; ``--stages ingest`` is the earlier
ingest-only comparison (`run_all.py --only ingest`). ``--rows`` sets ``generator.rows``; with
``--params FILE`` (repeatable, e.g. ``params/ci.yaml``) the preset's sizes apply unless ``--rows``
is given too.

Each repeat runs both sides, alternately (the order flips every repeat), each as a fresh process
in a fresh temporary project folder (data, reports, logs and MLflow store), so neither inherits a
saved schema, a registered model or a champion from the other. The generator's raw files are made
once beforehand and copied into every folder before its run starts, so neither side pays for them.

The plain script resolves the parameters as run_all does (``load_params`` with the same presets,
``QUIRE__`` environment and overrides), hands each stage the sections run_all passes to its
notebook (through ``from_sections``, as the notebook does), and makes every ``lib`` call of
notebooks/01_ingest, 02_train, 03_evaluate and 04_monitor in order: the same tables, the plotly
figures built with ``.to_dict()`` in place of ``.show()``, Evidently's report, and each stage's gate
check. Left out, as they do no work beyond formatting: ``display(Markdown(...))`` of f-strings, and
the kernel's rendering of tables and figures into the executed notebook. ``result.summary()``,
``result.markdown()`` and ``result.concept_markdown()`` are lib calls and are kept. run_all's side
also pays papermill, a kernel per stage, HTML reports, fingerprints, the staging area and the
promotion of each stage's outputs, the run lock and reports/index.html: that is what is measured.

After every run an untimed check reads the run's MLflow store and monitoring results (model
versions, the champion, its test metrics, the monitoring verdict); the two sides must agree.

Prints the markdown table (medians) and a per-stage one: the script's own timings of each stage,
and each notebook's execution as run_all records it in status.json (0.1 s, or 0.1 min above two
minutes). Saves bench/results/overhead.json (overhead_ingest.json with ``--stages ingest``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, median, save
from lib.core.params import folder_overrides

STAGE_NAMES = ("ingest", "train", "evaluate", "monitor")

# The plain script's body, after :data:`RESOLVE`. lib logs go to stdout (plots.setup_notebook),
# so the per-stage seconds come on a line of their own after "BENCH".
PLAIN = """
from lib.core.params import from_sections
from lib.run.stages import get_stage

resolved = params


def stage_params(name):
    # what run_all hands the notebook, validated as the notebook does
    return from_sections(**resolved.section_dicts(get_stage(name).sections))


def ingest():
    from lib.core import plots
    from lib.data import profile
    from lib.data.ingest import check_gate, run_ingest

    plots.setup_notebook()
    params = stage_params("ingest")
    result = run_ingest(params)
    profile.profile_table(result.sample, result.schema)
    profile.distributions_figure(result.sample, result.schema).to_dict()
    result.report
    profile.target_overview(result.manifest, result.sample, result.schema).to_dict()
    profile.split_table(result.manifest)
    profile.preprocessing_preview(result.sample, result.schema, params.ingest.preprocessing)
    check_gate(result)


def train():
    from lib.core import plots
    from lib.model import train_plots
    from lib.model.train import check_gate, run_training

    plots.setup_notebook()
    params = stage_params("train")
    result = run_training(params)
    result.leaderboard()
    train_plots.cv_scores_figure(result.families, result.primary).to_dict()
    result.configurations()
    view = train_plots.learning_curve_view(
        result.learning_curve, result.primary, result.best.family
    )
    if not isinstance(view, str):
        view.to_dict()
    train_plots.importance_figure(result.best.importances, result.best.family).to_dict()
    result.mlflow_summary()
    check_gate(result)


def evaluate():
    from lib.core import plots
    from lib.model import train_plots
    from lib.model.evaluate import check_gate, figures, run_evaluation, scores_table

    plots.setup_notebook()
    params = stage_params("evaluate")
    result = run_evaluation(params)
    result.summary()
    scores_table(result)
    for figure in figures(result, params.project.seed):
        figure.to_dict()
    train_plots.importance_figure(
        result.importances, f"version {result.version}", split="test"
    ).to_dict()
    result.segments.round(4)
    result.worst
    check_gate(result)


def monitor():
    from lib.core import plots
    from lib.monitoring import monitor_plots
    from lib.monitoring.evidently_report import save_evidently_report
    from lib.monitoring.monitor import check_gate, run_monitor

    plots.setup_notebook()
    params = stage_params("monitor")
    result = run_monitor(params)
    result.markdown()
    monitor_plots.feature_table(result.features.table())
    for figure in result.top_figures(4):
        figure.to_dict()
    for figure in result.output_figures():
        figure.to_dict()
    monitor_plots.feature_table(result.outputs.table())
    figure = result.performance_figure()
    if figure is not None:
        figure.to_dict()
    result.concept_markdown()
    result.alerts_frame()
    save_evidently_report(result, params)
    check_gate(result)


seconds = {"startup": time.perf_counter() - t_start}
for name in args["stages"]:
    t0 = time.perf_counter()
    globals()[name]()
    seconds[name] = time.perf_counter() - t0
print("BENCH" + json.dumps(seconds))
"""

# Parameters resolved as run_all resolves them (.env under the process environment).
RESOLVE = """
import json, os, sys
from dotenv import dotenv_values
from lib.core.params import load_params
from lib.core.paths import PROJECT_ROOT

args = json.loads(sys.argv[1])
dotenv = {k: v for k, v in dotenv_values(PROJECT_ROOT / ".env").items() if v is not None}
params = load_params(args["presets"], args["overrides"], env={**dotenv, **os.environ})
"""

# Makes the generator's raw files (reference and production batch) for these parameters.
GENERATE = """
from lib.data.ingest import resolve_sources
resolve_sources(params)
print("BENCH" + json.dumps({"rows": params.generator.rows}))
"""

# What a finished run produced, read back (untimed) to check that both sides agree.
OUTCOME = """
from mlflow import MlflowClient

from lib.core import tracking
from lib.core.contracts.summary import read_summary
from lib.core.layout import Layout

tracking.setup(params)
client = MlflowClient()
name = tracking.model_name(params)
champion = client.get_model_version_by_alias(name, tracking.CHAMPION)
metrics = client.get_run(champion.run_id).data.metrics
summary = read_summary(Layout.of(params).monitoring_summary)
print("BENCH" + json.dumps({
    "versions": len(client.search_model_versions(f"name='{name}'")),
    "champion": champion.version,
    "test_metrics": {k: round(v, 6) for k, v in sorted(metrics.items()) if k.startswith("test_")},
    "monitor_verdict": summary.verdict,
    "alerts": sorted(a.rule for a in summary.alerts),
}))
"""


def _env() -> dict[str, str]:
    """The children's environment: one thread per library, no outside MLflow store or webhook."""
    drop = {"MLFLOW_TRACKING_URI", "QUIRE_ALERT_WEBHOOK_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "OMP_NUM_THREADS": "1"}


def _run(cmd: list[str]) -> tuple[float, dict | None]:
    """Wall time of a command and the JSON of its ``BENCH`` line, if any; fails loudly."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    seconds = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} ... failed ({out.returncode}):\n"
            f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        )
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH")), None)
    return seconds, json.loads(line[5:]) if line else None


def _snippet(code: str, config: dict) -> list[str]:
    """A child running ``code`` after :data:`RESOLVE` (which reads ``config`` from argv)."""
    path = f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
    return [sys.executable, "-c", path + RESOLVE + code, json.dumps(config)]


def _stage_seconds(work: Path) -> dict[str, float]:
    """Each notebook's execution time as run_all recorded it (papermill and kernel included)."""
    status = json.loads((work / "reports" / "status.json").read_text())
    seconds = {}
    for name, entry in status.get("stages", {}).items():
        value, unit = (entry.get("duration") or "nan s").split()
        seconds[name] = float(value) * (60 if unit == "min" else 1)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rows", type=int, default=None, help="generator.rows (default: params, 20,000 in base)"
    )
    parser.add_argument(
        "--params",
        action="append",
        default=[],
        metavar="FILE",
        help="preset YAML passed to both sides, e.g. params/ci.yaml (repeatable)",
    )
    parser.add_argument(
        "--stages",
        choices=("all", "ingest"),
        default="all",
        help="all four stages (default), or ingest only (run_all --only ingest)",
    )
    args = parser.parse_args()
    presets = [str(Path(p).resolve()) for p in args.params]
    stages = list(STAGE_NAMES) if args.stages == "all" else ["ingest"]
    extra = [] if args.rows is None else [f"generator.rows={args.rows}"]
    label = "run_all s" if args.stages == "all" else "run_all --only ingest s"

    runs: dict[str, list] = {"plain": [], "run_all": []}
    stage_runs: dict[str, list] = {"plain": [], "run_all": []}
    outcomes: dict[str, list] = {"plain": [], "run_all": []}
    with tempfile.TemporaryDirectory(prefix="quire-overhead-") as tmp:
        root = Path(tmp)
        seed = root / "seed"
        config = {"presets": presets, "overrides": folder_overrides(seed) + extra}
        rows = _run(_snippet(GENERATE, config))[1]["rows"]
        script = root / "plain.py"
        script.write_text(
            f"import time\nt_start = time.perf_counter()\nimport sys\n"
            f"sys.path.insert(0, {str(ROOT)!r})\n{RESOLVE}{PLAIN}"
        )
        for repeat in range(args.repeats):
            order = ["plain", "run_all"] if repeat % 2 == 0 else ["run_all", "plain"]
            for side in order:
                work = root / f"{side}-{repeat}"
                shutil.copytree(seed / "data" / "raw", work / "data" / "raw")
                overrides = folder_overrides(work) + extra
                config = {"stages": stages, "presets": presets, "overrides": overrides}
                if side == "plain":
                    cmd = [sys.executable, str(script), json.dumps(config)]
                else:
                    cmd = [sys.executable, str(ROOT / "run_all.py")]
                    cmd += [a for p in presets for a in ("--params", p)]
                    cmd += [a for o in overrides for a in ("-p", o)]
                    cmd += ["--force"] if args.stages == "all" else ["--only", "ingest", "--force"]
                seconds, per_stage = _run(cmd)
                if side == "run_all":
                    per_stage = _stage_seconds(work)
                runs[side].append(seconds)
                stage_runs[side].append(per_stage)
                if args.stages == "all":
                    outcomes[side].append(_run(_snippet(OUTCOME, config))[1])
                shutil.rmtree(work)
                print(f"repeat {repeat + 1} {side}: {seconds:.2f} s", file=sys.stderr, flush=True)

    plain_s, run_all_s = median(runs["plain"]), median(runs["run_all"])
    per_stage = {
        side: {
            name: median([r[name] for r in stage_runs[side] if name in r])
            for name in stage_runs[side][0]
        }
        for side in runs
    }
    # Wall time outside the timed stages: interpreter start and exit for the script; run_all's
    # imports, fingerprints, HTML rendering, promotion and index for run_all.
    for side in runs:
        rest = [w - sum(r.values()) for w, r in zip(runs[side], stage_runs[side], strict=True)]
        per_stage[side]["outside the stages"] = median(rest)
    same = outcomes["plain"] == outcomes["run_all"]
    payload = {
        "stages": stages,
        "rows": rows,
        "params": args.params,
        "plain_median_s": plain_s,
        "run_all_median_s": run_all_s,
        "ratio": run_all_s / plain_s,
        "plain_runs": runs["plain"],
        "run_all_runs": runs["run_all"],
        "plain_stage_median_s": per_stage["plain"],
        "run_all_notebook_median_s": per_stage["run_all"],
        "outcomes": outcomes if args.stages == "all" else None,
        "same_outcomes": same if args.stages == "all" else None,
    }
    save("overhead" if args.stages == "all" else "overhead_ingest", payload)
    shown = f"{rows:,}" + (f" ({', '.join(args.params)})" if args.params else "")
    print(f"| rows | plain script s | {label} | ratio |")
    print("|---|---|---|---|")
    print(f"| {shown} | {plain_s:.2f} | {run_all_s:.2f} | {payload['ratio']:.2f}x |")
    print()
    print("| stage | plain script s | run_all s |")
    print("|---|---|---|")
    for name in dict.fromkeys([*per_stage["plain"], *per_stage["run_all"]]):
        cells = [per_stage[side].get(name) for side in ("plain", "run_all")]
        shown_cells = " | ".join("-" if c is None else f"{c:.2f}" for c in cells)
        print(f"| {name} | {shown_cells} |")
    print(
        "\nrun_all per stage: the notebook's execution as run_all records it (kernel start "
        "included); outside the stages: interpreter start and exit (script), run_all's own "
        "imports, fingerprints, HTML reports, promotion and index (run_all)."
    )
    if args.stages == "all":
        print()
        print(f"same models and results on both sides: {'yes' if same else 'NO'}")
        if not same:
            print(json.dumps(outcomes, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
