"""Types of the compiled :mod:`lib.monitoring._binned` (see its ``.pyx`` source)."""

import numpy as np

def binned_area(
    cur: np.ndarray,
    lo: float,
    scale: float,
    ref_places: np.ndarray,
    ref_first: np.ndarray,
    ref_offsets: np.ndarray,
) -> tuple[float, float]: ...
