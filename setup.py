"""The compiled part of Quire: one Cython module; everything else is in pyproject.toml.

``lib.monitoring._binned`` scores the monitor's per-window drift without holding the GIL
(lib/monitoring/window_wasserstein.py). ``-ffp-contract=off``: no fused multiply-adds, so its
sums round the same on every CPU.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lib.monitoring._binned",
            sources=["lib/monitoring/_binned.pyx"],
            extra_compile_args=["-O2", "-ffp-contract=off"],
        )
    ]
)
