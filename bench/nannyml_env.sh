#!/usr/bin/env bash
# Builds bench/.venv-nannyml: NannyML 0.13.1 in a venv of its own, for the NannyML anchor
# (bench/nannyml_anchor.py) and the monitor benchmark (bench/bench_monitor.py).
# NannyML is not a project dependency: it pins older pandas/numpy than the project's venv.
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
"$venv/bin/python" -m pip install --quiet "nannyml==0.13.1" "pandas>=2.2,<3" statsmodels pyarrow
"$venv/bin/python" -c "import nannyml; print('nannyml', nannyml.__version__)"
