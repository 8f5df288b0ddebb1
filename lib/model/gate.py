"""The promotion gate: does the challenger replace the champion? One sentence says why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lib.core.errors import ParamsError
from lib.model.metrics import Metric


@dataclass(frozen=True)
class Decision:
    """The gate's verdict and the one-sentence reason with the numbers."""

    promote: bool
    reason: str
    challenger_version: str
    champion_version: str | None
    challenger_score: float
    champion_score: float | None
    failed_floors: tuple[str, ...] = ()
    leakage: tuple[str, ...] = ()


def _loss(name: str) -> bool:
    return name in {"log_loss", "brier", "rmse", "mae", "mape"}


def check_floors(scores: dict[str, float], floors: dict[str, float]) -> list[str]:
    """Return a phrase per floor the scores fail (a minimum for scores, a maximum for losses)."""
    failed = []
    for name, limit in floors.items():
        if name not in scores:
            raise ParamsError(
                f"evaluate.floors.{name}: no such metric for this task; use one of "
                f"{', '.join(sorted(k for k in scores if '[' not in k))}",
                key=f"evaluate.floors.{name}",
            )
        value = scores[name]
        if (value > limit) if _loss(name) else (value < limit):
            relation = "above the ceiling" if _loss(name) else "below the floor"
            failed.append(f"{name} {value:.4f} is {relation} {limit:g}")
    return failed


def decide(
    primary: Metric,
    challenger: tuple[str, dict[str, float]],
    champion: tuple[str, dict[str, float]] | None,
    min_delta: float,
    floors: dict[str, float],
    leaks: Sequence[tuple[str, str]] = (),
) -> Decision:
    """Decide promotion from test-split scores of the challenger and the current champion.

    Parameters
    ----------
    primary
        The metric that decides (and its direction).
    challenger
        (version, scores) of the newly trained model.
    champion
        (version, scores) of the current champion on the same test split, or None.
    min_delta
        How much better the challenger's primary metric must be.
    floors
        Absolute limits the challenger must pass in any case.
    leaks
        (column, finding) of each suspected leak that blocks promotion (not acknowledged, and
        ``evaluate.block_on_leakage`` on); any one keeps the challenger out.

    Returns
    -------
    Decision
        Promote or not, and why, in one sentence with the numbers.
    """
    version, scores = challenger
    mine = scores[primary.name]
    failed = check_floors(scores, floors)
    old = champion[0] if champion is not None else None
    if leaks:
        columns = tuple(dict.fromkeys(column for column, _ in leaks))
        named = ", ".join(repr(c) for c in columns)
        stays = f"champion version {old} stays" if old is not None else "there is no champion"
        reason = (
            f"Version {version} is not promoted ({stays}): suspected leakage: "
            f"{'; '.join(finding for _, finding in leaks)}. Remove {named} (data.drop) and "
            f"retrain or, if legitimate, list {named} in evaluate.leakage_acknowledged "
            "(evaluate.block_on_leakage: false turns the check off)."
        )
        theirs = champion[1].get(primary.name) if champion is not None else None
        return Decision(False, reason, version, old, mine, theirs, tuple(failed), columns)
    if not np.isfinite(mine):
        reason = (
            f"Version {version} is not promoted: its test {primary.name} is undefined (a class "
            "may have no test rows; see the ingest report's class_missing_in_split findings)."
        )
        theirs = champion[1].get(primary.name) if champion is not None else None
        return Decision(False, reason, version, old, mine, theirs, tuple(failed))
    if champion is None:
        if failed:
            reason = (
                f"Version {version} is not promoted and there is no champion: its "
                f"{'; '.join(failed)} (evaluate.floors)."
            )
            return Decision(False, reason, version, None, mine, None, tuple(failed))
        passed = ", ".join(f"{k} {scores[k]:.4f}" for k in floors) or "no floors set"
        reason = (
            f"Version {version} becomes champion: there was no champion yet and it passes "
            f"every floor ({passed})."
        )
        return Decision(True, reason, version, None, mine, None)
    old_version, old_scores = champion
    theirs = old_scores[primary.name]
    if old_version == version:
        reason = f"Version {version} is already champion ({primary.name} {mine:.4f})."
        return Decision(False, reason, version, old_version, mine, theirs)
    if failed:
        reason = (
            f"Champion version {old_version} stays: challenger version {version}'s "
            f"{'; '.join(failed)} (evaluate.floors)."
        )
        return Decision(False, reason, version, old_version, mine, theirs, tuple(failed))
    gain = (mine - theirs) if primary.higher_is_better else (theirs - mine)
    if gain >= min_delta:
        reason = (
            f"Version {version} becomes champion: its {primary.name} {mine:.4f} beats "
            f"champion version {old_version}'s {theirs:.4f} by {gain:.4f} "
            f"(min_delta {min_delta:g})."
        )
        return Decision(True, reason, version, old_version, mine, theirs)
    reason = (
        f"Champion version {old_version} stays: challenger version {version}'s {primary.name} "
        f"{mine:.4f} does not beat its {theirs:.4f} by min_delta {min_delta:g} "
        f"(difference {gain:+.4f})."
    )
    return Decision(False, reason, version, old_version, mine, theirs)
