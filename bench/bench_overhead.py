"""Cost of notebooks and reports: `run_all.py --only ingest` vs the same lib calls in a plain script.

    .venv/bin/python bench/bench_overhead.py [--repeats 3] [--rows 20000]

Both run the ingest stage on the default generator data (raw file generated once beforehand, so
neither pays for it), alternately, each as a fresh process. The script makes the same lib calls
and builds the same tables and figures as notebooks/01_ingest.ipynb, without papermill, a kernel
or HTML rendering.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, median, save, time_command

PLAIN = """
import sys
from lib import plots, profile
from lib.ingest import check_gate, run_ingest
from lib.params import load_params

params = load_params(overrides=sys.argv[1:])
plots.setup_notebook()
result = run_ingest(params)
profile.profile_table(result.sample, result.schema)
profile.distributions_figure(result.sample, result.schema).to_dict()
profile.target_overview(result.manifest, result.sample, result.schema).to_dict()
profile.split_table(result.manifest)
profile.preprocessing_preview(result.sample, result.schema, params.ingest.preprocessing)
check_gate(result)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        overrides = [
            f"project.data_dir={work / 'data'}",
            f"project.reports_dir={work / 'reports'}",
            f"project.logs_dir={work / 'logs'}",
            f"generator.rows={args.rows}",
        ]
        script = work / "plain.py"
        script.write_text(PLAIN)
        plain_cmd = [sys.executable, str(script), *overrides]
        run_all_cmd = [sys.executable, str(ROOT / "run_all.py"), "--only", "ingest"]
        run_all_cmd += [a for o in overrides for a in ("-p", o)]
        time_command(plain_cmd)  # generates the raw file once, warms the file cache
        plain, notebook = [], []
        for _ in range(args.repeats):
            plain.append(time_command(plain_cmd))
            notebook.append(time_command(run_all_cmd))
    payload = {
        "rows": args.rows,
        "plain_median_s": median(plain),
        "run_all_median_s": median(notebook),
        "ratio": median(notebook) / median(plain),
        "plain_runs": plain,
        "run_all_runs": notebook,
    }
    save("overhead", payload)
    print("| rows | plain script s | run_all --only ingest s | ratio |")
    print("|---|---|---|---|")
    print(
        f"| {args.rows:,} | {payload['plain_median_s']:.2f} | {payload['run_all_median_s']:.2f} | {payload['ratio']:.2f}x |"
    )


if __name__ == "__main__":
    main()
