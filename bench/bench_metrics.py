"""Evaluate's bootstrap: Quire's NumPy metrics vs the same metrics through scikit-learn.

    .venv/bin/python bench/bench_metrics.py [--rows 4000 20000] [--resamples 200] [--repeats 5]

The evaluate stage computes every classification metric (accuracy, precision/recall/F1 macro and
per class, ROC AUC, PR AUC, log loss, Brier) on each of ``evaluate.bootstrap`` resamples of the
test split. Side by side on the same seeded data and resamples: ``lib.model.scoring``'s NumPy metrics
and the scikit-learn calls they replace (``tests/lib/test_scoring.py``'s reference, what the stage
used before). Rounds alternate between the two; medians are reported, and both must give the same
intervals.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import save
from lib.model.scoring import bootstrap, classification_metrics
from tests.lib.test_scoring import _sklearn_classification


def _data(rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, rows)
    raw = rng.uniform(0, 1, (rows, k)) + 0.7 * (y[:, None] == np.arange(k))
    return y, raw / raw.sum(axis=1, keepdims=True)


def measure(rows: int, k: int, resamples: int, repeats: int) -> dict[str, Any]:
    """Time one bootstrap per implementation, ``repeats`` alternating rounds."""
    y, proba = _data(rows, k)
    classes = list(range(k))
    threshold = 0.4 if k == 2 else None
    tools = {
        "quire": lambda a, b: classification_metrics(a, b, classes, threshold),
        "sklearn": lambda a, b: _sklearn_classification(a, b, classes, threshold),
    }
    times: dict[str, list[float]] = {name: [] for name in tools}
    bounds: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in tools.items():
            t0 = time.perf_counter()
            bounds[name] = bootstrap(fn, (y, proba), resamples, 0.95, 0)
            times[name].append(time.perf_counter() - t0)
    same = all(
        np.allclose([q[m] for m in q], [s[m] for m in q], rtol=1e-9, atol=1e-12)
        for q, s in zip(bounds["quire"], bounds["sklearn"], strict=True)
    )
    out = {name: statistics.median(t) for name, t in times.items()}
    return {"rows": rows, "classes": k, "resamples": resamples, **out, "same": same}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[4_000, 20_000])
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # scikit-learn's undefined-metric warnings on resamples
    results = [measure(n, k, args.resamples, args.repeats) for n in args.rows for k in (2, 3)]
    save("metrics", {"results": results})
    print("| test rows | classes | scikit-learn s | Quire s | speed-up | same intervals |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['classes']} | {r['sklearn']:.2f} | {r['quire']:.2f} "
            f"| **{r['sklearn'] / r['quire']:.1f}x** | {r['same']} |"
        )


if __name__ == "__main__":
    main()
