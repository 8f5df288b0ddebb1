"""Bounded retries with exponential backoff, on tenacity: one policy for every retried call.

``retrying(retries=3, backoff=0.5, retry_if=...)`` makes at most four attempts and waits 0.5, 1
and 2 s between them (``backoff * 2**n``, at most ``cap``). Whether an attempt is retried is
decided from its result (the attempted function reports failures as values); an exception the
function raises is not retried and propagates. When the retries run out the last result is
returned, not an error: the caller decides what a failed last attempt means.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)


def _last_result(state: RetryCallState) -> Any:
    """Return the last attempt's result once the retries are spent (its exception, raised)."""
    assert state.outcome is not None  # called only after an attempt
    return state.outcome.result()


def retrying(
    retries: int,
    backoff: float,
    *,
    retry_if: Callable[[Any], bool],
    cap: float = math.inf,
    sleep: Callable[[float], Any] = time.sleep,
    on_retry: Callable[[], None] | None = None,
) -> Retrying:
    """Return a tenacity ``Retrying``: ``retries`` further attempts after the first, with backoff.

    Parameters
    ----------
    retries
        Further attempts after the first (0: a single attempt).
    backoff
        Seconds before the first retry; doubled before each further one.
    retry_if
        Called with an attempt's result: whether to try again.
    cap
        The longest wait between two attempts, in seconds.
    sleep
        How to wait (tests pass a recorder; a sender passes an event's ``wait``).
    on_retry
        Called before each wait, e.g. to count retries.

    Returns
    -------
    tenacity.Retrying
        Call it with the function to attempt (``retrying(...)(fn)``); it returns the first
        result not to be retried, or the last one.
    """
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, got {retries}")
    return Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=backoff, exp_base=2, min=0, max=cap),
        retry=retry_if_result(retry_if),
        sleep=sleep,
        before_sleep=(lambda _state: on_retry()) if on_retry is not None else None,
        retry_error_callback=_last_result,
    )
