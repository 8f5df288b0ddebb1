"""Metric scorers on real label types: text binary targets score like 0/1 ones."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import cross_val_score

from lib.model.metrics import metrics_for


@pytest.mark.parametrize("labels", [("no", "yes"), (0, 1), (False, True)])
def test_every_binary_scorer_takes_the_models_second_class_as_positive(labels):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = np.where(X[:, 0] + rng.normal(scale=1.0, size=300) > 0, labels[1], labels[0])
    primary, others = metrics_for("binary", "auto", None)
    for m in [primary, *others]:
        scores = cross_val_score(LogisticRegression(), X, y, scoring=m.scorer, cv=3)
        assert np.isfinite(scores).all(), m.name  # sklearn's average_precision raised on text
    model = LogisticRegression().fit(X, y)
    ap = next(m for m in others if m.name == "average_precision").scorer
    expected = average_precision_score(y == labels[1], model.predict_proba(X)[:, 1])
    assert ap(model, X, y) == pytest.approx(expected)
