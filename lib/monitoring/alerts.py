"""Alert rules over a monitor run, and their delivery: structured log, history file, webhook.

The webhook URL comes from the environment (``QUIRE_ALERT_WEBHOOK_URL``), never from params.
Delivery failures are logged and reported back; they never fail the monitor stage.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from lib.core.atomic import write_text
from lib.core.logs import get_logger
from lib.core.param_sections import AlertParams
from lib.core.retry import retrying

log = get_logger(__name__)
WEBHOOK_ENV = "QUIRE_ALERT_WEBHOOK_URL"


@dataclass(frozen=True)
class Alert:
    """One fired rule."""

    rule: str
    severity: str  # warning | critical
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """What the rules look at, gathered from one monitor run."""

    dataset_drift: bool
    drifted_share: float
    drifted: list[str]
    prediction_drifted: list[str]
    missing_jumps: dict[str, float]  # column -> rise in missing share
    metric_drops: list[dict[str, Any]]
    concept_drift: bool
    concept_reason: str = ""
    windows: WindowFacts | None = None  # per-window alerts (None: no windows were checked)


@dataclass(frozen=True)
class WindowFacts:
    """Which current windows alerted in each per-window check, and on what.

    Each mapping is window -> the columns (drift, quality) or metrics (performance) that left
    their reference band there (the window tables say by how much); windows in time order.
    """

    drift: dict[str, list[str]] = field(default_factory=dict)
    multivariate: list[str] = field(default_factory=list)
    estimated: dict[str, list[str]] = field(default_factory=dict)
    realized: dict[str, list[str]] = field(default_factory=dict)
    quality: dict[str, list[str]] = field(default_factory=dict)


def _alerting(table: pd.DataFrame | None, flag: str, name: str) -> dict[str, list[str]]:
    """Return window -> names whose ``flag`` is set, over the current windows of ``table``."""
    if table is None or table.empty:
        return {}
    current = table[table["period"] == "current"]
    out: dict[str, list[str]] = {w: [] for w in current["window"].astype(str)}  # time order
    hit = current[current[flag].astype(bool)]
    for window, name_ in zip(hit["window"].astype(str), hit[name].astype(str), strict=True):
        if name_ not in out[window]:
            out[window].append(name_)
    return {w: names for w, names in out.items() if names}


def window_facts(
    window_drift: pd.DataFrame | None,
    multivariate: pd.DataFrame | None,
    window_quality: pd.DataFrame | None,
    window_performance: pd.DataFrame | None,
    chance: Mapping[str, Sequence[str]] | None = None,
) -> WindowFacts:
    """Gather the current windows' alerts from the four per-window tables (any may be None).

    ``chance``: window -> inputs (columns, or ``multivariate``) whose alert there the diagnosis
    set aside as a lone one chance explains (``Diagnosis.chance``); they raise no alert.
    """
    chance = chance or {}
    drift = {
        w: kept
        for w, names in _alerting(window_drift, "alert", "column").items()
        if (kept := [n for n in names if n not in chance.get(w, ())])
    }
    multi = [
        w
        for w in _alerting(multivariate, "alert", "method")
        if "multivariate" not in chance.get(w, ())
    ]
    return WindowFacts(
        drift=drift,
        multivariate=multi,
        estimated=_alerting(window_performance, "alert_estimated", "metric"),
        realized=_alerting(window_performance, "alert_realized", "metric"),
        quality=_alerting(window_quality, "alert", "column"),
    )


def _where(hits: Mapping[str, list[str]]) -> str:
    """Return ``window: a, b; window: c`` for an alert message."""
    return "; ".join(f"{w}: {', '.join(names)}" for w, names in hits.items())


def _window_rules(w: WindowFacts, rules: AlertParams) -> list[Alert]:
    """Return the per-window alerts: each names its windows and the columns or metrics."""
    out: list[Alert] = []
    checks: list[tuple[str, bool, str, str, Mapping[str, list[str]]]] = [
        ("realized_performance", rules.realized_performance, "critical",
         "realized performance left its reference band", w.realized),
        ("estimated_performance", rules.estimated_performance, "critical",
         "estimated performance left its reference band", w.estimated),
        ("window_drift", rules.window_drift, "warning",
         "drift beyond the reference windows' band", w.drift),
        ("data_quality", rules.data_quality, "warning", "data quality alerts", w.quality),
    ]  # fmt: skip
    for rule, on, severity, what, hits in checks:
        if on and hits:
            message = f"{what} in {len(hits)} window(s): {_where(hits)}"
            out.append(Alert(rule, severity, message, {"windows": dict(hits)}))
    if rules.multivariate and w.multivariate:
        message = (
            f"multivariate drift (PCA reconstruction error beyond its band) in "
            f"{len(w.multivariate)} window(s): {', '.join(w.multivariate)}"
        )
        out.append(Alert("multivariate", "warning", message, {"windows": w.multivariate}))
    return out


def evaluate_rules(facts: Facts, rules: AlertParams) -> list[Alert]:
    """Return the alerts the rules raise on ``facts``, most severe first."""
    alerts: list[Alert] = []
    share = f"{facts.drifted_share:.0%} of checked columns drifted"
    if rules.dataset_drift and facts.dataset_drift:
        alerts.append(
            Alert(
                "dataset_drift", "critical", f"dataset drift: {share}", {"drifted": facts.drifted}
            )
        )
    elif (
        rules.drift_share is not None and facts.drifted and facts.drifted_share >= rules.drift_share
    ):
        alerts.append(
            Alert(
                "drift_share",
                "warning",
                f"{share} (alert at {rules.drift_share:.0%}): {', '.join(facts.drifted)}",
                {"share": facts.drifted_share, "drifted": facts.drifted},
            )
        )
    watched = rules.key_features if isinstance(rules.key_features, list) else []  # auto: unresolved
    key = [c for c in watched if c in facts.drifted]
    if key:
        alerts.append(
            Alert(
                "key_feature",
                "critical",
                f"key features drifted: {', '.join(key)}",
                {"columns": key},
            )
        )
    if rules.prediction_drift and facts.prediction_drifted:
        alerts.append(
            Alert(
                "prediction_drift",
                "warning",
                f"model outputs drifted: {', '.join(facts.prediction_drifted)}",
                {"columns": facts.prediction_drifted},
            )
        )
    if rules.missing_jump is not None:
        jumps = {c: r for c, r in facts.missing_jumps.items() if r > rules.missing_jump}
        if jumps:
            shown = ", ".join(f"{c} +{r:.0%}" for c, r in jumps.items())
            alerts.append(
                Alert(
                    "missing_jump", "warning", f"missing values rose: {shown}", {"columns": jumps}
                )
            )
    for drop in facts.metric_drops:
        alerts.append(
            Alert(
                "metric_drop",
                "critical",
                f"{drop['metric']} fell from {drop['reference']:.4f} to {drop['current']:.4f}",
                drop,
            )
        )
    if rules.concept_drift and facts.concept_drift:
        alerts.append(Alert("concept_drift", "critical", f"concept drift: {facts.concept_reason}"))
    if facts.windows is not None:
        alerts += _window_rules(facts.windows, rules)
    return sorted(alerts, key=lambda a: a.severity != "critical")


def append_history(path: Path, alerts: list[Alert], context: Mapping[str, Any]) -> None:
    """Append one JSON line per alert to ``path`` (created with its folder if needed)."""
    if not alerts:
        return
    lines = "".join(json.dumps({**context, **asdict(a)}, default=str) + "\n" for a in alerts)
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    # Rewritten by rename, never appended in place: a staged clone of the monitoring folder
    # shares this file's inode with the published one (lib.run.staging).
    write_text(path, before + lines)


@dataclass(frozen=True)
class Delivery:
    """What happened to a webhook delivery."""

    url: str | None
    delivered: bool
    attempts: int
    error: str | None = None


def _redact(url: str) -> str:
    """Return the URL without its query string or credentials (tokens often live there)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, userinfo=b""))


def send_webhook(
    payload: Mapping[str, Any],
    rules: AlertParams,
    url: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``payload`` as JSON to the webhook, retrying with exponential backoff.

    Retries on connection errors, timeouts, 429 and 5xx answers; a 4xx answer is final.
    Never raises: the outcome is logged and returned.
    """
    url = url if url is not None else os.environ.get(WEBHOOK_ENV)
    if not url:  # unset or empty: no webhook
        return Delivery(None, False, 0, f"{WEBHOOK_ENV} is not set")
    shown = _redact(url)

    def post() -> tuple[bool, bool, str | None]:  # (delivered, worth retrying, error)
        try:
            answer = httpx.post(url, json=payload, timeout=rules.webhook_timeout)
        except httpx.HTTPError as exc:
            return False, True, f"{type(exc).__name__}: {str(exc)[:200]}"
        if answer.is_success:
            return True, False, None
        status = answer.status_code  # a 4xx other than 429: the receiver refuses this payload
        return False, status >= 500 or status == 429, f"HTTP {status}"

    policy = retrying(
        rules.webhook_retries, rules.webhook_backoff, retry_if=lambda r: r[1], sleep=sleep
    )
    delivered, _, error = policy(post)
    attempts = int(policy.statistics["attempt_number"])
    if delivered:
        log.info("alert_webhook_delivered", url=shown, attempts=attempts)
        return Delivery(shown, True, attempts)
    log.error("alert_webhook_failed", url=shown, attempts=attempts, error=error)
    return Delivery(shown, False, attempts, error)


def dispatch(
    alerts: list[Alert],
    rules: AlertParams,
    history: Path,
    context: Mapping[str, Any],
    url: str | None = None,
) -> Delivery | None:
    """Log each alert, append them to ``history`` and post them to the webhook (if set)."""
    for alert in alerts:
        log.warning(
            "alert", rule=alert.rule, severity=alert.severity, message=alert.message, **context
        )
    append_history(history, alerts, context)
    if not alerts:
        return None
    payload = {**context, "alerts": [asdict(a) for a in alerts]}
    return send_webhook(json.loads(json.dumps(payload, default=str)), rules, url)
