"""Models saved before lib/ was grouped into packages still load (their classes' old modules)."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys

import numpy as np

from lib.core.moved import MOVED
from lib.core.paths import PROJECT_ROOT
from lib.data.preprocess import QuantileClipper


def test_an_old_module_name_imports_the_module_at_its_new_place():
    old = importlib.import_module("lib.preprocess")
    assert old is importlib.import_module("lib.data.preprocess")
    assert old.QuantileClipper is QuantileClipper


def test_a_pickle_naming_the_old_module_loads_the_same_fitted_object():
    fitted = QuantileClipper().fit(np.arange(100.0).reshape(-1, 1))
    blob = pickle.dumps(fitted, protocol=2)  # GLOBAL opcodes: the module as a plain line
    old_blob = blob.replace(b"lib.data.preprocess", b"lib.preprocess")
    assert old_blob != blob  # the pickle does name the module
    loaded = pickle.loads(old_blob)
    assert type(loaded) is QuantileClipper
    probe = np.array([[-50.0], [50.0], [500.0]])
    assert np.array_equal(loaded.transform(probe), fitted.transform(probe))


def test_every_moved_module_exists_at_its_new_place_and_only_there():
    for old, new in MOVED.items():
        assert importlib.util.find_spec(new) is not None, new
        relative = old.removeprefix("lib.").replace(".", "/")
        assert not (PROJECT_ROOT / "lib" / f"{relative}.py").exists(), old


def test_a_fresh_interpreter_finds_an_old_name_without_importing_the_new_one_first():
    code = "import pickle, lib.fastpath as f, lib.core.moved; print(f.__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "lib.serving.fastpath"
