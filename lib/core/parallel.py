"""Independent pieces of work (one per column, say) on a few threads, results in order.

Threads, not processes: the per-column work of the monitor's checks is numpy and Arrow (sorts,
counts, reads), which release the GIL, on arrays that processes would have to copy. The work
must not mutate shared state. An exception raised by an item is raised again for the first
failing item in input order, so errors do not depend on scheduling.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

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


def map_ordered(
    fn: Callable[[T], R], items: Iterable[T], threads: int, apart: Collection[int] = ()
) -> list[R]:
    """Return ``[fn(item) for item in items]``, computed on up to ``threads`` threads.

    Items start in input order, except that the items at the positions ``apart`` are kept
    from running at the same time as one another: while one runs, a free thread takes the
    next item that is not one of them. For large jobs whose working sets should not add up.
    A thread never idles for it: when only ``apart`` items are left, the next one starts
    beside the one running (no slower than without ``apart``).
    """
    work = list(items)
    if threads <= 1 or len(work) <= 1:
        return [fn(item) for item in work]
    if not apart:
        with ThreadPoolExecutor(max_workers=min(threads, len(work))) as pool:
            return list(pool.map(fn, work))
    return _Apart(fn, work, set(apart)).run(min(threads, len(work)))


class _Apart(Generic[T, R]):
    """:func:`map_ordered`'s queue when some items should not run together."""

    def __init__(self, fn: Callable[[T], R], work: list[T], apart: set[int]) -> None:
        self.fn, self.work, self.apart = fn, work, apart
        self.pending = list(range(len(work)))
        self.running = 0  # ``apart`` items running
        self.lock = threading.Lock()
        self.results: dict[int, R] = {}
        self.errors: dict[int, BaseException] = {}

    def run(self, threads: int) -> list[R]:
        workers = [threading.Thread(target=self._worker, daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if self.errors:
            raise self.errors[min(self.errors)]  # the first failing item in input order
        return [self.results[i] for i in range(len(self.work))]

    def _worker(self) -> None:
        while (i := self._next()) is not None:
            try:
                self.results[i] = self.fn(self.work[i])
            except BaseException as error:  # raised again by run(), in input order
                self.errors[i] = error
            finally:
                if i in self.apart:
                    with self.lock:
                        self.running -= 1

    def _next(self) -> int | None:
        with self.lock:
            if not self.pending:
                return None
            # the first item that may start now; only apart items left: the first of them
            place = next(
                (p for p, i in enumerate(self.pending) if i not in self.apart or not self.running),
                0,
            )
            i = self.pending.pop(place)
            self.running += i in self.apart
            return i
