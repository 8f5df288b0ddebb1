"""Quire's library: everything the notebooks, run_all.py and the server share.

The public entry points; the modules hold the rest (one module per job).
"""

from lib.core import moved
from lib.core.errors import (
    DataValidationError,
    ModelNotFoundError,
    ParamsError,
    QuireError,
    StageError,
)
from lib.core.params import Params, load_params

__all__ = [
    "DataValidationError",
    "ModelNotFoundError",
    "Params",
    "ParamsError",
    "QuireError",
    "StageError",
    "load_params",
]
__version__ = "0.1.0"

moved.install()  # models saved before lib/ was grouped name their classes by the old modules
