#!/usr/bin/env python
"""Run Quire's pipeline: params/*.yaml → papermill stages → HTML reports in reports/.

python run_all.py                                 # every stage on params/base.yaml
python run_all.py --params params/penguins.yaml   # a preset on top of the defaults
python run_all.py --only ingest -p generator.rows=5000
python run_all.py --help
"""

import sys

# papermill validates notebooks with jsonschema, which imports rfc3987-syntax when it is installed
# (JupyterLab's event schemas pull it in) and builds its IRI grammar at import: 2.6 s of every
# start. Notebook schemas never use the "iri" format; without the module jsonschema skips it.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from lib.run.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
