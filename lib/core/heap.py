"""Give the C allocator's freed memory back to the system between the large steps of a job.

glibc's ``malloc`` keeps freed memory in its arenas for reuse, and a freed block in the middle
of an arena is never returned on its own; NumPy's arrays below the allocator's mmap threshold
(it rises to the largest array freed, up to 32 MiB) live there. After the monitor bench's
checks, glibc held 121 MiB free (143 MiB of arenas, 22 in use): at the checks' peak its
free memory was 70-97 MiB of the 300. :func:`give_back` returns the free pages
(``malloc_trim(0)``, which also releases the middle of the arenas) once a step has dropped its
arrays. Elsewhere (another C library, another system) it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def give_back() -> None:
    """Return the C allocator's free pages to the system (see the module doc)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
