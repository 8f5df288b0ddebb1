"""The real-data corpus's results: what one run and its loop gave, and the Markdown page they make.

:class:`Outcome` is filled by ``bench/real_data.py`` (its :class:`~bench.real_data_loop.Loop` by
``bench/real_data_loop.py``); :func:`report` renders ``docs/real-data.md``;
:func:`save_outcomes` / :func:`load_outcomes` keep a run's results as JSON so that the page can be
rendered again without running the corpus.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.real_data_corpus import Dataset, by_name
from bench.real_data_loop import REPLAY_ROWS, Loop


@dataclass
class Outcome:
    """What one dataset's first run_all gave, and the loop after it (None: not run)."""

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
    champion: str | None = None  # the champion's version after the run
    monitor_first: str = ""  # the monitor stage's status on the first run (skipped: no log yet)
    verdict: str = ""  # the first run's monitoring summary, if it wrote one
    alerts: int | None = None
    notes: list[str] = field(default_factory=list)
    finished_at: str = ""  # UTC, minutes
    loop: Loop | None = None

    @property
    def beats_baseline(self) -> bool | None:
        """Whether the headline metric beats the baseline (None when either is missing)."""
        if self.score is None or self.baseline is None:
            return None
        if self.higher_is_better:
            return self.score > self.baseline
        return self.score < self.baseline


# --------------------------------------------------------------------------------------------
# The report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# An absolute path of the run's temporary folder: shown from the project folder on, as a user
# whose project it is would read it (and so that the page names no machine's folders).
_RUN_FOLDER = re.compile(r"(?:/[^\s/:'\"]+)+/(?=(?:data|reports|logs|mlruns)/)")


# run_all's "01_ingest.ipynb failed in cell 5 (In [4] in the report): " before the error itself
_NOTEBOOK_CELL = re.compile(r"^\S+\.ipynb failed in cell \d+ \([^)]*\): ")


def _cell(text: str, limit: int = 160) -> str:
    text = _RUN_FOLDER.sub("", " ".join(text.split())).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def results_table(outcomes: list[Outcome]) -> str:
    """Return the Markdown table of the outcomes, one row per dataset: first run, then the loop."""
    head = (
        "| dataset | task | rows | first-try exit | failed stage: error | headline metric "
        "(test) vs baseline | champion decision | wall s | rows served | monitor exit | "
        "monitor verdict (or the loop's failed step: error) | loop s (replay + monitor) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for o in outcomes:
        metric = "-"
        if o.metric is not None:
            mark = {True: " ✓", False: " ✗", None: ""}[o.beats_baseline]
            metric = f"{o.metric} {_fmt(o.score)} vs {_fmt(o.baseline)}{mark}"
        failure = (
            f"{o.failed_stage}: {_cell(_NOTEBOOK_CELL.sub('', o.error))}" if o.failed_stage else "-"
        )
        lines.append(
            f"| {o.dataset.name} | {o.task or o.dataset.task} | {o.rows:,} | {o.exit_code} | "
            f"{failure} | {metric} | {_cell(o.decision, 120) or '-'} | {o.seconds:.0f} | "
            f"{_loop_cells(o.loop)} |"
        )
    return "\n".join(lines)


def _loop_cells(loop: Loop | None) -> str:
    """Return the loop's four cells: rows served, monitor exit, verdict or failure, seconds."""
    if loop is None:
        return "- | - | not run | -"
    said = loop.verdict or "-"
    if loop.failed_step:
        said = f"{loop.failed_step}: {_NOTEBOOK_CELL.sub('', loop.error)}"
    elif loop.alerts and "alert" not in said:
        said += f" ({len(loop.alerts)} alert{'s' if len(loop.alerts) > 1 else ''})"
    if loop.alerts:
        said += f"; fired: {', '.join(loop.alerts)}"
    served = "-" if loop.served_rows is None else f"{loop.served_rows:,}"
    monitor = "-" if loop.monitor_exit is None else str(loop.monitor_exit)
    steps = [t for t in (loop.replay_seconds, loop.monitor_seconds) if t is not None]
    seconds = " + ".join(f"{t:.0f}" for t in steps) or "-"
    return f"{served} | {monitor} | {_cell(said, 160)} | {seconds}"


def corpus_table(datasets: list[Dataset]) -> str:
    """Return the Markdown table of the datasets: origin, what each covers, its preset."""
    lines = [
        "| dataset | ships in | covers | preset besides project.name and data.source |",
        "|---|---|---|---|",
    ]
    for d in datasets:
        extra = "; ".join(
            f"{section}.{key}: {str(value).lower() if isinstance(value, bool) else value}"
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
    looped = [o.loop for o in outcomes if o.loop is not None]
    verdicts = sum(lp.monitor_exit == 0 and lp.monitor_status == "ok" for lp in looped)
    times = sorted(o.finished_at for o in outcomes if o.finished_at)
    when = f"Run {times[-1]}" if times else "Run"
    total = sum(o.seconds + _loop_seconds(o.loop) for o in outcomes) / 60
    loop = (
        f" {verdicts} of {len(looped)} served their champion and got a monitor verdict."
        if looped
        else ""
    )
    return (
        f"{when}; {total:.0f} min in all. **{passed} of {len(outcomes)} passed first try; "
        f"{beat} beat the simple baseline.{loop}**\n\n{results_table(outcomes)}"
    )


def _loop_seconds(loop: Loop | None) -> float:
    if loop is None:
        return 0.0
    steps = (loop.ready_seconds, loop.replay_seconds, loop.monitor_seconds)
    return sum(t for t in steps if t is not None)


def report(outcomes: list[Outcome], command: str) -> str:
    """Return the whole Markdown page: what the command gave, and the corpus.

    Parameters
    ----------
    outcomes
        One per dataset, in corpus order.
    command
        The command that produced them, shown on the page.
    """
    fast = "--fast" in command
    settings = (
        "`params/ci.yaml` layered after each preset (`--fast`: small grids, 3 CV folds)"
        if fast
        else "default parameters otherwise"
    )
    return f"""# Real data, first try, then the loop

Every table below ships inside a pip package and is exported exactly as shipped: ids, free text,
dates, coded categories and missing values kept; only the choice of table is ours. Each runs
through `run_all.py` with the preset a new user would write: `project.name`, `data.source`,
`data.target`, and only what the table truly needs (a date column and a time split for two of
them). Each run gets fresh folders in a temporary directory (`lib.core.params.folder_overrides`).

On a first run the monitor stage has no current data (the server's prediction log is empty), so
it is skipped. When run_all passed and promoted a champion, the bench then does what a user does
next: serves the champion (`python -m server` on a free port of 127.0.0.1, with the same preset
and folders), replays the table's first {REPLAY_ROWS} rows through REST
(`python -m lib.loop.replay <table> --rows {REPLAY_ROWS}`), stops the server (which flushes its
prediction log) and runs `run_all.py --only monitor` with the same layers. The rows go in the
file's order: a table sorted by some column sends a skewed sample, and the monitor rightly sees
drift in it.

```
{command}
```

Measured on {platform.python_implementation()} {platform.python_version()}, 2 cores shared with other work (wall times are
indicative), `OMP_NUM_THREADS=1`, {settings}.

Columns: *first-try exit* is run_all's exit code (0 every stage passed, 1 a stage failed, 2
invalid parameters or data); *failed stage: error* is the first stage that failed and the last
line of its error; *headline metric* is the run's primary metric on the held-out test split (the
challenger version's `quire.test_<metric>` tag) beside a simple baseline on the same test split
(the training majority class, with the training class shares as probabilities, so roc_auc 0.5;
the training mean for regression), ✓ when the model beats it; *champion decision* is the evaluate
gate's sentence; *wall s* is the first run's. Then the loop: *rows served* are the rows in the
prediction log once the server stopped; *monitor exit* is the second run_all's exit code;
*monitor verdict* is its monitoring summary's verdict and the alert rules that fired, or the
loop's step that failed (server, replay, monitor; bench: the harness itself) and its last error
line; *loop s* are the replay's and the monitor run's wall seconds ("not run": the first run
failed or promoted no champion).

## Results

{_section(outcomes)}

## The corpus

{corpus_table([o.dataset for o in outcomes])}

A preset is the YAML `bench/real_data.py` writes beside the exported table, e.g. for
`penguins_season`:

```yaml
project: {{name: penguins_season}}
data: {{source: data/raw/penguins-raw.csv, target: studyName, date_column: Date Egg}}
ingest: {{split: {{by_time: true}}}}
```

The slow test `tests/test_real_data.py` runs the smallest binary, regression and multiclass
tables (`breast_cancer`, `diabetes`, `wine`) the same way with `--fast`'s parameters, and the
loop for `diabetes`: it requires exit 0, a champion, a test metric better than the baseline, and
for `diabetes` served rows in the log and a monitor verdict with exit 0.
"""


def save_outcomes(outcomes: list[Outcome], path: Path) -> None:
    """Write the outcomes as JSON (dataset by name), to render the page again without running."""
    rows = []
    for o in outcomes:
        row = {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
        row["dataset"] = o.dataset.name
        row["loop"] = None if o.loop is None else dataclasses.asdict(o.loop)
        rows.append(row)
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def load_outcomes(path: Path) -> list[Outcome]:
    """Read outcomes written by :func:`save_outcomes`."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [
        Outcome(
            **{
                **row,
                "dataset": by_name([row["dataset"]])[0],
                "loop": None if row.get("loop") is None else Loop(**row["loop"]),
            }
        )
        for row in rows
    ]
