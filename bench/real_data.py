"""Run every table of the real-data corpus through run_all.py with its minimal preset, then the loop.

    python bench/real_data.py [--only penguins,wine] [--fast] [--no-loop] [--out docs/real-data.md]

For each dataset of :mod:`bench.real_data_corpus`: export the packaged table into a fresh folder,
write the preset a new user would write (source, target, and only what the table needs), run
``run_all.py --params <preset>`` in a subprocess with every project folder in that temporary
folder, and read what came out: exit code, the failed stage and its one-line error, the task,
the headline (primary) test metric beside a simple baseline on the same test split (majority
class or training mean), the champion decision and wall time. When it passed and promoted a
champion, close the loop a user closes next (:mod:`bench.real_data_loop`): serve the champion,
replay the table's first rows, run the monitor stage again and read its verdict. Writes a
Markdown table to ``--out`` and prints it.

``--fast`` layers ``params/ci.yaml`` after each preset (small grids, 3 CV folds: training sizes
only, no data, evaluate or monitor setting); ``--no-loop`` stops after the first run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.real_data_corpus import Dataset, by_name
from bench.real_data_loop import (
    Loop,
    last_error_line,
    layer_args,
    run_all_command,
    run_loop,
    run_session,
)
from bench.real_data_report import Outcome, load_outcomes, report, save_outcomes
from lib.core.errors import DataValidationError, ParamsError, QuireError
from lib.core.params import folder_overrides

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "real-data.md"
FAST = ROOT / "params" / "ci.yaml"
STAGES = ("ingest", "train", "evaluate", "monitor")

__all__ = ["baseline", "last_error_line", "main", "run_dataset", "write_preset"]


# --------------------------------------------------------------------------------------------
# Running one dataset


def write_preset(dataset: Dataset, root: Path) -> tuple[Path, Path, int]:
    """Export the table under ``root/data/raw`` and write its preset; return (preset, table, rows)."""
    source = dataset.export(root / "data" / "raw")
    rows = len(pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source))
    preset = root / f"{dataset.name}.yaml"
    preset.write_text(yaml.safe_dump(dataset.preset(source), sort_keys=False), encoding="utf-8")
    return preset, source, rows


def run_dataset(
    dataset: Dataset, root: Path, *, fast: bool = False, loop: bool = True, timeout: float = 1800
) -> Outcome:
    """Run ``dataset`` through run_all in ``root``, collect what came out, then close the loop.

    Parameters
    ----------
    dataset
        The corpus entry.
    root
        An empty folder for the exported table, the preset and every project folder.
    fast
        Layer ``params/ci.yaml`` after the preset (small grids, 3 CV folds).
    loop
        When run_all passed and promoted a champion: serve it, replay the table, monitor again.
    timeout
        Seconds before run_all is stopped (and recorded as failed).

    Returns
    -------
    Outcome
        Exit code, wall time, failure, metric against baseline, decision and the loop's outcome.
    """
    preset, table, rows = write_preset(dataset, root)
    presets = [preset, FAST] if fast else [preset]
    overrides = folder_overrides(root)
    started = time.perf_counter()
    code, stdout, stderr = run_session(run_all_command(layer_args(presets, overrides)), timeout)
    outcome = Outcome(dataset, rows, code, time.perf_counter() - started)
    outcome.finished_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    (root / "run_all.stdout").write_text(stdout, encoding="utf-8")
    (root / "run_all.stderr").write_text(stderr, encoding="utf-8")
    try:
        params = collect(outcome, presets, overrides, stdout + "\n" + stderr)
    except Exception as exc:  # one unreadable result must not lose the rest of the corpus
        outcome.notes.append(f"results not read: {type(exc).__name__}: {exc}")
        return outcome
    if loop and params is not None and outcome.exit_code == 0 and outcome.champion:
        try:
            outcome.loop = run_loop(table, presets, overrides, params, root)
        except Exception as exc:  # the same: record it and go on with the next table
            outcome.loop = Loop(failed_step="bench", error=f"{type(exc).__name__}: {exc}")
    return outcome


# --------------------------------------------------------------------------------------------
# Reading the results


def collect(outcome: Outcome, presets: list[Path], overrides: list[str], out: str) -> Any:
    """Fill ``outcome`` from the run's status.json, processed splits, registry and summary.

    Returns the run's resolved parameters, or None when they are invalid (that is the finding).
    """
    from lib.core.contracts.status import read_status
    from lib.core.layout import Layout
    from lib.core.params import load_params

    try:
        params = load_params(presets, overrides)
    except ParamsError as exc:  # the preset itself is invalid: that is the finding
        outcome.failed_stage = "params"
        outcome.error = last_error_line(out) or f"{type(exc).__name__}: {exc}"
        return None
    layout = Layout.of(params, staged=False)
    status = read_status(layout.status)
    for stage in STAGES:
        record = status.stages.get(stage)
        if record is not None and record.status not in ("ok", "skipped"):
            outcome.failed_stage = stage
            lines = (record.error or "").strip().splitlines()
            outcome.error = lines[-1] if lines else ""
            break
    monitor = status.stages.get("monitor")
    outcome.monitor_first = monitor.status if monitor else ""
    if outcome.exit_code != 0 and not outcome.error:
        outcome.error = last_error_line(out)
    if outcome.exit_code != 0 and outcome.failed_stage is None:
        outcome.failed_stage = "run_all" if status.stages else "params"
    _metrics(outcome, params)
    _verdict(outcome, layout)
    return params


def _metrics(outcome: Outcome, params: Any) -> None:
    """Headline test metric, its baseline, task and the gate's decision, where they exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from lib.core import tracking
    from lib.core.contracts.tags import read_version_tags
    from lib.data.ingest import load_processed
    from lib.model.metrics import metrics_for

    try:
        data = load_processed(params)
    except (QuireError, OSError):  # ingest did not finish: nothing further to read
        return
    outcome.task = data.schema.task
    primary, _ = metrics_for(data.schema.task, params.train.primary_metric, None)
    outcome.metric, outcome.higher_is_better = primary.name, primary.higher_is_better
    train, test = data.splits["train"], data.splits["test"]
    target = data.schema.target
    outcome.baseline = baseline(primary.name, data.schema.task, train[target], test[target])
    client = MlflowClient(tracking_uri=tracking.tracking_uri(params, env={}))
    name = tracking.model_name(params)
    try:
        version = client.get_model_version_by_alias(name, tracking.CHALLENGER)
    except MlflowException:
        return
    score = version.tags.get(f"quire.test_{primary.name}")
    outcome.score = None if score is None else float(score)
    run_id = read_version_tags(version.tags).run_id or version.run_id
    tags = client.get_run(run_id).data.tags
    promoted = tags.get("quire.promotion")
    if promoted:
        outcome.decision = f"{promoted}: {tags.get('quire.promotion_reason', '')}"
    try:
        champion = client.get_model_version_by_alias(name, tracking.CHAMPION)
    except MlflowException:
        return
    outcome.champion = str(champion.version)


def baseline(metric: str, task: str, train: pd.Series, test: pd.Series) -> float:
    """Return ``metric`` on ``test`` of the simplest model fitted on ``train``.

    Classification predicts the training majority class with the training class shares as
    probabilities; regression predicts the training mean.
    """
    from sklearn import metrics as m

    train, test = train.dropna(), test.dropna()
    if task == "regression":
        guess = np.full(len(test), float(train.mean()))
        scores = {
            "rmse": lambda: m.root_mean_squared_error(test, guess),
            "mae": lambda: m.mean_absolute_error(test, guess),
            "r2": lambda: m.r2_score(test, guess),
        }
        return float(scores[metric]())
    # labels as text: integer classes read back as objects are "unknown" targets to sklearn
    train, test = train.astype(str), test.astype(str)
    shares = train.value_counts(normalize=True).sort_index()
    classes = list(shares.index)
    majority = shares.idxmax()
    pred = np.full(len(test), majority)
    truth = test.to_numpy()
    proba = np.tile(shares.to_numpy(), (len(test), 1))
    if metric == "roc_auc":
        return 0.5  # constant scores rank no row above another
    if metric == "average_precision":  # a constant score: precision is the positive share
        return float((truth == classes[-1]).mean())
    scores = {
        "accuracy": lambda: m.accuracy_score(truth, pred),
        "balanced_accuracy": lambda: m.balanced_accuracy_score(truth, pred),
        "f1_macro": lambda: m.f1_score(truth, pred, average="macro", zero_division=0),
        "log_loss": lambda: m.log_loss(truth, proba, labels=classes),
    }
    return float(scores[metric]())


def _verdict(outcome: Outcome, layout: Any) -> None:
    from lib.core.contracts.summary import read_summary

    path = layout.monitoring_summary
    if not path.exists():
        return
    try:
        summary = read_summary(path)
    except DataValidationError as exc:  # an unreadable summary is itself a finding
        outcome.verdict = f"unreadable summary: {exc}"
        return
    outcome.verdict = summary.verdict
    outcome.alerts = len(summary.alerts)


def main(argv: list[str] | None = None) -> int:
    """Run the corpus (or ``--only`` some of it), write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated dataset names (default: all)")
    parser.add_argument("--out", type=Path, default=DOC, help="Markdown file to write")
    parser.add_argument("--fast", action="store_true", help="layer params/ci.yaml after presets")
    parser.add_argument("--no-loop", action="store_true", help="stop after the first run")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run_all")
    parser.add_argument("--json", type=Path, help="also save the outcomes as JSON here")
    parser.add_argument("--render", type=Path, help="render saved outcomes; run nothing")
    parser.add_argument("--command", help="the command to show on the page (with --render)")
    args = parser.parse_args(argv)
    if args.render:
        text = report(load_outcomes(args.render), args.command or "python bench/real_data.py")
        args.out.write_text(text, encoding="utf-8")
        print(text)
        return 0
    try:
        datasets = by_name(args.only.split(",") if args.only else None)
    except KeyError as exc:
        parser.error(f"--only: {exc.args[0]}")
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="quire-real-") as tmp:
        base = args.keep or Path(tmp)
        for dataset in datasets:
            root = base / dataset.name
            root.mkdir(parents=True, exist_ok=True)
            outcome = run_dataset(
                dataset, root, fast=args.fast, loop=not args.no_loop, timeout=args.timeout
            )
            print(progress_line(outcome), flush=True)
            outcomes.append(outcome)
            if args.json:
                save_outcomes(outcomes, args.json)
    text = report(outcomes, shown_command(args.only, fast=args.fast, no_loop=args.no_loop))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


def shown_command(only: str | None, *, fast: bool, no_loop: bool) -> str:
    """Return the command line shown on the page for these options."""
    shown = ["python bench/real_data.py"]
    shown += [f"--only {only}"] if only else []
    shown += ["--fast"] if fast else []
    shown += ["--no-loop"] if no_loop else []
    return " ".join(shown)


def progress_line(outcome: Outcome) -> str:
    """Return one line on the console per finished dataset."""
    line = (
        f"{outcome.dataset.name}: exit {outcome.exit_code} in {outcome.seconds:.0f}s "
        f"{outcome.failed_stage or ''} {outcome.error[:200]}"
    ).rstrip()
    loop = outcome.loop
    if loop is not None:
        said = f"{loop.failed_step}: {loop.error[:200]}" if loop.failed_step else loop.verdict
        line += f"; loop: {loop.served_rows} rows served, monitor exit {loop.monitor_exit}: {said}"
    return line


if __name__ == "__main__":
    sys.exit(main())
