"""Freed memory given back to the system between the monitor's steps."""

import subprocess
import sys
import textwrap

import pytest

from lib.core import heap


@pytest.mark.skipif(heap._malloc_trim() is None, reason="the C library has no malloc_trim")
def test_free_memory_in_the_middle_of_the_heap_goes_back():
    # in a process of its own: the allocator's settings below would stay with pytest's
    script = textwrap.dedent(
        """
        import ctypes
        import numpy as np
        from lib.core import heap

        def resident_mib():
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * 4096 / 2**20

        # arrays below the mmap threshold live in the heap; freeing every other one leaves
        # free memory that a heap never returns on its own (a block in use sits above it)
        ctypes.CDLL(None).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD, as it may have risen to
        arrays = [np.ones(60_000) for _ in range(800)]  # 480 KB each: 375 MiB in the heap
        del arrays[::2]
        before = resident_mib()
        heap.give_back()
        assert all(a[0] == 1.0 for a in arrays)  # what is in use is untouched
        print(round(before - resident_mib()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert int(out.stdout.split()[-1]) > 100  # MiB: most of the 187 freed went back


def test_without_malloc_trim_it_does_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    heap.give_back()  # no error where the C library is not glibc
