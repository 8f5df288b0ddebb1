"""The process environment, with the project's ``.env`` under it."""

from __future__ import annotations

import os
from pathlib import Path

from lib.paths import PROJECT_ROOT


def environment(dotenv: Path = PROJECT_ROOT / ".env") -> dict[str, str]:
    """Return the process environment over the values of ``.env`` (the process wins).

    ``.env``'s variables that the process does not set are exported too, so that what this
    command starts (stage kernels, the dashboard's kernels) and the libraries it calls (MLflow,
    the alert webhook) see the same values: ``.env`` is a set of environment variables, not only
    parameter overrides.
    """
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    return dict(os.environ)
