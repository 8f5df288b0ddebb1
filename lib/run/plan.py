"""What runs and why: the decisions of ``run_all``, ``--dry-run`` and ``--status``.

Pure: this module hashes what stages depend on and reads what they produced, but never runs a
notebook, touches a staging area or writes a file. A stage runs when something it depends on
changed since it last succeeded (its notebook's cells, its parameters, ``lib/``, an earlier
stage's outputs, its input data; ``lib.run.fingerprint``) or its outputs are missing or were
changed; otherwise it is up to date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lib.core.contracts.status import StageRecord, Status
from lib.core.params import Params
from lib.run import fingerprint
from lib.run.records import StageOutcome
from lib.run.stages import STAGES, Stage

KINDS = {
    "notebook": "its notebook's cells changed",
    "params": "its parameters changed",
    "lib": "code in lib/ changed",
    "upstream": "an earlier stage's outputs changed",
    "inputs": "its input data changed",
}
FORCED = "forced (--force)"
UP_TO_DATE = "nothing it depends on changed"
UPSTREAM_WOULD_RUN = "an earlier stage would rerun"


@dataclass(frozen=True)
class Decision:
    """Whether a stage runs, and what that was decided from.

    Parameters
    ----------
    stage
        The stage.
    parts
        Its fingerprint's components (recorded when it succeeds).
    outputs
        The digest of its outputs as they are now (None: missing or damaged).
    why
        Why it must run; None when it is up to date.
    """

    stage: Stage
    parts: dict[str, str]
    outputs: str | None
    why: str | None


def why(saved: StageRecord | None, parts: dict[str, str], outputs: str | None) -> str | None:
    """Return why the stage must run, or None when it is up to date."""
    if saved is None:
        return "it has not run before"
    if saved.status not in ("ok", "up to date"):
        return f"its last run {saved.status}"
    if not saved.inputs:
        return "no fingerprint recorded yet"
    changed = [KINDS[k] for k in parts if saved.inputs.get(k) != parts[k]]
    if changed:
        return "; ".join(changed)
    if outputs is None or outputs != saved.outputs:
        return "its outputs are missing or were changed"
    return None


def decide(
    stage: Stage,
    params: Params,
    saved: StageRecord | None,
    upstream: Sequence[str],
    *,
    forced: bool,
    notebooks_dir: Path,
    lib_hash: str,
) -> Decision:
    """Decide whether ``stage`` runs, given the digests of the earlier stages' outputs."""
    parts = fingerprint.components(stage, params, upstream, notebooks_dir, lib_hash)
    outputs = fingerprint.outputs_digest(stage, params)
    return Decision(stage, parts, outputs, FORCED if forced else why(saved, parts, outputs))


def span(stages: Sequence[Stage]) -> list[Stage]:
    """Return the stages to walk: every pipeline stage up to the last selected one.

    Stages not selected still feed later ones (their outputs' digests); a custom list of stages
    (tests) is walked as it is.
    """
    if stages and all(s in STAGES for s in stages):
        return list(STAGES[: STAGES.index(stages[-1]) + 1])
    return list(stages)


def forced_names(stages: Sequence[Stage], force: bool | Sequence[str]) -> set[str]:
    """Return the names of the stages ``--force`` reruns (True: every selected one)."""
    return {s.name for s in stages} if force is True else set(force or [])


def plan(
    params: Params,
    stages: Sequence[Stage],
    status: Status,
    *,
    force: bool | Sequence[str] = False,
    notebooks_dir: Path,
) -> list[StageOutcome]:
    """Return what a run would do: each selected stage ``would run`` (and why) or is up to date.

    A stage after one that would run would run too: its inputs are not known yet.
    """
    selected = {s.name for s in stages}
    forced = forced_names(stages, force)
    lib_hash = fingerprint.code_hash()
    upstream: list[str] = []
    outcomes = []
    rerun = False
    for stage in span(stages):
        if stage.name not in selected:  # its outputs as they are now
            upstream.append(fingerprint.outputs_digest(stage, params) or "missing")
            continue
        saved = status.stages.get(stage.name)
        decision = decide(
            stage,
            params,
            saved,
            upstream,
            forced=stage.name in forced,
            notebooks_dir=notebooks_dir,
            lib_hash=lib_hash,
        )
        reason = decision.why or (UPSTREAM_WOULD_RUN if rerun else None)
        if reason is None:
            outcomes.append(StageOutcome(stage, "up to date", 0.0, reason=UP_TO_DATE))
        else:
            outcomes.append(StageOutcome(stage, "would run", 0.0, reason=reason))
            rerun = True
        upstream.append(decision.outputs or "missing")
    return outcomes
