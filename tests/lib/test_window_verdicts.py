"""Per-window drift verdicts: the alert rule for one statistic."""

from __future__ import annotations

import math

import pytest

from lib.monitoring.window_verdicts import verdict

NAN = math.nan


@pytest.mark.parametrize(
    ("method", "value", "lower", "upper", "alerts"),
    [
        ("ks", 0.01, 0.01, NAN, True),  # ks alerts at its cut, as the whole-period engine
        ("chisquare", 0.01, 0.01, NAN, False),  # other p-values strictly below it
        ("chisquare", 0.009, 0.01, NAN, True),
        ("wasserstein", 0.2, NAN, 0.1, True),  # a distance above the band
        ("wasserstein", 0.1, NAN, 0.1, False),
        ("jensenshannon", 0.5, NAN, NAN, False),  # no band: never
        ("wasserstein", NAN, NAN, 0.1, False),  # no statistic: never
    ],
)
def test_the_alert_rule(method, value, lower, upper, alerts):
    assert verdict(method, value, lower, upper) is alerts
