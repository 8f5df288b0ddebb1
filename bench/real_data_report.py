"""The real-data corpus's results: what one run gave, and the Markdown page they make.

:class:`Outcome` is filled by ``bench/real_data.py``; :func:`report` renders ``docs/real-data.md``;
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
        failure = (
            f"{o.failed_stage}: {_cell(_NOTEBOOK_CELL.sub('', o.error))}" if o.failed_stage else "-"
        )
        verdict = o.verdict or "-"
        if o.alerts and "alert" not in verdict:
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
    times = sorted(o.finished_at for o in outcomes if o.finished_at)
    when = f"Run {times[-1]}" if times else "Run"
    total = sum(o.seconds for o in outcomes) / 60
    return (
        f"{when}; {total:.0f} min in all. **{passed} of {len(outcomes)} passed first try; "
        f"{beat} beat the simple baseline.**\n\n{results_table(outcomes)}"
    )


def report(
    outcomes: list[Outcome],
    command: str,
    with_resets: list[Outcome] | None = None,
    resets: tuple[str, ...] = (),
) -> str:
    """Return the whole Markdown page: the minimal presets' results, optionally the diagnostic.

    Parameters
    ----------
    outcomes
        Results with the minimal presets (or, alone and with ``command`` saying so, the
        diagnostic run's).
    command
        The command that produced them, shown on the page.
    with_resets
        Results of the same tables with ``resets`` added, shown as a diagnostic section.
    resets
        The overrides of that diagnostic run, named on the page.
    """
    shown = "`, `".join(resets)
    diagnostic = ""
    if with_resets:
        diagnostic = f"""
## Diagnostic: the same tables with the generator's defaults cleared

```
python bench/real_data.py --with-resets
```

The minimal presets above stop at the first default that names the built-in generator's columns.
To see what fails behind it, this run adds `{shown}`, `data.date_column=null` (where the preset
does not set one) and `monitor.current=<the table itself>` to every preset. A new user should
never need these.

{_section(with_resets)}
"""
    results = f"## Results\n\n{_section(outcomes)}\n" if outcomes else ""
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

Measured on {platform.python_implementation()} {platform.python_version()}, 2 cores shared with other work (wall
times are indicative), `OMP_NUM_THREADS=1`, default parameters otherwise.

Columns: *first-try exit* is run_all's exit code (0 every stage passed, 1 a stage failed, 2
invalid parameters); *failed stage: error* is the first stage that failed and the last line of its
error; *headline metric* is the run's primary metric on the held-out test split (the challenger
version's `quire.test_<metric>` tag) beside a simple baseline on the same test split (the training
majority class, with the training class shares as probabilities, so roc_auc 0.5; the training
mean for regression), ✓ when the model beats it; *champion decision* is the evaluate gate's
sentence; *monitor verdict* is the latest monitoring summary's.

{results}{diagnostic}
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
