"""MLflow set-up and registry helpers: the embedded SQLite store, experiments, aliases."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.core import staging_area, startup
from lib.core.errors import ModelNotFoundError
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.core.paths import PROJECT_ROOT, resolve

log = get_logger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"


def tracking_uri(params: Params, env: Mapping[str, str] | None = None) -> str:
    """Return the tracking URI: params, else ``MLFLOW_TRACKING_URI``, else the embedded store."""
    env = os.environ if env is None else env
    if params.mlflow.tracking_uri:
        return params.mlflow.tracking_uri
    if env.get("MLFLOW_TRACKING_URI"):
        return env["MLFLOW_TRACKING_URI"]
    store = resolve(params.mlflow.store_dir)
    return f"sqlite:///{store / 'mlflow.db'}"


def experiment_name(params: Params) -> str:
    """Return the experiment name (``mlflow.experiment`` or the dataset name)."""
    return params.mlflow.experiment or params.project.name


_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. :/]+")


def metric_key(name: str) -> str:
    """Return ``name`` as an MLflow metric key: characters MLflow refuses become ``_``.

    Per-class metrics carry class labels, and labels are anything the data holds
    (``precision[Adelie Penguin (Pygoscelis adeliae)]``): MLflow allows only alphanumerics,
    ``_ - . :``, spaces and slashes.
    """
    return _METRIC_NAME.sub("_", name).strip("_") or "_"


def model_name(params: Params) -> str:
    """Return the registered model name (``mlflow.model_name`` or ``quire-<dataset>``)."""
    return params.mlflow.model_name or f"quire-{params.project.name}"


def setup(params: Params) -> str:
    """Point MLflow at the store and return the experiment id, creating it if needed.

    For the embedded SQLite store, artifacts go to ``<store_dir>/artifacts``, beside the database.
    """
    import mlflow

    uri = tracking_uri(params)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    # MLflow also exports the URI to MLFLOW_TRACKING_URI for subprocesses; undo that, so that the
    # variable keeps meaning "the user's choice" for later params and for child processes.
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    name = experiment_name(params)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return str(found.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        location = (resolve(params.mlflow.store_dir) / "artifacts").as_uri()
    experiment_id = mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    log.info("experiment_created", name=name, uri=uri)
    return str(experiment_id)


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """Return the project's git commit (``+dirty`` when the tree has changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def set_alias(name: str, alias: str, version: str, *, staged: bool = True) -> None:
    """Point ``alias`` of registered model ``name`` at ``version``.

    Inside a stage that run_all stages (``lib.run.staging``), the change is recorded and made when
    the stage's outputs are promoted; ``staged=False`` makes it now in any case.
    """
    if staged and staging_area.record_registry("alias", name, alias, str(version)):
        log.info("alias_staged", model=name, alias=alias, version=version)
        return
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, version)
    log.info("alias_set", model=name, alias=alias, version=version)


def set_version_tag(name: str, version: str, key: str, value: str, *, staged: bool = True) -> None:
    """Set a tag on a model version (recorded for promotion inside a staged stage, as aliases)."""
    if staged and staging_area.record_registry("tag", name, str(version), key, value):
        return
    from mlflow import MlflowClient

    MlflowClient().set_model_version_tag(name, version, key, value)


def version_by_alias(name: str, alias: str) -> Any:
    """Return the ModelVersion behind ``name@alias``, or raise ModelNotFoundError.

    Inside a staged stage, an alias the stage itself moved resolves to its new version.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        moved = staging_area.staged_alias(name, alias)
        if moved is not None:
            return MlflowClient().get_model_version(name, moved)
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        raise ModelNotFoundError(
            f"no version of model {name!r} has alias {alias!r}; run the train stage first "
            "(python run_all.py --only train)"
        ) from None


def owner_tags() -> dict[str, str]:
    """Tags naming the process and host that start a run (to find runs a crash left open)."""
    return {"quire.pid": str(os.getpid()), "quire.host": socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def close_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark FAILED the runs still RUNNING whose process, on this host, no longer exists.

    A run_all killed mid-training (SIGKILL, a crash, a lost machine) leaves its MLflow runs
    RUNNING forever; the next run_all (or train stage) closes them. Runs started on other
    hosts, by live processes, or without Quire's owner tags are left alone.

    Returns
    -------
    list of str
        The ids of the runs it closed.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    host = socket.gethostname()
    closed = []
    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000
    )
    for run in running:
        pid, owner = run.data.tags.get("quire.pid"), run.data.tags.get("quire.host")
        if owner != host or not pid or not pid.isdigit() or _alive(int(pid)):
            continue
        client.set_tag(
            run.info.run_id,
            "quire.closed",
            f"process {pid} ended without closing this run; marked FAILED by a later run",
        )
        client.set_terminated(run.info.run_id, status="FAILED")
        closed.append(run.info.run_id)
    if closed:
        log.warning("orphaned_runs_closed", experiment=experiment_id, runs=closed)
    return closed


def ui_command(params: Params, port: int) -> list[str] | None:
    """Return the MLflow UI command line for the project's store (None: a tracking server).

    The UI reads the same store the stages write (``mlflow.tracking_uri``, else
    ``MLFLOW_TRACKING_URI``, else the embedded SQLite store of ``mlflow.store_dir``), on
    127.0.0.1 only.
    """
    uri = tracking_uri(params)
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    return [mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]


def main(argv: Sequence[str] | None = None) -> int:
    """Open the MLflow UI on the project's store (``make mlflow-ui``) until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m lib.core.tracking", description="Open the MLflow UI on the project's store."
    )
    parser.add_argument("--port", type=int, default=5000)
    startup.add_arguments(parser, "mlflow.store_dir=/srv/quire/mlruns")
    args = parser.parse_args(argv)
    return startup.guarded(lambda: _open_ui(startup.Layers.from_args(args), args.port))


def _open_ui(layers: startup.Layers, port: int) -> int:
    params = startup.start(layers, log_level="WARNING")
    command = ui_command(params, port)
    if command is None:
        print(f"the store is the tracking server {tracking_uri(params)}: open its UI there")
        return 0
    print(f"MLflow UI on {tracking_uri(params)}: http://127.0.0.1:{port}/", flush=True)
    os.execv(command[0], command)
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())


MLFLOW_UI_ENV = "QUIRE_MLFLOW_UI_URL"
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"  # where `make mlflow-ui` serves


def mlflow_ui() -> str:
    """Return the MLflow UI's address for links (``QUIRE_MLFLOW_UI_URL``, else `make mlflow-ui`)."""
    return os.environ.get(MLFLOW_UI_ENV, MLFLOW_UI_DEFAULT).rstrip("/")
