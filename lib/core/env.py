"""The process environment, with the project's ``.env`` under it."""

from __future__ import annotations

import os
from pathlib import Path

from lib.core.paths import PROJECT_ROOT


def environment(dotenv: Path = PROJECT_ROOT / ".env") -> dict[str, str]:
    """Return the process environment over the values of ``.env`` (the process wins).

    ``.env``'s variables that the process does not set are exported too, so that what this
    command starts (stage kernels, the dashboard's kernels) and the libraries it calls (MLflow,
    the alert webhook) see the same values: ``.env`` is a set of environment variables, not only
    parameter overrides.

    The project's root also goes first on ``PYTHONPATH``, so that every Python process started
    from here (stage kernels, the dashboard's kernels, the server) imports this project's ``lib``,
    not the one an editable install elsewhere (a ``.venv`` shared by two checkouts) points at.
    """
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    os.environ["PYTHONPATH"] = project_pythonpath(os.environ.get("PYTHONPATH", ""))
    return dict(os.environ)


def project_pythonpath(current: str) -> str:
    """Return ``current`` (a ``PYTHONPATH``) with the project's root first, and only once."""
    root = str(PROJECT_ROOT)
    rest = [p for p in current.split(os.pathsep) if p and p != root]
    return os.pathsep.join([root, *rest])


def kernel_paths() -> dict[str, str]:
    """Return the variables a kernel started from here needs to import this project's ``lib``."""
    return {"PYTHONPATH": project_pythonpath(os.environ.get("PYTHONPATH", ""))}
