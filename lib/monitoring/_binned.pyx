# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The area between a window's CDF and a binned reference's, compiled and without the GIL.

:func:`lib.monitoring.window_wasserstein.binned_wasserstein` calls :func:`binned_area` (see its
module doc for the method). In NumPy the method took a dozen passes over each window and its
bins, with the GIL held for most of them; the monitor's column jobs then waited on each other's
threads (docs/benchmarks.md). Here it is three passes, the GIL released:

1. each window value's place in the bins (values outside the range moved to its end, their
   distance summed), and per bin the count and the sum of places within it;
2. per bin, ``D = F_cur - F_ref`` at its start; where ``D`` keeps one sign over the bin, the
   integral of ``|D|`` from the counts alone;
3. the other bins (where ``D`` may cross zero): their window values sorted (a few per bin), merged
   with the reference's (sorted already) and ``|D|`` integrated exactly between them.
"""

from libc.math cimport fabs
from libc.stdlib cimport calloc, free, malloc, qsort

ctypedef Py_ssize_t intp


cdef int _compare(const void *a, const void *b) noexcept nogil:
    cdef double x = (<const double *> a)[0]
    cdef double y = (<const double *> b)[0]
    return (x > y) - (x < y)


cdef inline void _sort(double *values, intp count) noexcept nogil:
    cdef intp i, j
    cdef double v
    if count > 16:
        qsort(values, count, sizeof(double), _compare)
        return
    for i in range(1, count):  # a bin holds a few window values: insertion sort
        v = values[i]
        j = i - 1
        while j >= 0 and values[j] > v:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = v


cdef inline double _clip(double place, double end) noexcept nogil:
    """Return ``place`` moved inside ``[0, end]`` (past the range: at its end)."""
    if place < 0.0:
        return 0.0
    if place > end:
        return end
    return place


cdef inline intp _bin(double place, intp bins) noexcept nogil:
    cdef intp at = <intp> place
    return bins - 1 if at > bins - 1 else at


def binned_area(
    const double[::1] cur,
    double lo,
    double scale,
    const double[::1] ref_places,
    const intp[::1] ref_first,
    const double[::1] ref_offsets,
):
    """Return ``(outside, inside)`` for a window ``cur`` against a binned reference.

    Parameters
    ----------
    cur
        The window's values (any order; not NaN: the checks pass present values only).
    lo, scale
        The reference's lowest value and bins per unit: a value's place is ``(v - lo) * scale``.
    ref_places, ref_first, ref_offsets
        The reference's places (sorted), where each bin's places start among them (and the end),
        and per bin the sum of its places' offsets from the bin's start.

    Returns
    -------
    tuple of float
        ``outside``: the summed distance of the window's values past the range's ends, in bins;
        ``inside``: the integral of ``|F_cur - F_ref|`` over the range, in bins.

    Raises
    ------
    ValueError
        When ``cur`` holds NaN (it has no place), or the reference's arrays disagree.
    MemoryError
        When the working arrays cannot be allocated.
    """
    cdef intp m = cur.shape[0]
    cdef intp bins = ref_first.shape[0] - 1
    cdef intp n = ref_places.shape[0]
    if m == 0 or bins < 1 or n == 0 or ref_offsets.shape[0] != bins:
        raise ValueError("binned_area: an empty window or reference, or bins that disagree")
    if ref_first[0] != 0 or ref_first[bins] != n:  # the walk reads ref_places through these
        raise ValueError("binned_area: the bins' starts do not span the reference's places")
    cdef double end = <double> bins
    cdef double up = 1.0 / m
    cdef double down = 1.0 / n
    cdef double outside = 0.0
    cdef double inside = 0.0
    cdef intp *counts = NULL
    cdef double *placed = NULL
    cdef double *start = NULL
    cdef intp *slot = NULL  # crossing bins' first value among ``values`` (-1: not crossing)
    cdef intp *fill = NULL  # and where the next one goes
    cdef double *values = NULL
    cdef intp i, b, a, k, total, r, r_end
    cdef bint missing = False
    cdef bint unordered = False
    cdef double raw, p, run, rise, fall, net, s, area, d, prev, here
    try:
        counts = <intp *> calloc(bins, sizeof(intp))
        placed = <double *> calloc(bins, sizeof(double))
        start = <double *> malloc(bins * sizeof(double))
        slot = <intp *> malloc(bins * sizeof(intp))
        fill = <intp *> malloc(bins * sizeof(intp))
        if counts == NULL or placed == NULL or start == NULL or slot == NULL or fill == NULL:
            raise MemoryError()
        with nogil:
            for i in range(m):  # 1. places, counts and offsets
                raw = (cur[i] - lo) * scale
                if raw != raw:  # NaN: no bin (casting it to an index is undefined)
                    missing = True
                    break
                p = _clip(raw, end)
                outside += fabs(raw - p)  # past the range: the distance to its end
                a = _bin(p, bins)
                counts[a] += 1
                placed[a] += p - a
        if missing:
            raise ValueError("binned_area: the window holds NaN; pass its present values only")
        with nogil:
            run = 0.0
            total = 0
            for b in range(bins):  # 2. D at each bin's start; the bins it keeps its sign over
                if ref_first[b + 1] < ref_first[b]:  # the walk would read outside ref_places
                    unordered = True
                rise = counts[b] * up
                fall = (ref_first[b + 1] - ref_first[b]) * down
                net = rise - fall
                s = run
                run += net
                start[b] = s
                if s < fall and s > -rise:  # D may change sign inside: walked below
                    slot[b] = total
                    total += counts[b]
                else:
                    slot[b] = -1
                    area = s + net - placed[b] * up + ref_offsets[b] * down
                    inside += fabs(area)
        if unordered:
            raise ValueError("binned_area: the bins' starts are not in order")
        values = <double *> malloc((total if total > 0 else 1) * sizeof(double))
        if values == NULL:
            raise MemoryError()
        with nogil:
            # 3. the crossing bins' window values, bin by bin (placed as in pass 1; a fill
            # never passes its bin's count, whatever happens to ``cur`` meanwhile)
            for b in range(bins):
                fill[b] = slot[b]
            for i in range(m):
                p = _clip((cur[i] - lo) * scale, end)
                a = _bin(p, bins)
                if slot[a] >= 0 and fill[a] < slot[a] + counts[a]:
                    values[fill[a]] = p
                    fill[a] += 1
            for b in range(bins):
                if slot[b] < 0:
                    continue
                k = slot[b]
                _sort(values + k, fill[b] - k)
                r = ref_first[b]
                r_end = ref_first[b + 1]
                d = start[b]
                prev = <double> b
                area = 0.0
                while k < fill[b] or r < r_end:  # merge the two sides' places, in order
                    if r >= r_end or (k < fill[b] and values[k] <= ref_places[r]):
                        here = values[k]
                        k += 1
                        net = up
                    else:
                        here = ref_places[r]
                        r += 1
                        net = -down
                    if here < b:  # (rounding at the bin's edges)
                        here = <double> b
                    elif here > b + 1:
                        here = <double> (b + 1)
                    area += fabs(d) * (here - prev)
                    d += net
                    prev = here
                area += fabs(d) * (b + 1 - prev)
                inside += area
    finally:
        free(counts); free(placed); free(start); free(slot); free(fill); free(values)
    return outside, inside
