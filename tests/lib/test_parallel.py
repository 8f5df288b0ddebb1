"""The per-column thread pool: results in input order, the first failing item's error."""

from __future__ import annotations

import threading
import time

import pytest

from lib.core.parallel import AUTO_MAX, map_ordered, thread_count


def test_results_keep_the_input_order_whatever_finishes_first():
    def slow_first(i: int) -> int:
        time.sleep(0.05 if i == 0 else 0.0)  # item 0 finishes last
        return i * i

    assert map_ordered(slow_first, range(6), threads=3) == [0, 1, 4, 9, 16, 25]


def test_work_runs_on_several_threads():
    seen: set[int] = set()
    barrier = threading.Barrier(2, timeout=5)  # both items must be running at once

    def meet(i: int) -> int:
        seen.add(threading.get_ident())
        barrier.wait()
        return i

    assert map_ordered(meet, [1, 2], threads=2) == [1, 2]
    assert len(seen) == 2


def test_the_first_failing_item_in_input_order_raises():
    def fail(i: int) -> int:
        if i in (1, 3):
            time.sleep(0.05 if i == 1 else 0.0)  # item 3 fails first in time
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 1"):
        map_ordered(fail, range(5), threads=4)


def test_one_thread_runs_inline():
    assert (
        map_ordered(lambda _: threading.get_ident(), range(3), threads=1)
        == [threading.get_ident()] * 3
    )


def test_thread_count_takes_the_setting_or_the_cores_up_to_the_cap():
    assert thread_count(3) == 3
    assert 1 <= thread_count(None) <= AUTO_MAX


def test_apart_items_run_one_at_a_time_while_other_items_fill_the_threads():
    lock = threading.Lock()
    running: set[int] = set()
    overlaps: list[set[int]] = []
    beside: list[int] = []  # other items ran while an apart item did

    def job(i: int) -> int:
        with lock:
            running.add(i)
            if len(running & {0, 1, 2}) > 1:
                overlaps.append(set(running))
            if i > 2 and running & {0, 1, 2}:
                beside.append(i)
        time.sleep(0.03 if i <= 2 else 0.005)
        with lock:
            running.discard(i)
        return i * 10

    # 0.09 s of apart items, 0.2 s of the rest for each of the two other threads
    got = map_ordered(job, range(83), threads=3, apart=[0, 1, 2])
    assert got == [i * 10 for i in range(83)]
    assert not overlaps  # items 0, 1 and 2 ran one at a time
    assert beside  # and the threads did not idle meanwhile


def test_apart_items_left_alone_run_side_by_side_rather_than_idle_a_thread():
    barrier = threading.Barrier(2, timeout=5)  # both must be running at once

    def meet(i: int) -> int:
        barrier.wait()
        return i

    assert map_ordered(meet, [0, 1], threads=2, apart=[0, 1]) == [0, 1]


def test_apart_items_raise_the_first_error_in_input_order():
    def fail(i: int) -> int:
        if i in (1, 4):
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 1"):
        map_ordered(fail, range(6), threads=2, apart=[0, 1])
