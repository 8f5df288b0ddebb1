"""The committed notebooks: clean, parameterised exactly as run_all calls them, and runnable."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from lib.core.params import load_params
from lib.core.paths import NOTEBOOKS_DIR, PARAMS_DIR
from lib.run.stages import STAGES
from tests.conftest import dirs_overrides

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def test_every_stage_has_its_notebook():
    assert {s.notebook for s in STAGES} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index + 1} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {index + 1} has a count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_layout_title_then_one_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_run_all_passes_exactly_the_declared_parameters(stage):
    declared = papermill.inspect_notebook(str(NOTEBOOKS_DIR / stage.notebook))
    passed = load_params().section_dicts(stage.sections)
    assert set(declared) == set(passed)
    for name, info in declared.items():
        assert info["help"], f"parameter {name!r} has no comment"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_notebook_defaults_equal_the_pipeline_defaults(stage):
    """Interactive runs use the notebook's defaults: they must be the pipeline's defaults.

    That is base.yaml with the built-in data's settings layered (the default source).
    """
    declared = papermill.inspect_notebook(str(NOTEBOOKS_DIR / stage.notebook))
    defaults = load_params().section_dicts(stage.sections)
    for name, info in declared.items():
        text = info["default"].replace("true", "True").replace("false", "False")
        assert ast.literal_eval(text) == defaults[name], f"{stage.notebook}: default of {name!r}"


@pytest.mark.slow
def test_notebooks_run_in_order_under_nbval_with_tiny_params(tmp_path):
    """nbval executes every committed notebook, in pipeline order, cell by cell.

    Each is parameterised with the CI preset as run_all would, so later stages find the
    outputs of earlier ones.
    """
    params = load_params([PARAMS_DIR / "ci.yaml"], dirs_overrides(tmp_path))
    targets = []
    code_cells = 0
    for stage in STAGES:
        nb = papermill.parameterize.parameterize_notebook(
            papermill.iorw.load_notebook_node(str(NOTEBOOKS_DIR / stage.notebook)),
            params.section_dicts(stage.sections),
        )
        targets.append(tmp_path / stage.notebook)
        nbformat.write(nb, targets[-1])
        code_cells += sum(c.cell_type == "code" for c in nb.cells)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), "-c", os.devnull, *map(str, targets)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"{code_cells} passed" in result.stdout
    assert (Path(params.project.data_dir) / "processed" / "churn" / "manifest.json").exists()
    assert (tmp_path / "mlruns" / "mlflow.db").exists()
