"""lib.core.retry: bounded retries with exponential backoff (tenacity)."""

from __future__ import annotations

import pytest

from lib.core.retry import retrying


def attempts(results):
    """A function returning ``results`` in turn, and the list of its calls."""
    calls = []

    def attempt():
        calls.append(len(calls))
        return results[len(calls) - 1]

    return attempt, calls


def test_retries_while_the_result_asks_for_it_with_doubling_waits():
    attempt, calls = attempts(["503", "503", "200"])
    waits = []
    result = retrying(5, 0.5, retry_if=lambda r: r == "503", sleep=waits.append)(attempt)
    assert result == "200" and len(calls) == 3 and waits == [0.5, 1.0]


def test_the_last_result_comes_back_when_the_retries_run_out():
    attempt, calls = attempts(["a", "b", "c", "d", "e"])
    waits = []
    counted = []
    policy = retrying(
        3, 1.0, retry_if=lambda r: True, cap=2.5, sleep=waits.append,
        on_retry=lambda: counted.append(1),
    )  # fmt: skip
    assert policy(attempt) == "d" and len(calls) == 4  # 1 + 3 attempts
    assert waits == [1.0, 2.0, 2.5] and len(counted) == 3


def test_no_retries_is_one_attempt_and_an_exception_is_not_retried():
    attempt, calls = attempts(["x", "y"])
    assert retrying(0, 1.0, retry_if=lambda r: True, sleep=lambda s: None)(attempt) == "x"
    assert len(calls) == 1

    def broken():
        calls.append(1)
        raise OSError("disk full")

    calls.clear()
    with pytest.raises(OSError, match="disk full"):
        retrying(3, 0.0, retry_if=lambda r: True)(broken)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="retries must be 0 or more"):
        retrying(-1, 0.0, retry_if=lambda r: True)
