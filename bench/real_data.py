"""Run every table of the real-data corpus through run_all.py with its minimal preset.

    python bench/real_data.py [--only penguins,wine] [--out docs/real-data.md]

For each dataset of :mod:`bench.real_data_corpus`: export the packaged table into a fresh folder,
write the preset a new user would write (source, target, and only what the table needs), run
``run_all.py --params <preset>`` in a subprocess with every project folder in that temporary
folder, and read what came out: exit code, the failed stage and its one-line error, the task,
the headline (primary) test metric beside a simple baseline on the same test split (majority
class or training mean), the champion decision, wall time and the monitor's verdict. Writes a
Markdown table to ``--out`` and prints it.

``--with-resets`` adds the overrides that clear the built-in generator's column names from the
defaults (see ``RESETS``): a diagnostic, to see the failure behind the first one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.real_data_corpus import Dataset, by_name
from lib.core.params import folder_overrides

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "real-data.md"
STAGES = ("ingest", "train", "evaluate", "monitor")

# What a user had to add on top of the minimal preset before the defaults stopped naming the
# built-in generator's columns (diagnostic only: --with-resets).
RESETS = (
    "data.id_column=null",
    "evaluate.segments=[]",
    "evaluate.floors={}",
    "monitor.alerts.key_features=[]",
    "monitor.alerts.metric_drop={}",
)


@dataclass
class Outcome:
    """What one dataset's run_all gave."""

    dataset: Dataset
    rows: int
    exit_code: int
    seconds: float
    failed_stage: str | None = None
    error: str = ""
    task: str | None = None
    metric: str | None = None
    score: float | None = None
    baseline: float | None = None
    higher_is_better: bool = True
    decision: str = ""
    verdict: str = ""
    alerts: int | None = None
    notes: list[str] = field(default_factory=list)
    finished_at: str = ""  # UTC, minutes

    @property
    def beats_baseline(self) -> bool | None:
        """Whether the headline metric beats the baseline (None when either is missing)."""
        if self.score is None or self.baseline is None:
            return None
        if self.higher_is_better:
            return self.score > self.baseline
        return self.score < self.baseline


# --------------------------------------------------------------------------------------------
# Running one dataset


def write_preset(dataset: Dataset, root: Path) -> tuple[Path, int]:
    """Export the table under ``root/data/raw`` and write its preset; return (preset, rows)."""
    source = dataset.export(root / "data" / "raw")
    rows = len(pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source))
    preset = root / f"{dataset.name}.yaml"
    preset.write_text(yaml.safe_dump(dataset.preset(source), sort_keys=False), encoding="utf-8")
    return preset, rows


def run_all_command(preset: Path, root: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """Return the run_all command for ``preset`` with every folder under ``root``."""
    overrides = [*folder_overrides(root), *extra]
    return [
        sys.executable,
        str(ROOT / "run_all.py"),
        "--params",
        str(preset),
        *[arg for o in overrides for arg in ("-p", o)],
    ]


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE__")}
    env.pop("MLFLOW_TRACKING_URI", None)  # the run's own store, never the user's server
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_dataset(
    dataset: Dataset, root: Path, *, resets: bool = False, timeout: float = 1800
) -> Outcome:
    """Run ``dataset`` through run_all in ``root`` and collect what came out.

    Parameters
    ----------
    dataset
        The corpus entry.
    root
        An empty folder for the exported table, the preset and every project folder.
    resets
        Add ``RESETS`` to the command line (diagnostic).
    timeout
        Seconds before the run is stopped (and recorded as failed).

    Returns
    -------
    Outcome
        Exit code, wall time, failure, metric against baseline, decision and verdict.
    """
    preset, rows = write_preset(dataset, root)
    extra: tuple[str, ...] = ()
    if resets:  # there is no production batch here: monitor the table itself
        extra = (*RESETS, f"monitor.current={_source(preset)}")
        if "date_column" not in dataset.preset_extra.get("data", {}):
            extra = (*extra, "data.date_column=null")
    command = run_all_command(preset, root, extra)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=_environment(),
            timeout=timeout,
        )
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout, stderr = -1, _text(exc.stdout), _text(exc.stderr) + f"\ntimeout {timeout}s"
    outcome = Outcome(dataset, rows, code, time.perf_counter() - started)
    outcome.finished_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    (root / "run_all.stdout").write_text(stdout, encoding="utf-8")
    (root / "run_all.stderr").write_text(stderr, encoding="utf-8")
    try:
        collect(outcome, preset, root, extra, stdout + "\n" + stderr)
    except Exception as exc:  # one unreadable result must not lose the rest of the corpus
        outcome.notes.append(f"results not read: {type(exc).__name__}: {exc}")
    return outcome


def _source(preset: Path) -> str:
    return str(yaml.safe_load(preset.read_text(encoding="utf-8"))["data"]["source"])


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def last_error_line(output: str) -> str:
    """Return the line of run_all's output that best says what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    markers = ("Error", "error:", "failed", "Traceback")
    for line in reversed(lines):
        if any(m in line for m in markers) and not line.startswith("File "):
            return line[:400]
    return lines[-1][:400] if lines else ""


# --------------------------------------------------------------------------------------------
# Reading the results


def collect(outcome: Outcome, preset: Path, root: Path, extra: tuple[str, ...], out: str) -> None:
    """Fill ``outcome`` from the run's status.json, processed splits, registry and summary."""
    from lib.core.contracts.status import read_status
    from lib.core.layout import Layout
    from lib.core.params import load_params

    try:
        params = load_params([preset], [*folder_overrides(root), *extra])
    except Exception as exc:  # the preset itself is invalid: that is the finding
        outcome.failed_stage = "params"
        outcome.error = last_error_line(out) or f"{type(exc).__name__}: {exc}"
        return
    layout = Layout.of(params, staged=False)
    status = read_status(layout.status)
    for stage in STAGES:
        record = status.stages.get(stage)
        if record is not None and record.status not in ("ok", "skipped"):
            outcome.failed_stage = stage
            lines = (record.error or "").strip().splitlines()
            outcome.error = lines[-1] if lines else ""
            break
    if outcome.exit_code != 0 and not outcome.error:
        outcome.error = last_error_line(out)
    if outcome.exit_code != 0 and outcome.failed_stage is None:
        outcome.failed_stage = "run_all" if status.stages else "params"
    _metrics(outcome, params)
    _verdict(outcome, layout)


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
    except Exception:  # ingest did not finish: nothing further to read
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
        outcome.notes.append(f"champion v{champion.version}")
    except MlflowException:
        outcome.notes.append("no champion")


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
    except Exception as exc:  # an unreadable summary is itself a finding
        outcome.verdict = f"unreadable summary: {exc}"
        return
    outcome.verdict = summary.verdict
    outcome.alerts = len(summary.alerts)


# --------------------------------------------------------------------------------------------
# The report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# An absolute path of the run's temporary folder: shown from the project folder on, as a user
# whose project it is would read it (and so that the page names no machine's folders).
_RUN_FOLDER = re.compile(r"(?:/[^\s/:'\"]+)+/(?=(?:data|reports|logs|mlruns)/)")


def _cell(text: str, limit: int = 160) -> str:
    text = _RUN_FOLDER.sub("", " ".join(text.split())).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def results_table(outcomes: list[Outcome]) -> str:
    """Return the Markdown table of the outcomes, one row per dataset."""
    head = (
        "| dataset | task | rows | first-try exit | failed stage: error | headline metric "
        "(test) vs baseline | champion decision | wall s | monitor verdict |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for o in outcomes:
        metric = "-"
        if o.metric is not None:
            mark = {True: " ✓", False: " ✗", None: ""}[o.beats_baseline]
            metric = f"{o.metric} {_fmt(o.score)} vs {_fmt(o.baseline)}{mark}"
        failure = f"{o.failed_stage}: {_cell(o.error)}" if o.failed_stage else "-"
        verdict = o.verdict or "-"
        if o.alerts:
            verdict += f" ({o.alerts} alert{'s' if o.alerts > 1 else ''})"
        lines.append(
            f"| {o.dataset.name} | {o.task or o.dataset.task} | {o.rows:,} | {o.exit_code} | "
            f"{failure} | {metric} | {_cell(o.decision, 120) or '-'} | {o.seconds:.0f} | "
            f"{_cell(verdict, 80)} |"
        )
    return "\n".join(lines)


def corpus_table(datasets: list[Dataset]) -> str:
    """Return the Markdown table of the datasets: origin, what each covers, its preset."""
    lines = [
        "| dataset | ships in | covers | preset beyond name, source, target |",
        "|---|---|---|---|",
    ]
    for d in datasets:
        extra = "; ".join(
            f"{section}.{key}: {value}"
            for section, values in d.preset_extra.items()
            for key, value in _flat(values)
        )
        lines.append(
            f"| {d.name} | {d.origin} | {', '.join(d.covers)} | "
            f"target `{d.target}`{'; ' + extra if extra else ''} |"
        )
    return "\n".join(lines)


def _flat(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            out.extend(_flat(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _section(outcomes: list[Outcome]) -> str:
    passed = sum(o.exit_code == 0 for o in outcomes)
    beat = sum(bool(o.beats_baseline) for o in outcomes)
    times = sorted(o.finished_at for o in outcomes if o.finished_at)
    when = f"Run {times[-1]}" if times else "Run"
    total = sum(o.seconds for o in outcomes) / 60
    return (
        f"{when}; {total:.0f} min in all. **{passed} of {len(outcomes)} passed first try; "
        f"{beat} beat the simple baseline.**\n\n{results_table(outcomes)}"
    )


def report(outcomes: list[Outcome], command: str, with_resets: list[Outcome] | None = None) -> str:
    """Return the whole Markdown page: the minimal presets' results, optionally the diagnostic.

    Parameters
    ----------
    outcomes
        Results with the minimal presets (or, alone and with ``command`` saying so, the
        diagnostic run's).
    command
        The command that produced them, shown on the page.
    with_resets
        Results of the same tables with ``RESETS`` added, shown as a diagnostic section.
    """
    resets = "`, `".join(RESETS)
    diagnostic = ""
    if with_resets:
        diagnostic = f"""
## Diagnostic: the same tables with the generator's defaults cleared

```
python bench/real_data.py --with-resets
```

The minimal presets above stop at the first default that names the built-in generator's columns.
To see what fails behind it, this run adds `{resets}`, `data.date_column=null` (where the preset
does not set one) and `monitor.current=<the table itself>` to every preset. A new user should
never need these.

{_section(with_resets)}
"""
    datasets = [o.dataset for o in outcomes] or [o.dataset for o in with_resets or []]
    return f"""# Real data, first try

Every table below ships inside a pip package and is exported exactly as shipped: ids, free text,
dates, coded categories and missing values kept; only the choice of table is ours. Each runs
through `run_all.py` with the preset a new user would write: `project.name`, `data.source`,
`data.target`, and only what the table truly needs (a date column and a time split for two of
them). Each run gets fresh folders in a temporary directory (`lib.core.params.folder_overrides`).

```
{command}
```

Measured on {platform.python_implementation()} {platform.python_version()}, 2 cores, shared with
other work (wall times are indicative), `OMP_NUM_THREADS=1`, default parameters otherwise.

Columns: *first-try exit* is run_all's exit code (0 every stage passed, 1 a stage failed, 2
invalid parameters); *failed stage: error* is the first stage that failed and the last line of its
error; *headline metric* is the run's primary metric on the held-out test split (the challenger
version's `quire.test_<metric>` tag) beside a simple baseline on the same test split (the training
majority class, with the training class shares as probabilities, so roc_auc 0.5; the training
mean for regression), ✓ when the model beats it; *champion decision* is the evaluate gate's
sentence; *monitor verdict* is the latest monitoring summary's.

## Results

{_section(outcomes)}
{diagnostic}
## The corpus

{corpus_table(datasets)}

A preset is the YAML `bench/real_data.py` writes beside the exported table, e.g. for
`penguins_season`:

```yaml
project: {{name: penguins_season}}
data: {{source: data/raw/penguins-raw.csv, target: studyName, date_column: Date Egg}}
ingest: {{split: {{by_time: true}}}}
```

The slow test `tests/test_real_data.py` runs the smallest binary, regression and multiclass
tables (`breast_cancer`, `diabetes`, `wine`) the same way and requires exit 0, a champion and a
test metric better than the baseline.
"""


def save_outcomes(outcomes: list[Outcome], path: Path) -> None:
    """Write the outcomes as JSON (dataset by name), to render the page again without running."""
    rows = [
        {**{f.name: getattr(o, f.name) for f in dataclasses.fields(o)}, "dataset": o.dataset.name}
        for o in outcomes
    ]
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def load_outcomes(path: Path) -> list[Outcome]:
    """Read outcomes written by :func:`save_outcomes`."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [Outcome(**{**row, "dataset": by_name([row["dataset"]])[0]}) for row in rows]


def main(argv: list[str] | None = None) -> int:
    """Run the corpus (or ``--only`` some of it), write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated dataset names (default: all)")
    parser.add_argument("--out", type=Path, default=DOC, help="Markdown file to write")
    parser.add_argument("--with-resets", action="store_true", help="add RESETS (diagnostic)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per dataset")
    parser.add_argument("--json", type=Path, help="also save the outcomes as JSON here")
    parser.add_argument("--render", type=Path, help="render saved outcomes; run nothing")
    parser.add_argument("--render-resets", type=Path, help="... and these as the diagnostic")
    parser.add_argument("--command", help="the command to show on the page (with --render)")
    args = parser.parse_args(argv)
    if args.render:
        resets = load_outcomes(args.render_resets) if args.render_resets else None
        text = report(
            load_outcomes(args.render), args.command or "python bench/real_data.py", resets
        )
        args.out.write_text(text, encoding="utf-8")
        print(text)
        return 0
    datasets = by_name(args.only.split(",") if args.only else None)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="quire-real-") as tmp:
        base = args.keep or Path(tmp)
        for dataset in datasets:
            root = base / dataset.name
            root.mkdir(parents=True, exist_ok=True)
            outcome = run_dataset(dataset, root, resets=args.with_resets, timeout=args.timeout)
            print(
                f"{dataset.name}: exit {outcome.exit_code} in {outcome.seconds:.0f}s "
                f"{outcome.failed_stage or ''} {outcome.error[:200]}",
                flush=True,
            )
            outcomes.append(outcome)
            if args.json:
                save_outcomes(outcomes, args.json)
    shown = ["python bench/real_data.py"]
    if args.only:
        shown.append(f"--only {args.only}")
    if args.with_resets:
        shown.append("--with-resets")
    text = report(outcomes, " ".join(shown))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
