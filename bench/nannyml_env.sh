#!/usr/bin/env bash
# Builds bench/.venv-nannyml: NannyML 0.13.1 in a venv of its own, for the NannyML anchor
# (bench/nannyml_anchor.py) and the monitor benchmark (bench/bench_monitor.py).
# NannyML is not a project dependency: it brings two dozen packages of its own (FLAML, s3fs,
# kaleido, category-encoders, ...) that the project does not need.
#
#     bash bench/nannyml_env.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-nannyml"
if [ ! -x "$venv/bin/python" ]; then
    python3.11 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# NannyML 0.13.1 was released and tested against pandas 2 (kept below 3 here), and imports
# statsmodels for its plots without declaring it.
# the libraries NannyML computes with, pinned as measured on 2 December 2026 (the anchor's time
# moved from 23-33 s to 18-20 s between two sessions' unpinned builds; docs/benchmarks.md)
"$venv/bin/python" -m pip install --quiet "nannyml==0.13.1" "pandas==2.3.3" "numpy==2.4.6" \
    "scipy==1.17.1" "scikit-learn==1.9.1" "lightgbm==4.5.0" "statsmodels==0.15.0" "pyarrow==26.0.1"
"$venv/bin/python" -c "import nannyml; print('nannyml', nannyml.__version__)"
