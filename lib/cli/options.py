"""What the ``quire`` subcommands share: the parameter-layer options and how a command exits."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, ParamSpec

import typer

P = ParamSpec("P")

Presets = Annotated[
    list[Path] | None,
    typer.Option(
        "--params",
        metavar="FILE",
        help="Preset YAML on top of params/base.yaml (repeatable).",
        show_default=False,
    ),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "-p",
        metavar="KEY=VALUE",
        help="Override one parameter, e.g. -p generator.rows=5000 (repeatable).",
        show_default=False,
    ),
]


def layer_args(presets: Sequence[Path] | None, overrides: Sequence[str] | None) -> list[str]:
    """Return the ``--params`` and ``-p`` layers as arguments for a Quire command's ``main``."""
    from lib.core.startup import Layers

    return Layers.of(presets, overrides).argv()


def flags(**options: object) -> list[str]:
    """Return ``--name value`` arguments for the options given (``None`` and ``False``: left out).

    ``True`` gives a bare ``--name``; a list gives the option once per item. Underscores in
    names become dashes.
    """
    argv: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list | tuple):
            argv += [a for item in value for a in (flag, str(item))]
        else:
            argv += [flag, str(value)]
    return argv


def exits(command: Callable[P, int]) -> Callable[P, None]:
    """Run a subcommand through the start-up path's error handling; exit with its code.

    A QuireError prints its message (no traceback) and exits 2 (invalid parameters) or 1.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        from lib.core.startup import guarded

        code = guarded(lambda: command(*args, **kwargs))
        if code:
            raise typer.Exit(code)

    return wrapper


def stage_names() -> list[str]:
    """Return the stage names (shell completion of ``--only``, ``--from``, ``--force``)."""
    from lib.run.stages import STAGES

    return [s.name for s in STAGES]
