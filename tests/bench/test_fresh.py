"""The benchmarks' fresh-process runner: a child's peak memory is its own, not its parent's."""

from __future__ import annotations

import numpy as np
import pytest

from bench.fresh import load_average, run_fresh


def test_child_peak_excludes_the_parents_peak() -> None:
    # the parent holds 400 MiB; ru_maxrss of a child would report at least that (carried over exec)
    held = np.ones(50_000_000)
    result = run_fresh("", "extra = {'answer': 6 * 7}")
    assert held.nbytes == 400_000_000
    assert result["answer"] == 42
    assert result["peak_kib"] < 200 * 1024
    assert result["peak_kib"] >= result["peak_before_kib"] > 0


def test_child_peak_counts_what_the_child_allocates() -> None:
    body = "import numpy as np\nblock = np.ones(25_000_000)\nextra = {'n': int(block.sum())}"
    result = run_fresh("", body)
    assert result["n"] == 25_000_000
    assert result["peak_kib"] - result["peak_before_kib"] > 180 * 1024  # the 200 MB block
    assert result["cpu_seconds"] > 0


def test_a_failing_child_raises_with_its_error() -> None:
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        run_fresh("", "extra = {'x': 1 / 0}")


def test_load_average_has_three_figures() -> None:
    assert len(load_average().split()) == 3
