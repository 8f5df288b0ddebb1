"""The one start-up path of every Quire command: parameter layers, logging, errors, exit codes.

Every entry point (``quire`` and its subcommands, ``run_all.py``, ``python -m server``,
``python -m lib.loop.demo``, ``lib.loop.replay``,
``lib.loop.lineage``, ``lib.core.tracking``, ``lib.monitoring.dashboard``) starts the same way:

1. the parameter layers: ``params/base.yaml``, ``--params FILE`` (repeatable), ``QUIRE__*``
   environment variables (``.env`` included, see :func:`lib.core.env.environment`) and
   ``-p KEY=VALUE`` (repeatable);
2. logging (:func:`lib.core.logs.configure_logging`);
3. errors: a :class:`~lib.core.errors.QuireError` prints its message to stderr, without a
   traceback, and the command exits 2 (:class:`~lib.core.errors.ParamsError`: invalid parameters
   or usage) or 1 (any other); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec

from lib.core.errors import ParamsError, QuireError
from lib.core.params import Params, load_params

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # as a shell reports a process stopped by SIGINT

P = ParamSpec("P")


@dataclass(frozen=True)
class Layers:
    """The parameter layers a command was given: preset files and ``-p`` overrides."""

    presets: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()

    @classmethod
    def of(cls, presets: Sequence[str | Path] | None, overrides: Sequence[str] | None) -> Layers:
        """Return the layers of ``--params`` files and ``-p`` overrides (``None``: none given)."""
        return cls(tuple(str(p) for p in presets or ()), tuple(overrides or ()))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Layers:
        """Return the layers an argparse parser set up by :func:`add_arguments` parsed."""
        return cls.of(args.params, args.overrides)

    def argv(self) -> list[str]:
        """Return the layers as command-line arguments, for a command started from this one."""
        return [a for f in self.presets for a in ("--params", f)] + [
            a for o in self.overrides for a in ("-p", o)
        ]


def add_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """Add ``--params FILE`` and ``-p KEY=VALUE`` (both repeatable) to an argparse parser.

    Parameters
    ----------
    parser
        The command's parser; :meth:`Layers.from_args` reads what it parsed.
    example
        An override shown in the help, e.g. ``generator.rows=5000``.
    """
    parser.add_argument(
        "--params", action="append", default=[], metavar="FILE", help="preset YAML (repeatable)"
    )
    parser.add_argument(
        "-p",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one parameter, e.g. -p {example} (repeatable)",
    )


def load(layers: Layers = Layers()) -> Params:
    """Return the validated parameters of ``layers`` over the environment (``.env`` included).

    Raises
    ------
    ParamsError
        Naming the key, where its value came from and what is allowed.
    """
    from lib.core.env import environment

    return load_params(layers.presets, layers.overrides, env=environment())


def start(
    layers: Layers = Layers(), *, log_level: str = "INFO", log_file: Path | None = None
) -> Params:
    """Start a command: the environment (``.env``), logging, then the parameters.

    Parameters
    ----------
    layers
        The command's ``--params`` and ``-p`` layers.
    log_level
        Console (and file) log level.
    log_file
        JSON-lines log file; ``None`` logs to the console only.

    Returns
    -------
    Params
        The validated parameters.
    """
    start_logging(log_level, log_file)
    return load(layers)


def start_logging(log_level: str = "INFO", log_file: Path | None = None) -> None:
    """Configure logging as every command does: readable on stderr, JSON lines in ``log_file``."""
    from lib.core.logs import configure_logging

    configure_logging(log_level, log_file)


USAGE_ERRORS: tuple[type[QuireError], ...] = (ParamsError,)


def exit_code(exc: QuireError, usage: tuple[type[QuireError], ...] = USAGE_ERRORS) -> int:
    """Return the exit code of a command that ended with ``exc``: 2 for usage, else 1.

    Parameters
    ----------
    exc
        The error.
    usage
        The error types that mean the command was called wrongly (exit 2): invalid parameters,
        and for some commands more (the replay tool: no server at the URL).
    """
    return EXIT_USAGE if isinstance(exc, usage) else EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> int:
    """Print ``error: message`` to stderr and return ``code`` (for a command's own refusals)."""
    print(f"error: {message}", file=sys.stderr)
    return code


def guarded(body: Callable[[], int], usage: tuple[type[QuireError], ...] = USAGE_ERRORS) -> int:
    """Run a command's body; turn a QuireError or Ctrl-C into a message and an exit code.

    Parameters
    ----------
    body
        The command; returns its exit code.
    usage
        The error types that exit 2 (see :func:`exit_code`); other QuireErrors exit 1.

    Returns
    -------
    int
        The body's exit code, or the error's; 130 after Ctrl-C. Any other exception is a bug and
        keeps its traceback.
    """
    try:
        return body()
    except QuireError as exc:
        return fail(str(exc), exit_code(exc, usage))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry_point(main: Callable[P, int]) -> Callable[P, int]:
    """Decorate a command's ``main``: its QuireErrors become a message and exit code 2 or 1."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        return guarded(lambda: main(*args, **kwargs))

    return wrapper
