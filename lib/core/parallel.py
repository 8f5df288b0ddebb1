"""Independent pieces of work (one per column, say) on a few threads, results in order.

Threads, not processes: the per-column work of the monitor's checks is numpy and Arrow (sorts,
counts, reads), which release the GIL, on arrays that processes would have to copy. The work
must not mutate shared state. An exception raised by an item is raised again for the first
failing item in input order, so errors do not depend on scheduling.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

AUTO_MAX = 4  # more threads than this gain little on the per-column work (memory grows with them)


def thread_count(setting: int | None) -> int:
    """Return how many threads to use: ``setting``, or (None) the cores, at most ``AUTO_MAX``.

    The cores are those this process may run on (``os.sched_getaffinity``), not the machine's.
    """
    if setting is not None:
        return max(1, setting)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, AUTO_MAX))


def map_ordered(fn: Callable[[T], R], items: Iterable[T], threads: int) -> list[R]:
    """Return ``[fn(item) for item in items]``, computed on up to ``threads`` threads."""
    work = list(items)
    if threads <= 1 or len(work) <= 1:
        return [fn(item) for item in work]
    with ThreadPoolExecutor(max_workers=min(threads, len(work))) as pool:
        return list(pool.map(fn, work))
