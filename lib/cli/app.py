"""The ``quire`` command: a Typer app whose subcommands are the project's entry points.

Each subcommand imports what it needs when it runs, so ``quire --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from lib.cli import loop, pipeline, services

app = typer.Typer(
    name="quire",
    help="Quire: notebook-first ML pipelines for tabular data. "
    "Parameters come in layers: params/base.yaml, --params FILE, QUIRE__* variables (.env too), "
    "-p KEY=VALUE.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXAMPLES = {
    "run": [
        "quire run",
        "quire run --params params/penguins.yaml",
        "quire run --only ingest -p generator.rows=100000",
        "quire run --force train --hide-code",
    ],
    "status": ["quire status", "quire status --params params/penguins.yaml"],
    "check": ["quire check", "quire check -p 'monitor.alerts.key_features=[tenure_months]'"],
    "serve": [
        "quire serve",
        "quire serve --port 8001 --workers 2",
        "QUIRE_SERVER_POLL_SECONDS=30 quire serve",
    ],
    "dashboard": ["quire dashboard", "quire dashboard --port 8870 --params params/penguins.yaml"],
    "lab": ["quire lab", "quire lab --port 8890 --no-browser"],
    "demo": ["quire demo", "quire demo --no-wait -p generator.rows=5000"],
    "replay": [
        "quire replay --rows 2000 --rate 200",
        "quire replay data/incoming.csv --ids-out ids.csv",
    ],
    "lineage": ["quire lineage 3f2c9a1e0b7d4c55"],
    "drift": [
        "quire drift",
        "quire drift --window-rows 100000 --backend dask",
        "quire drift data/predictions/quire-churn --period D",
    ],
    "mlflow-ui": ["quire mlflow-ui", "quire mlflow-ui --port 5001"],
}


def _epilog(name: str) -> str:
    lines = "\n".join(EXAMPLES[name])
    return f"**Examples**\n\n```\n{lines}\n```"


def _register(name: str, command: Callable[..., None], **settings: Any) -> None:
    app.command(name, epilog=_epilog(name), **settings)(command)


_register("run", pipeline.run, cls=pipeline.RunCommand)
_register("status", pipeline.status)
_register("check", pipeline.check)
_register("serve", services.serve)
_register("dashboard", services.dashboard)
_register(
    "lab",
    services.lab,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": False},
)
_register("demo", loop.demo)
_register("replay", loop.replay)
_register("lineage", loop.lineage)
_register("drift", loop.drift)
_register("mlflow-ui", services.mlflow_ui)
