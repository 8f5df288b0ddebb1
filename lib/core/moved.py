"""Modules that moved: their old names still import, so models saved before a move still load.

Saved models and preprocessors (skops files in the MLflow store, ``preprocessor.joblib`` in the
processed data) name the classes they hold by module, e.g. ``lib.preprocess.QuantileClipper``.
When lib/ was grouped into packages those modules moved (``lib.data.preprocess``); this finder,
installed by ``lib/__init__.py``, answers an import of an old name with the module at its new
place, so a project made by an earlier version keeps serving, evaluating and monitoring its
models. It imports nothing until an old name is asked for.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

# The packages lib/ was grouped into, and the flat modules each took in.
_GROUPS: dict[str, str] = {
    "core": "errors atomic logs paths params tracking plots",
    "data": "generator readers schema validate split preprocess profile ingest feedback drift",
    "model": "metrics models search train train_plots scoring evaluate eval_plots gate reference",
    "serving": "fastpath",
    "monitoring": "monitor monitor_plots monitor_results performance alerts evidently_report "
    "dashboard",
    "run": "runner stages staging fingerprint history kernels runlock report",
    "loop": "lineage replay demo",
}
# Old module -> its home since lib/ was grouped by concern.
MOVED: dict[str, str] = {
    f"lib.{module}": f"lib.{package}.{module}"
    for package, modules in _GROUPS.items()
    for module in modules.split()
}


class _Alias(importlib.abc.Loader):
    """Load an old name as the module at its new place (one module object, two names)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module at the new place ran when it was imported."""


class MovedFinder(importlib.abc.MetaPathFinder):
    """Find old module names (:data:`MOVED`); every other name is left to the usual finders."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Return a spec loading the moved module, or None for any name that did not move."""
        new = MOVED.get(fullname)
        if new is None or new == fullname:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
