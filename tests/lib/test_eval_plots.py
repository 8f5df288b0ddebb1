from __future__ import annotations

import numpy as np

from lib.model import eval_plots
from lib.model.scoring import threshold_table

RNG = np.random.default_rng(1)


def probabilities(n, k):
    raw = RNG.uniform(0, 1, (n, k))
    return raw / raw.sum(axis=1, keepdims=True)


def test_binary_figures():
    y = RNG.integers(0, 2, 200)
    proba = probabilities(200, 2)
    cm = eval_plots.confusion_figure(y, proba, [0, 1], 0.5)
    assert len(cm.data) == 2 and np.asarray(cm.data[0].z).sum() == 200
    assert np.allclose(np.asarray(cm.data[1].z).sum(axis=1), 1.0)
    roc = eval_plots.roc_pr_figure(y, proba, [0, 1])
    assert [t.name.split(" ")[0] for t in roc.data[:2]] == ["1", "1"]
    assert len(eval_plots.calibration_figure(y, proba, [0, 1]).data) == 2
    th = eval_plots.threshold_figure(threshold_table(y, proba[:, 1], 1), 0.3)
    assert len(th.data) == 4 and th.layout.shapes[0].x0 == 0.3


def test_multiclass_figures_have_one_curve_per_class():
    classes = ["a", "b", "c"]
    y = np.array(RNG.choice(classes, 300), dtype=object)
    proba = probabilities(300, 3)
    roc = eval_plots.roc_pr_figure(y, proba, classes)
    assert len(roc.data) == 2 * 3 + 1  # ROC and PR per class, plus the diagonal
    cm = eval_plots.confusion_figure(y, proba, classes, None)
    assert np.asarray(cm.data[0].z).shape == (3, 3)
    assert len(eval_plots.calibration_figure(y, proba, classes).data) == 4


def test_regression_figure_samples_points():
    y = RNG.normal(0, 1, 5000)
    fig = eval_plots.regression_figure(y, y + RNG.normal(0, 0.1, 5000), seed=0)
    assert len(fig.data[0].x) == 3000
