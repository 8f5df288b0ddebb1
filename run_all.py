#!/usr/bin/env python
"""Run Quire's pipeline: params/*.yaml → papermill stages → HTML reports in reports/.

python run_all.py                                 # every stage on params/base.yaml
python run_all.py --params params/penguins.yaml   # a preset on top of the defaults
python run_all.py --only ingest -p generator.rows=5000
python run_all.py --help
"""

import sys

from lib.runner import main

if __name__ == "__main__":
    sys.exit(main())
