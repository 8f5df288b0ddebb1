"""What the monitor's ``auto`` settings mean for one project: its key features and metric rule.

``monitor.alerts.key_features: auto`` is the champion's most important features (the permutation
importance on the test split that the evaluate stage saved with the reference);
``monitor.alerts.metric_drop: auto`` is the task's rule (:mod:`lib.core.tasks`).
"""

from __future__ import annotations

import json

from lib.core import tasks
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.param_sections import MonitorParams
from lib.core.params import Params
from lib.data.schema import Schema
from lib.model.reference import PROFILE

log = get_logger(__name__)
KEY_FEATURES = 3


def key_features(params: Params, schema: Schema, model: str, version: str | None) -> list[str]:
    """Return the champion's most important features (at most three, positive importance only).

    Empty when the reference holds no importances (saved by an older version, or a file as
    reference): the rule then watches nothing, and the log says so.
    """
    importances: dict[str, float] = {}
    if version is not None:  # saved beside the version, whichever reference the monitor reads
        path = Layout.of(params, model=model).reference(version) / PROFILE
        if path.exists():
            importances = json.loads(path.read_text(encoding="utf-8")).get("importances", {})
    features = set(schema.names())
    ranked = sorted(
        ((v, k) for k, v in importances.items() if k in features and v > 0), reverse=True
    )
    chosen = [name for _, name in ranked[:KEY_FEATURES]]
    log.info("key_features_auto", chosen=chosen, known=len(importances))
    return chosen


def resolved(params: Params, schema: Schema, model: str, version: str | None) -> MonitorParams:
    """Return the monitor section with ``auto`` alert settings replaced by this project's."""
    alerts = params.monitor.alerts
    update: dict[str, object] = {
        "metric_drop": tasks.metric_drop(alerts.metric_drop, schema.task),
    }
    if alerts.key_features == "auto":
        update["key_features"] = key_features(params, schema, model, version)
    return params.monitor.model_copy(update={"alerts": alerts.model_copy(update=update)})
