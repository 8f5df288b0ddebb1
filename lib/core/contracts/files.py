"""Reading a contract's JSON file: one way to say that it is missing or not what Quire wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from lib.core.errors import DataValidationError

M = TypeVar("M", bound=BaseModel)


def read_json_model(
    path: Path, model: type[M], *, what: str, missing: str, fix: str, check: str
) -> M:
    """Return the file at ``path`` as ``model``; a missing or broken file names the fix.

    Parameters
    ----------
    path
        The file.
    model
        The contract's pydantic model.
    what
        What the file is, for the message ("a manifest", "a monitoring summary").
    missing
        What a missing file means ("no processed data here").
    fix
        How to make the file again ("run the ingest stage").
    check
        The error's check name when the file exists but does not validate.

    Raises
    ------
    DataValidationError
        ``check="missing_file"`` when there is no file, else ``check``: not JSON, or which
        fields are missing or invalid.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return model.model_validate(raw)
    except FileNotFoundError:
        raise DataValidationError(
            f"{path}: {missing}; {fix} first", path=path, check="missing_file"
        ) from None
    except ValidationError as exc:
        wrong = sorted({".".join(map(str, e["loc"])) or "(top)" for e in exc.errors()})
        raise DataValidationError(
            f"{path}: not {what} Quire can read (missing or invalid: {', '.join(wrong)}); "
            f"{fix} again",
            path=path,
            check=check,
        ) from None
    except ValueError as exc:  # not JSON: cut short by a full disk, or edited by hand
        raise DataValidationError(
            f"{path}: not JSON ({exc}); {fix} again", path=path, check=check
        ) from None
