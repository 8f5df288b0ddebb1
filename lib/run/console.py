"""run_all's own lines on the console: a stage starts, a stage ends, where the reports are.

Everything else (papermill's cell log, library events, third-party warnings) goes to the run's
log file unless ``-v`` asks for it on the console too (:func:`lib.core.logs.configure_logging`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lib.run.records import StageOutcome, duration
from lib.run.stages import Stage


def say(line: str) -> None:
    """Print one line of run_all's progress (stderr: stdout carries the summary table)."""
    print(line, file=sys.stderr, flush=True)


def stage_started(stage: Stage, reason: str) -> None:
    """Say that ``stage`` starts, and why it runs."""
    say(f"{stage.name}: running {stage.notebook} ({reason})")


def stage_finished(outcome: StageOutcome) -> None:
    """Say how a stage ended, with its duration when it ran."""
    name = outcome.stage.name
    if outcome.status == "ok":
        say(f"{name}: done in {duration(outcome.seconds)}")
    elif outcome.status == "failed":
        say(f"{name}: failed after {duration(outcome.seconds)}")
    else:
        say(f"{name}: {outcome.status} ({outcome.reason})")


def reports_at(index: Path, log_file: Path) -> None:
    """Say where the reports and the run's full log are."""
    say(f"reports: {index}")
    say(f"log: {log_file}")
