"""The promotion gate: does the challenger replace the champion? One sentence says why.

Two comparisons can decide, both of the primary metric, challenger minus champion ("gain",
turned so that positive is better for losses too):

- the *mixed holdout*: the whole test split (old and new regime alike);
- the *recent regime*: the test-split rows of the most recent labelled windows of the served
  rows a retrain ingested (``evaluate.gate``; :mod:`lib.model.recent` picks them). The challenger
  never trained on them, and the champion was trained before they were served.

Each gain comes with a paired percentile bootstrap interval (:func:`compare`: both models scored
on the same resampled rows), so noise is told from a difference. The rule is :func:`decide`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.core.errors import ParamsError
from lib.model.metrics import Metric
from lib.model.scoring import bootstrap

MetricFn = Callable[..., dict[str, float]]


@dataclass(frozen=True)
class Comparison:
    """Challenger and champion on the same rows: the primary metric and the gain between them.

    ``gain`` is challenger minus champion, negated for losses (positive: the challenger is
    better); ``lower``/``upper`` its paired bootstrap interval (NaN without resamples).
    """

    rows_label: str
    rows: int
    challenger: float
    champion: float
    gain: float
    lower: float = float("nan")
    upper: float = float("nan")

    def text(self, name: str) -> str:
        """Return the comparison in words: rows, both scores, the gain and its interval."""
        interval = (
            f" [{self.lower:+.4f}, {self.upper:+.4f}]"
            if np.isfinite(self.lower)
            else " (no interval)"
        )
        return (
            f"on the {self.rows_label} ({self.rows:,} rows) {name} {self.challenger:.4f} vs "
            f"{self.champion:.4f}, gain {self.gain:+.4f}{interval}"
        )


@dataclass(frozen=True)
class RecentCheck:
    """The inputs of the recent-regime rule (``evaluate.gate``).

    ``recent`` is None when there is no recent comparison; ``skipped`` then says why (too few
    labelled rows, no served rows ingested, ``recent_windows: 0``).
    """

    mixed: Comparison
    recent: Comparison | None
    margin: float
    mixed_tolerance: float
    skipped: str = ""


def compare(
    label: str,
    primary: Metric,
    y: np.ndarray,
    challenger: tuple[MetricFn, np.ndarray],
    champion: tuple[MetricFn, np.ndarray],
    resamples: int,
    confidence: float,
    seed: int,
) -> Comparison:
    """Score both models on the same rows and bootstrap the gain (paired resamples).

    Parameters
    ----------
    label
        What the rows are, for the reason (e.g. ``"mixed holdout"``).
    primary
        The metric that decides (and its direction).
    y
        True targets of the rows.
    challenger, champion
        Each model's metric function (its own decision threshold) and its outputs on the rows
        (probabilities for classification, predictions for regression), row-aligned with ``y``.
    resamples, confidence, seed
        Bootstrap resamples (0: no interval), interval level and integer seed.

    Returns
    -------
    Comparison
        Both scores, the gain and its interval.
    """
    (mine_fn, mine), (theirs_fn, theirs) = challenger, champion
    sign = 1.0 if primary.higher_is_better else -1.0

    def scores(yy: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        new, old = mine_fn(yy, a)[primary.name], theirs_fn(yy, b)[primary.name]
        return {"challenger": new, "champion": old, "gain": sign * (new - old)}

    point = scores(y, mine, theirs)
    low, high = bootstrap(scores, [y, mine, theirs], resamples, confidence, seed)
    return Comparison(
        label,
        len(y),
        float(point["challenger"]),
        float(point["champion"]),
        float(point["gain"]),
        low.get("gain", float("nan")),
        high.get("gain", float("nan")),
    )


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
    basis: str = ""  # what promoted: "mixed holdout" or "recent regime" ("" when not promoted)
    mixed: Comparison | None = None
    recent: Comparison | None = None


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
    recent: RecentCheck | None = None,
) -> Decision:
    """Decide promotion from test-split scores of the challenger and the current champion.

    The rule, in order (``gain``: challenger minus champion in the primary metric, positive when
    the challenger is better; ``[lo, hi]``: its paired bootstrap interval):

    1. a suspected leak, an undefined score or a failed floor (on the mixed holdout) refuses;
    2. with no champion, passing the floors promotes;
    3. with a recent comparison, a challenger *significantly worse on the recent regime*
       (``hi < 0`` there) is refused, whatever the mixed holdout says;
    4. *mixed holdout*: ``gain >= min_delta`` on the whole test split promotes (as before);
    5. *recent regime*: promotes when, on the recent rows, ``gain >= margin`` **and**
       ``lo > 0`` (the interval excludes no gain: not noise), **and** on the mixed holdout
       ``gain >= -mixed_tolerance`` (not worse than the champion beyond the tolerance);
       without bootstrap resamples there is no interval and this path never promotes;
    6. otherwise the champion stays.

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
    recent
        Both comparisons with their intervals and the recent rule's margin and tolerance
        (``evaluate.gate``); None decides on the mixed holdout's scores alone (rules 1, 2, 4).

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
    if recent is None:
        return _on_mixed(primary, version, old_version, mine, theirs, gain, min_delta)
    return _on_both(primary, version, old_version, mine, theirs, gain, min_delta, recent)


def _on_mixed(
    primary: Metric,
    version: str,
    old_version: str,
    mine: float,
    theirs: float,
    gain: float,
    min_delta: float,
) -> Decision:
    """Rule 4 alone: the mixed holdout's point scores decide."""
    if gain >= min_delta:
        reason = (
            f"Version {version} becomes champion: its {primary.name} {mine:.4f} beats "
            f"champion version {old_version}'s {theirs:.4f} by {gain:.4f} "
            f"(min_delta {min_delta:g})."
        )
        return Decision(True, reason, version, old_version, mine, theirs, basis="mixed holdout")
    reason = (
        f"Champion version {old_version} stays: challenger version {version}'s {primary.name} "
        f"{mine:.4f} does not beat its {theirs:.4f} by min_delta {min_delta:g} "
        f"(difference {gain:+.4f})."
    )
    return Decision(False, reason, version, old_version, mine, theirs)


def _on_both(
    primary: Metric,
    version: str,
    old_version: str,
    mine: float,
    theirs: float,
    gain: float,
    min_delta: float,
    check: RecentCheck,
) -> Decision:
    """Rules 3 to 6: the recent regime's comparison beside the mixed holdout's."""
    name, recent, mixed = primary.name, check.recent, check.mixed
    both = f"{mixed.text(name)}; " + (
        recent.text(name) if recent is not None else f"no recent comparison: {check.skipped}"
    )
    keep = (mine, theirs)

    def verdict(promote: bool, why: str, basis: str = "") -> Decision:
        return Decision(
            promote, f"{why} ({both}).", version, old_version, *keep,
            basis=basis, mixed=mixed, recent=recent,
        )  # fmt: skip

    stays = f"Champion version {old_version} stays: challenger version {version}"
    if recent is not None and recent.upper < 0:
        return verdict(False, f"{stays} is worse on the recent regime (interval below 0)")
    if gain >= min_delta:
        why = (
            f"Version {version} becomes champion: its {name} beats champion version "
            f"{old_version}'s on the mixed holdout by {gain:.4f} (min_delta {min_delta:g})"
        )
        return verdict(True, why, "mixed holdout")
    if recent is None:
        return verdict(
            False, f"{stays} does not beat it on the mixed holdout by min_delta {min_delta:g}"
        )
    short = []
    if recent.gain < check.margin:
        short.append(f"its recent gain {recent.gain:+.4f} is below the margin {check.margin:g}")
    if not recent.lower > 0:
        short.append(
            "the recent gain's interval reaches 0 (noise)"
            if np.isfinite(recent.lower)
            else "the recent gain has no interval (evaluate.bootstrap: 0)"
        )
    if gain < -check.mixed_tolerance:
        short.append(
            f"it is worse on the mixed holdout by {-gain:.4f}, beyond the tolerance "
            f"{check.mixed_tolerance:g}"
        )
    if short:
        return verdict(False, f"{stays} is not promoted: {'; '.join(short)}")
    why = (
        f"Version {version} becomes champion on the recent regime: its {name} beats champion "
        f"version {old_version}'s by {recent.gain:.4f} (margin {check.margin:g}, interval above "
        f"0), and on the mixed holdout it is not worse beyond the tolerance "
        f"{check.mixed_tolerance:g}"
    )
    return verdict(True, why, "recent regime")


def _comparisons(decision: Decision) -> list[tuple[str, str, Comparison]]:
    pairs = (
        ("mixed holdout", "gate_mixed", decision.mixed),
        ("recent regime", "gate_recent", decision.recent),
    )
    return [(name, prefix, c) for name, prefix, c in pairs if c is not None]


def _figures(comparison: Comparison) -> dict[str, float]:
    return {
        "challenger": comparison.challenger,
        "champion": comparison.champion,
        "gain": comparison.gain,
        "gain_ci_low": comparison.lower,
        "gain_ci_high": comparison.upper,
    }


def gate_metrics(decision: Decision) -> dict[str, float]:
    """Return both comparisons as MLflow metrics: ``gate_mixed_gain``, ``gate_recent_rows``..."""
    found: dict[str, float] = {}
    for _, prefix, comparison in _comparisons(decision):
        values = {"rows": float(comparison.rows), **_figures(comparison)}
        found.update({f"{prefix}_{k}": float(v) for k, v in values.items() if np.isfinite(v)})
    return found


def comparison_table(decision: Decision) -> pd.DataFrame:
    """Return the gate's comparisons: one row per set of rows, both scores and the gain.

    Empty when there was no champion to compare with.
    """
    rows = [
        {"comparison": name, "rows": c.rows, "what": c.rows_label, **_figures(c)}
        for name, _, c in _comparisons(decision)
    ]
    return pd.DataFrame(rows).round(4)
