"""Project paths, computed once from the package location."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PARAMS_DIR = PROJECT_ROOT / "params"
BASE_PARAMS = PARAMS_DIR / "base.yaml"
# Settings that name the built-in generator's columns: layered right after base.yaml, and only
# when data.source is 'generator' (lib.core.params.load_params).
GENERATOR_PARAMS = PARAMS_DIR / "builtin" / "generator.yaml"
TEMPLATES_DIR = PROJECT_ROOT / "lib" / "templates"


def resolve(path: str | Path, root: Path = PROJECT_ROOT) -> Path:
    """Return ``path`` as an absolute path, relative ones taken from the project root.

    Parameters
    ----------
    path
        A path as written in params (relative to the project) or absolute.
    root
        Base for relative paths.

    Returns
    -------
    Path
        The absolute path.
    """
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p
