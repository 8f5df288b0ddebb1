"""The monitor's reference rows, as ``monitor.reference`` names them (:mod:`lib.core.refspec`).

- ``champion``: the champion's saved reference (the evaluate stage's test rows, with target,
  prediction and class probabilities);
- ``training``: the rows the champion was trained on, scored by it;
- a CSV/Parquet path or glob: its rows, scored by the model, with the target when the file has it;
- a date range ``YYYY-MM-DD..YYYY-MM-DD`` (both days included): the rows of the processed data
  (train, validation and test) whose time column falls in it, scored by the model.

Every reference built here has the champion reference's columns (:func:`lib.model.reference.
scored_frame`), so drift of the model's outputs and quality compare alike whichever is chosen.
For seasonal data the reference should span a full cycle (a year): a one-season reference makes
every other season look like drift (:mod:`lib.monitoring.coverage` warns when it is narrower
than the current data).
"""

from __future__ import annotations

import pandas as pd

from lib.core import frames
from lib.core.errors import DataValidationError, ParamsError
from lib.core.layout import Layout
from lib.core.logs import get_logger
from lib.core.params import Params
from lib.core.paths import resolve
from lib.core.refspec import CHOICES, KEY, ReferenceSpec, reference_spec
from lib.data.drift_profile import Profile, build_profile
from lib.data.readers import expand_source
from lib.data.schema import Schema
from lib.model.reference import (
    DRIFT_PROFILE,
    REFERENCE,
    profile_kinds,
    scored_frame,
)
from lib.monitoring.inputs import (
    Reference,
    Scorer,
    conform,
    in_time_order,
    parse_times,
    read_files,
    time_column,
)

log = get_logger(__name__)


def load_reference(
    params: Params,
    schema: Schema,
    model: str,
    version: str | None,
    scorer: Scorer | None = None,
) -> Reference:
    """Return the reference ``monitor.reference`` names, with labels and model outputs.

    Parameters
    ----------
    params
        ``monitor.reference`` (see the module docstring), ``monitor.time_column`` for a date
        range, and the project's folders.
    schema
        The model's schema: its features, target and classes.
    model, version
        The registered model and the version monitored (None: a model outside the registry).
    scorer
        The model's ``predict`` (rows -> labels, probabilities), used for every reference but
        ``champion`` (whose outputs were saved by the evaluate stage). None: the model
        ``model``/``version`` is loaded for it.

    Returns
    -------
    Reference
        Rows with the target (when known), ``prediction`` and ``proba_<class>`` columns, their
        profile, and warnings about what the reference lacks.

    Raises
    ------
    ParamsError, DataValidationError
        Naming ``monitor.reference`` and the fix: an unknown file, an empty date range, a range
        on data without a time column, a champion without a saved reference, ...
    """
    spec = reference_spec(params.monitor.reference)
    if spec.kind == "champion":
        return _champion_reference(params, schema, model, version)
    notes: list[str] = []
    if spec.kind == "file":
        rows, source = _file_rows(params, schema, spec.text)
    elif spec.kind == "training":
        rows, source = _training_rows(params, schema, model, version)
        notes.append(
            f"{KEY}=training: the model was fitted on these rows, so its quality on them is "
            "optimistic and quality drops against them look larger than they are; use "
            "'champion' (held-out test rows) when quality alerts matter"
        )
    else:
        rows, source = _range_rows(params, schema, spec)
    if schema.target not in rows.columns or rows[schema.target].isna().all():
        # an all-empty target column is no target: quality is then skipped, not computed on 0 rows
        rows = rows.drop(columns=[schema.target], errors="ignore")
        notes.append(
            f"{KEY}={spec.text}: the reference has no values of the target "
            f"{schema.target!r}, so quality is not compared with it; add the target column"
        )
    pred, proba = (scorer or _model_scorer(params, model, version))(rows[schema.names()])
    frame, _ = scored_frame(rows, schema, pred, proba)
    for note in notes:
        log.warning("reference_note", reference=spec.text, note=note)
    log.info("reference_loaded", reference=spec.text, kind=spec.kind, rows=len(frame))
    return Reference(
        frame=frame,
        profile=build_profile(frame, profile_kinds(schema, frame)),
        source=source,
        version=version,
        kind=spec.kind,
        warnings=notes,
    )


def _champion_reference(
    params: Params, schema: Schema, model: str, version: str | None
) -> Reference:
    """Return the champion's reference, as the evaluate stage saved it."""
    if version is None:
        raise DataValidationError(
            f"model {model!r} has no champion; run the evaluate stage, or set {KEY} to "
            "training, a CSV/Parquet file or a date range"
        )
    folder = Layout.of(params, model=model).reference(version)
    path = folder / REFERENCE
    if not path.exists():
        raise DataValidationError(
            f"{path}: no monitoring reference for {model} version {version}; rerun the "
            "evaluate stage (python run_all.py --from evaluate)",
            path=path,
            check="missing_file",
        )
    frame = frames.read_parquet(path)
    if (folder / DRIFT_PROFILE).exists():
        profile = Profile.load(folder / DRIFT_PROFILE)
    else:  # saved before drift profiles existed: build it once, keep it
        profile = build_profile(frame, profile_kinds(schema, frame))
        profile.save(folder / DRIFT_PROFILE)
    return Reference(frame=frame, profile=profile, source=str(folder), version=version)


def _model_scorer(params: Params, model: str, version: str | None) -> Scorer:
    """Return the monitored model's ``predict`` (for callers that did not pass theirs)."""
    from lib.serving.loading import load_model

    uri = None if version is None else f"models:/{model}/{version}"
    return load_model(params, uri, fast=False).predict


def _file_rows(params: Params, schema: Schema, spec: str) -> tuple[pd.DataFrame, str]:
    """Return the rows of the reference file(s), conformed, target kept when present."""
    try:
        paths = expand_source(str(resolve(spec)))
    except DataValidationError as exc:
        raise DataValidationError(
            f"{KEY}: no file matches {str(resolve(spec))!r}; check the path or glob, or set "
            f"{KEY} to one of: {CHOICES}",
            path=exc.path,
            check="missing_file",
        ) from None
    return read_files(paths, params, schema), ";".join(str(p) for p in paths)


def _training_rows(
    params: Params, schema: Schema, model: str, version: str | None
) -> tuple[pd.DataFrame, str]:
    """Return the rows the model was trained on (the processed train split), in time order."""
    from lib.data.ingest import load_processed

    _check_trained_on(params, model, version)
    data = load_processed(params)
    path = Layout.of(params).processed / data.manifest.splits["train"].file
    rows = conform(data.splits["train"], schema, path)
    return in_time_order(rows, time_column(params, schema)), str(path)


def _check_trained_on(params: Params, model: str, version: str | None) -> None:
    """Raise unless the processed data is the one ``version`` was trained on."""
    if version is None:
        return
    from mlflow import MlflowClient

    from lib.core.atomic import sha256_file
    from lib.core.contracts.tags import read_version_tags

    tags = MlflowClient().get_model_version(model, version).tags
    trained_on = read_version_tags(tags).manifest_sha256
    manifest = Layout.of(params).manifest
    if trained_on and manifest.exists() and trained_on != sha256_file(manifest):
        raise DataValidationError(
            f"{KEY}=training: {manifest} changed since {model} version {version} was trained, "
            "so its train split is no longer the rows the model learned from; retrain "
            f"(python run_all.py --from train) or set {KEY} to champion or a date range",
            path=manifest,
            check="manifest",
        )


def _range_rows(params: Params, schema: Schema, spec: ReferenceSpec) -> tuple[pd.DataFrame, str]:
    """Return the processed rows (every split) whose time column falls in the range."""
    from lib.data.ingest import load_processed

    column = time_column(params, schema)
    if column is None:
        raise ParamsError(
            f"{KEY}={spec.text}: a date range needs a time column, and the data has none; set "
            "monitor.time_column (or data.date_column before ingest) to a date column, or set "
            f"{KEY} to champion, training or a CSV/Parquet file",
            key=KEY,
        )
    data = load_processed(params)
    folder = Layout.of(params).processed
    if column not in data.splits["train"].columns:
        raise ParamsError(
            f"{KEY}={spec.text}: the time column {column!r} is not in the processed data "
            f"({folder}); set monitor.time_column to one of its date columns",
            key=KEY,
        )
    rows = pd.concat([conform(f, schema, folder) for f in data.splits.values()], ignore_index=True)
    times = parse_times(rows[column], column, str(folder))
    inside = ((times >= spec.start) & (times < spec.end)).to_numpy()
    if not inside.any():
        known = times.dropna()
        span = f"{known.min():%Y-%m-%d}..{known.max():%Y-%m-%d}" if len(known) else "no dates"
        raise DataValidationError(
            f"{KEY}={spec.text}: no rows of the processed data have {column!r} in that range "
            f"(the data spans {span}); choose days inside that span",
            path=folder,
            column=column,
            check="empty_range",
        )
    picked = rows[inside].reset_index(drop=True)
    return in_time_order(picked, column), f"{folder} ({column} in {spec.text})"
