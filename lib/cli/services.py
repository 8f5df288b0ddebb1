"""``quire serve``, ``dashboard``, ``lab`` and ``mlflow-ui``: the long-running commands.

Each replaces this process with the service (``exec``), as ``make`` did, so signals reach it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from lib.cli.options import Overrides, Presets, exits, flags, layer_args

Port = Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.", min=1, max=65535)]


@exits
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Address to bind [QUIRE_SERVER_HOST, else 127.0.0.1].",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            help="Port [QUIRE_SERVER_PORT, else 8000].",
            min=1,
            max=65535,
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Server processes sharing the port [QUIRE_SERVER_WORKERS, else 1].",
            min=1,
            max=64,
            show_default=False,
        ),
    ] = None,
) -> int:
    """Serve the champion model over REST (python -m server).

    Every other setting is an environment variable QUIRE_SERVER_* (see .env.example; a .env file
    works too): the model URI, the API key, the prediction log, polling for a new champion.
    """
    from lib.core.env import environment
    from lib.core.startup import start_logging

    start_logging()
    env = environment()  # .env exported; the project's root first on PYTHONPATH
    env.update(flags_env(host=host, port=port, workers=workers))
    command = [sys.executable, "-m", "server"]
    sys.stdout.flush()
    os.execve(command[0], command, env)
    return 0  # not reached: execve replaces this process


def flags_env(*, host: str | None, port: int | None, workers: int | None = None) -> dict[str, str]:
    """Return the server settings given on the command line, as its environment variables."""
    given = {"QUIRE_SERVER_HOST": host, "QUIRE_SERVER_PORT": port, "QUIRE_SERVER_WORKERS": workers}
    return {name: str(value) for name, value in given.items() if value is not None}


@exits
def dashboard(
    presets: Presets = None,
    overrides: Overrides = None,
    port: Port = 8866,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            metavar="FOLDER",
            help="Monitoring results folder [from params].",
            show_default=False,
        ),
    ] = None,
) -> int:
    """Serve the Voila drift dashboard of the last monitor run (python -m lib.monitoring.dashboard).

    It reads only the saved monitoring results of the project the parameters name, listens on
    127.0.0.1, hides all code and culls idle kernels.
    """
    from lib.monitoring import dashboard as board

    argv = ["--port", str(port), *flags(results=results), *layer_args(presets, overrides)]
    return board.main(argv)


@exits
def lab(
    port: Port = 8888,
    print_command: Annotated[
        bool, typer.Option("--print-command", help="Print JupyterLab's command line and exit.")
    ] = False,
    jupyter_args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JUPYTER_ARGS]...",
            help="More JupyterLab options, e.g. --no-browser.",
            show_default=False,
        ),
    ] = None,
) -> int:
    """Open JupyterLab at the project root on 127.0.0.1, importing this project's lib.

    The project's root goes first on PYTHONPATH, so the notebooks' kernels import this checkout's
    lib; --allow-root is added only when running as root. make lab also installs the kernel
    the notebooks name (make kernel) and the git filter that strips notebooks on commit.
    """
    from lib.core.env import environment
    from lib.core.paths import PROJECT_ROOT

    command = lab_command(port, PROJECT_ROOT, list(jupyter_args or []), as_root=os.geteuid() == 0)
    if print_command:
        import shlex

        print(shlex.join(command))
        return 0
    env = environment()
    sys.stdout.flush()
    os.execve(command[0], command, env)
    return 0  # not reached: execve replaces this process


def lab_command(port: int, root: Path, extra: list[str], *, as_root: bool) -> list[str]:
    """Return the JupyterLab command line: loopback, ``port``, rooted at ``root``."""
    jupyter = str(Path(sys.executable).with_name("jupyter"))
    command = [jupyter, "lab", "--ip", "127.0.0.1", "--port", str(port)]
    command += [f"--ServerApp.root_dir={root}"]
    return command + (["--allow-root"] if as_root else []) + extra


@exits
def mlflow_ui(presets: Presets = None, overrides: Overrides = None, port: Port = 5000) -> int:
    """Open the MLflow UI on the project's store (python -m lib.core.tracking).

    The store is the one the stages write: mlflow.tracking_uri, else MLFLOW_TRACKING_URI, else
    the SQLite store in mlflow.store_dir. A tracking server's store is not opened (use its UI).
    """
    from lib.core import tracking

    return tracking.main(["--port", str(port), *layer_args(presets, overrides)])
