"""Every parameter that names a column, a metric or a file, checked before anything is trained.

:func:`problems` lists what is wrong (one line per parameter, with where its value came from and a
suggestion: close names, the columns of the right kind); :func:`check` raises them all at once.
The ingest stage runs it on the inferred schema before it writes anything, and ``quire check`` and
``run_all --dry-run`` run it on the data as ingest would read it. :func:`segment_columns` says what
``evaluate.segments: auto`` means for a schema.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path

from lib.core import tasks
from lib.core.contracts import predlog
from lib.core.errors import ParamsError, QuireError
from lib.core.param_sections import ColumnKind, DataParams
from lib.core.params import Params
from lib.core.paths import resolve
from lib.core.refspec import reference_spec
from lib.data.schema import Schema

# Keys whose columns must be model features (not the target, the id or a dropped column).
FEATURE_KEYS = (
    "evaluate.segments",
    "monitor.columns",
    "monitor.exclude",
    "monitor.methods",
    "monitor.thresholds",
    "monitor.alerts.key_features",
)
# evaluate.segments groups the test rows by value: only categorical and boolean columns.
SEGMENT_KINDS: tuple[ColumnKind, ...] = ("categorical", "boolean")
# Keys without whose columns the schema cannot be inferred at all.
SCHEMA_KEYS = ("data.target", "data.id_column", "data.columns")
AUTO_SEGMENTS = 4  # evaluate.segments: auto picks at most this many columns
AUTO_SEGMENT_VALUES = 20  # ... each with at most this many values


def segment_columns(value: str | Sequence[str], schema: Schema) -> list[str]:
    """Return ``evaluate.segments`` resolved: ``auto`` picks low-cardinality features.

    ``auto``: the boolean and categorical features with 2 to 20 values, fewest values first (ties
    in schema order), at most four.
    """
    if value != "auto":
        return list(value)
    sizes = []
    for i, col in enumerate(schema.features):
        if col.kind == "boolean":
            sizes.append((2, i, col.name))
        elif col.kind == "categorical" and 2 <= len(col.categories or []) <= AUTO_SEGMENT_VALUES:
            sizes.append((len(col.categories or []), i, col.name))
    return [name for _, _, name in sorted(sizes)[:AUTO_SEGMENTS]]


def inferable(data: DataParams, columns: Sequence[str]) -> DataParams | None:
    """Return the data parameters without the columns the data lacks, to infer a schema anyway.

    So that one message can list every problem even when ``data.id_column`` or a declared
    column is missing; None when the target itself is missing (no task, nothing to infer).
    """
    present = set(map(str, columns))
    if data.target not in present:
        return None
    return data.model_copy(
        update={
            "id_column": data.id_column if data.id_column in present else None,
            "date_column": data.date_column if data.date_column in present else None,
            "columns": {k: v for k, v in data.columns.items() if k in present},
            "drop": [d for d in data.drop if d in present],
        }
    )


def column_keys(params: Params) -> dict[str, list[str]]:
    """Return each parameter that names columns, with the columns it names (unset or auto: out)."""
    data, monitor = params.data, params.monitor

    def listed(value: object) -> list[str]:
        return [] if value == "auto" or value is None else [str(v) for v in value]  # type: ignore[attr-defined]

    keys = {
        "data.target": [data.target],
        "data.id_column": [data.id_column] if data.id_column else [],
        "data.date_column": [data.date_column] if data.date_column else [],
        "data.columns": list(data.columns),
        "data.drop": list(data.drop),
        "evaluate.segments": listed(params.evaluate.segments),
        "monitor.columns": list(monitor.columns or []),
        "monitor.exclude": list(monitor.exclude),
        "monitor.methods": list(monitor.methods),
        "monitor.thresholds": list(monitor.thresholds),
        "monitor.alerts.key_features": listed(monitor.alerts.key_features),
    }
    return {key: names for key, names in keys.items() if names}


def missing_columns(
    params: Params, columns: Sequence[str], only: Sequence[str] | None = None
) -> list[str]:
    """Return one line per parameter (of ``only``, default all) naming columns the data lacks."""
    present = list(map(str, columns))
    lines = []
    for key, names in column_keys(params).items():
        if only is not None and key not in only:
            continue
        absent = [n for n in names if n not in present]
        if absent:
            lines.append(
                f"{_where(params, key)}: no column {_names(absent)} in the data"
                + _suggest(absent, present)
            )
    return lines


def misplaced_columns(params: Params, schema: Schema, columns: Sequence[str]) -> list[str]:
    """Return one line per parameter naming present columns it cannot use.

    Drift and alert keys need model features; ``evaluate.segments`` categorical or boolean
    features; ``data.date_column`` with ``ingest.split.by_time`` a date column.
    """
    keys = column_keys(params)
    features = schema.names()
    known = set(map(str, columns))
    segmentable = [n for kind in SEGMENT_KINDS for n in schema.names(kind)]
    rules: dict[str, tuple[list[str], str]] = {
        key: (features, "not a model feature (the features: " + ", ".join(features) + ")")
        for key in FEATURE_KEYS
    }
    rules["evaluate.segments"] = (
        segmentable,
        "not a categorical or boolean feature; "
        + (
            f"use some of {', '.join(segmentable)}, or 'segments: null' for none"
            if segmentable
            else "the data has none: set 'segments: null' (or leave it 'auto')"
        ),
    )
    lines = [
        f"{_where(params, key)}: {_names(wrong)}: {why}"
        for key, (allowed, why) in rules.items()
        if (wrong := [n for n in keys.get(key, []) if n in known and n not in allowed])
    ]
    date = params.data.date_column
    if params.ingest.split.by_time and not date:
        lines.append(
            f"{_where(params, 'ingest.split.by_time')}: a time split needs data.date_column; "
            "name the date column, or set ingest.split.by_time: false"
        )
    return lines


def metric_problems(params: Params, task: tasks.Task) -> list[str]:
    """Return one line per parameter naming a metric that ``task`` does not have."""
    lines = []
    checks: list[tuple[str, Sequence[str], tuple[str, ...]]] = [
        (
            "train.primary_metric",
            [] if params.train.primary_metric == "auto" else [params.train.primary_metric],
            tasks.METRICS[task],
        ),
        ("train.secondary_metrics", params.train.secondary_metrics or [], tasks.METRICS[task]),
    ]
    if params.evaluate.floors != "auto":
        checks.append(("evaluate.floors", list(params.evaluate.floors), tasks.SCORES[task]))
    drop = params.monitor.alerts.metric_drop
    if drop != "auto":
        checks.append(("monitor.alerts.metric_drop", list(drop), tasks.MONITORED[task]))
    for key, names, allowed in checks:
        wrong = [n for n in names if n not in allowed]
        if wrong:
            lines.append(
                f"{_where(params, key)}: {_names(wrong)}: not a {task} metric; use "
                f"{', '.join(allowed)}" + _suggest(wrong, allowed)
            )
    return lines


def file_problems(params: Params, header: Callable[[Path], list[str]]) -> list[str]:
    """Return one line per file parameter whose files are missing or lack needed columns.

    ``monitor.current`` (files), ``monitor.reference`` (a file) and ``monitor.labels`` (a file,
    with the target and the key columns). ``header`` returns a file's column names.
    """
    from lib.data.readers import expand_source

    m = params.monitor
    lines = []
    current = params.monitor_current()
    if current == "production" and params.data.source != "generator":
        lines.append(
            f"{_where(params, 'monitor.current')}: 'production' is the built-in generator's "
            "batch; set monitor.current to 'log' (the served rows) or a CSV/Parquet file"
        )
    named: list[tuple[str, str, list[str]]] = [("monitor.current", current, [])]
    if reference_spec(m.reference).kind == "file":  # champion, training, a range: no file
        named.append(("monitor.reference", m.reference, []))
    if m.labels and m.labels != "feedback":
        by_id = [params.data.id_column] if params.data.id_column and current != "log" else []
        joins = m.label_key or by_id
        named.append(("monitor.labels", m.labels, [params.data.target, *joins]))
    for key, spec, needed in named:
        if spec in ("production", "log", "penguins"):
            continue
        try:
            paths = expand_source(str(resolve(spec)))
        except QuireError as exc:  # the reader's message names the file and the fix
            lines.append(f"{_where(params, key)}: {exc}")
            continue
        if needed:
            columns = header(paths[0])
            absent = [c for c in needed if c not in columns]
            if absent:
                lines.append(
                    f"{_where(params, key)}: {paths[0]} has no column {_names(absent)} "
                    "(labels need the target and the monitor.label_key columns)"
                    + _suggest(absent, columns)
                )
    return lines


def problems(
    params: Params,
    columns: Sequence[str],
    schema: Schema | None,
    header: Callable[[Path], list[str]] | None = None,
) -> list[str]:
    """Return every problem with the parameters, given the data's columns and inferred schema.

    ``schema`` may be None when a column the schema needs is missing (only names are checked).
    """
    found = missing_columns(params, columns) + reserved_columns(params, columns)
    if schema is not None:
        found += misplaced_columns(params, schema, columns)
        found += metric_problems(params, schema.task)
    if header is not None:
        found += file_problems(params, header)
    return found


def reserved_columns(params: Params, columns: Sequence[str]) -> list[str]:
    """Return one line per kept column named as one of the prediction log's own columns.

    The server logs each served row's features beside ``request_id``, ``row``, ``time``,
    ``model_version``, ``prediction`` and ``proba_<class>``: a feature of one of those names was
    overwritten in every logged row (plotly's tips has a ``time`` column, lunch or dinner: the
    log held timestamps there, and the monitor called it drifted), and a target of one of them
    could not be joined to its labels.
    """
    dropped = set(params.data.drop)
    clash = [str(c) for c in columns if str(c) not in dropped and predlog.is_log_column(str(c))]
    own = ", ".join([*predlog.LOG_COLUMNS, f"{predlog.PROBA_PREFIX}<class>"])
    return [
        f"data (from {params.source_of('data.source')}): column {name!r} has a name the "
        f"prediction log gives its own columns ({own}), so every served row's log would "
        "overwrite it; rename it "
        f"with data.rename: {{{name}: {name}_value}} (any free name), or drop it with "
        f"data.drop: [{name}]"
        for name in clash
    ]


def resolved_defaults(params: Params, schema: Schema) -> list[str]:
    """Return what each ``auto`` setting means for this data and task, one line each."""
    k = len(schema.classes) if schema.classes else None
    e, alerts = params.evaluate, params.monitor.alerts
    lines = []
    if e.segments == "auto":
        lines.append(f"evaluate.segments: auto -> {segment_columns('auto', schema)}")
    if e.floors == "auto":
        lines.append(f"evaluate.floors: auto -> {tasks.floors('auto', schema.task, k)}")
    if alerts.metric_drop == "auto":
        lines.append(
            f"monitor.alerts.metric_drop: auto -> {tasks.metric_drop('auto', schema.task)}"
        )
    if alerts.key_features == "auto":
        lines.append(
            "monitor.alerts.key_features: auto -> the champion's 3 most important features"
        )
    if params.monitor.current == "auto":
        lines.append(f"monitor.current: auto -> {params.monitor_current()}")
    return lines


def file_columns(path: Path, params: Params) -> list[str]:
    """Return the columns of a CSV/Parquet file as the readers read it."""
    from lib.data.readers import read_table

    return [str(c) for c in read_table(path, params.data.csv, params.data.rename).columns]


def check(
    params: Params,
    columns: Sequence[str],
    schema: Schema | None,
    where: str,
    header: Callable[[Path], list[str]] | None = None,
) -> None:
    """Raise one :class:`ParamsError` listing every problem :func:`problems` finds.

    Parameters
    ----------
    params
        The parameters.
    columns
        The data's columns.
    schema
        Its inferred schema (None: only names are checked).
    where
        The data, for the message (e.g. the first source file).
    header
        Returns a file's columns, to check ``monitor.labels`` files (None: files not checked).
    """
    found = problems(params, columns, schema, header)
    if found:
        raise ParamsError(
            f"{len(found)} parameter problem(s), found before anything was trained:\n  "
            + "\n  ".join(found)
            + f"\nthe data ({where}) has the columns: {', '.join(map(str, columns))}"
            + "\neach line says where the value came from; fix it there (a --params file, -p, "
            "QUIRE__* variables), or override a default in your preset ('null' clears a list or "
            "map setting)",
            key=found[0].split(" ", 1)[0],
        )


def _where(params: Params, key: str) -> str:
    return f"{key} (from {params.source_of(key)})"


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _suggest(wrong: Sequence[str], choices: Sequence[str]) -> str:
    close = sorted(
        {c for w in wrong for c in difflib.get_close_matches(str(w), list(choices), n=2)}
    )
    return f"; did you mean {_names(close)}?" if close else ""
