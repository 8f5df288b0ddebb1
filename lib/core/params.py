"""Typed, layered parameters.

Layers, later ones win: ``params/base.yaml`` → preset files (``--params``) → environment variables
(``QUIRE__SECTION__KEY=value``) → command-line overrides (``-p section.key=value``). The merged
mapping is validated into :class:`Params` before any notebook starts; every error names the key,
where its value came from and what is allowed.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lib.core.errors import ParamsError
from lib.core.paths import BASE_PARAMS

ENV_PREFIX = "QUIRE__"
ColumnKind = Literal["numeric", "categorical", "boolean", "datetime"]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectParams(_Section):
    """Shared keys: dataset name, seed and where outputs go."""

    name: str = Field("churn", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    seed: int = 42
    data_dir: str = "data"
    reports_dir: str = "reports"
    logs_dir: str = "logs"


class CsvParams(_Section):
    """How CSV files are read."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"


class ColumnSpec(_Section):
    """A declared column: its kind and, optionally, its allowed values."""

    kind: ColumnKind
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None


class DataParams(_Section):
    """Where the data comes from and which column is the target."""

    source: str = "generator"
    target: str = "churned"
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    id_column: str | None = "customer_id"
    date_column: str | None = "signup_date"
    columns: dict[str, ColumnKind | ColumnSpec] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    csv: CsvParams = Field(default_factory=CsvParams)


class ProductionParams(_Section):
    """The generator's later "production" batch and the drift injected into it."""

    rows: int = Field(5000, ge=0, le=10_000_000)
    numeric_shift: float = 0.5
    shifted_columns: list[str] = Field(
        default_factory=lambda: ["monthly_charges", "avg_session_minutes"]
    )
    new_category: bool = True
    relation_change: bool = True


class GeneratorParams(_Section):
    """The built-in customer-churn generator."""

    rows: int = Field(20_000, ge=50, le=10_000_000)
    format: Literal["parquet", "csv"] = "parquet"
    chunk_rows: int = Field(250_000, ge=1_000)
    churn_rate: Share = 0.2
    label_noise: Share = 0.03
    missing_rate: Share = 0.04
    outlier_rate: Share = 0.005
    production: ProductionParams = Field(default_factory=ProductionParams)


class SplitParams(_Section):
    """Train/validation/test fractions; by time when ``by_time`` and a date column is named."""

    validation: float = Field(0.15, gt=0.0, lt=1.0)
    test: float = Field(0.2, gt=0.0, lt=1.0)
    by_time: bool = False

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> SplitParams:
        if self.validation + self.test >= 0.9:
            raise ValueError(
                f"validation + test = {self.validation + self.test:g} leaves too little for "
                "training; keep their sum below 0.9"
            )
        return self


class ChecksParams(_Section):
    """Thresholds of the validation report's soft findings and of type inference."""

    max_missing_share: Share = 0.3
    max_duplicate_share: Share = 0.01
    numeric_min_share: Share = 0.9


class PreprocessingParams(_Section):
    """The unfitted ColumnTransformer the model pipeline starts with."""

    numeric_impute: Literal["median", "mean"] = "median"
    clip_quantiles: tuple[Share, Share] | None = (0.005, 0.995)
    scale: Literal["standard", "robust", "none"] = "standard"
    categorical_impute: Literal["constant", "most_frequent"] = "constant"
    encode: Literal["onehot", "ordinal"] = "onehot"
    max_categories: int = Field(20, ge=2)
    min_frequency: float = Field(0.005, ge=0.0, lt=1.0)
    date_features: bool = True

    @field_validator("clip_quantiles")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"needs low < high, got {list(v)}")
        return v


class IngestParams(_Section):
    """The ingest stage: schema handling, checks, preprocessing and split."""

    schema_mode: Literal["auto", "infer"] = "auto"
    sample_rows: int = Field(50_000, ge=100)
    checks: ChecksParams = Field(default_factory=ChecksParams)
    preprocessing: PreprocessingParams = Field(default_factory=PreprocessingParams)
    split: SplitParams = Field(default_factory=SplitParams)
    feedback: bool = True


Family = Literal["random_forest", "hist_gradient_boosting", "logistic", "svm"]
FAMILIES: tuple[Family, ...] = ("random_forest", "hist_gradient_boosting", "logistic", "svm")


def _default_grids() -> dict[Family, dict[str, list[Any]]]:
    return {
        "random_forest": {
            "n_estimators": [150],
            "max_depth": [None, 12],
            "min_samples_leaf": [1, 5],
        },
        "hist_gradient_boosting": {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
        "logistic": {"C": [0.1, 1.0, 10.0]},
        "svm": {"C": [0.5, 2.0]},
    }


class TrainParams(_Section):
    """The train stage: model families, their grids, search and cross-validation."""

    families: list[Family] = Field(default_factory=lambda: list(FAMILIES), min_length=1)
    grids: dict[Family, dict[str, list[Any]]] = Field(default_factory=_default_grids)
    search: Literal["grid", "random", "halving"] = "grid"
    n_iter: int = Field(8, ge=1)
    cv_folds: int = Field(5, ge=2, le=20)
    primary_metric: str = "auto"
    secondary_metrics: list[str] | None = None
    class_weight: Literal["balanced", "none"] = "balanced"
    n_jobs: int = -1
    svm_max_rows: int = Field(5000, ge=100)
    svm_components: int = Field(300, ge=10)
    learning_curve: bool = True
    backend: Literal["local", "dask"] = "local"
    dask_scheduler: str | None = None
    dask_workers: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _grids_name_known_families(self) -> TrainParams:
        for family, grid in self.grids.items():
            for name, values in grid.items():
                if not values:
                    raise ValueError(f"grids.{family}.{name} is empty; give at least one value")
        return self


class EvaluateParams(_Section):
    """The evaluate stage: held-out metrics, segments, threshold and the promotion gate."""

    min_delta: float = Field(0.005, ge=0.0)
    floors: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.6})
    segments: list[str] = Field(
        default_factory=lambda: ["contract_type", "plan_tier", "region", "payment_method"]
    )
    bootstrap: int = Field(200, ge=0, le=10_000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    threshold: Literal["auto"] | float = "auto"
    worst_errors: int = Field(20, ge=0)
    importance_rows: int = Field(2000, ge=100)

    @field_validator("threshold")
    @classmethod
    def _in_unit_interval(cls, v: str | float) -> str | float:
        if isinstance(v, float) and not 0.0 < v < 1.0:
            raise ValueError(f"a fixed threshold must be between 0 and 1, got {v}")
        return v


DRIFT_METHODS = Literal["ks", "wasserstein", "chisquare", "z", "jensenshannon", "psi"]


class AlertParams(_Section):
    """When the monitor stage raises an alert (null or false turns a rule off)."""

    dataset_drift: bool = True
    drift_share: Share | None = 0.3
    key_features: list[str] = Field(
        default_factory=lambda: ["monthly_charges", "tenure_months", "contract_type"]
    )
    prediction_drift: bool = True
    metric_drop: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.05})
    missing_jump: Share | None = 0.1
    concept_drift: bool = True
    webhook_timeout: float = Field(5.0, gt=0.0, le=120.0)
    webhook_retries: int = Field(3, ge=0, le=10)
    webhook_backoff: float = Field(0.5, ge=0.0, le=60.0)


class MonitorParams(_Section):
    """The monitor stage: what is compared with what, how drift is judged, and the alerts."""

    reference: str = "champion"
    current: str = "production"
    window_rows: int | None = Field(None, ge=1)
    since: str | None = None
    until: str | None = None
    labels: str | None = None
    label_key: list[str] | None = None
    columns: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    methods: dict[str, DRIFT_METHODS] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    drift_share: Share = 0.5
    windows: int = Field(5, ge=1, le=100)
    bootstrap: int = Field(200, ge=0, le=10_000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    evidently_report: bool = True
    evidently_max_rows: int = Field(20_000, ge=100)
    history_runs: int = Field(500, ge=1)
    retrain_on_alert: bool = False
    alerts: AlertParams = Field(default_factory=AlertParams)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_time(cls, v: Any) -> str | None:
        if hasattr(v, "isoformat"):  # YAML reads 2026-11-02 as a date
            v = v.isoformat()
        if v is not None:
            import pandas as pd

            try:
                pd.Timestamp(v)
            except ValueError:
                raise ValueError(
                    f"{v!r} is not a date or time; use ISO 8601, e.g. 2026-11-01T12:00"
                ) from None
        return None if v is None else str(v)


class MlflowParams(_Section):
    """Where runs and models are tracked; the registry's model name."""

    tracking_uri: str | None = None
    store_dir: str = "mlruns"
    experiment: str | None = None
    model_name: str | None = None


class RunParams(_Section):
    """How run_all runs the stages (not passed to the notebooks)."""

    cell_timeout: int = Field(1800, ge=0)
    history: int = Field(20, ge=1)


class Params(_Section):
    """Every parameter of a Quire run."""

    project: ProjectParams = Field(default_factory=ProjectParams)
    data: DataParams = Field(default_factory=DataParams)
    generator: GeneratorParams = Field(default_factory=GeneratorParams)
    ingest: IngestParams = Field(default_factory=IngestParams)
    train: TrainParams = Field(default_factory=TrainParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    monitor: MonitorParams = Field(default_factory=MonitorParams)
    mlflow: MlflowParams = Field(default_factory=MlflowParams)
    run: RunParams = Field(default_factory=RunParams)

    def digest(self) -> str:
        """Return a short stable hash of the resolved parameters."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def section_dicts(self, sections: Sequence[str]) -> dict[str, Any]:
        """Return the named sections as plain dicts, as notebooks receive them."""
        return {name: getattr(self, name).model_dump(mode="json") for name in sections}


# --------------------------------------------------------------------------------------------
# Loading and layering


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(
            f"{path}: params file not found; check the path given to --params", source=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: cannot read params file: {exc}", source=str(path)) from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ParamsError(
            f"{path}:{where}: invalid YAML ({problem}); fix the syntax at that place",
            source=str(path),
        ) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ParamsError(
            f"{path}: expected a mapping of sections (e.g. 'train:'), found a "
            f"{type(loaded).__name__}",
            source=str(path),
        )
    return loaded


def _merge(
    into: dict[str, Any],
    layer: Mapping[str, Any],
    source: str,
    provenance: dict[str, str],
    prefix: str = "",
) -> None:
    """Deep-merge ``layer`` into ``into`` in place, recording each leaf's source."""
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict) and value:
            _merge(into[key], value, source, provenance, f"{dotted}.")
        else:
            into[key] = _plain(value)
            provenance[dotted] = source


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _scalar(text: str) -> Any:
    """Parse an override value as YAML ("3" → 3, "[a, b]" → list); fall back to the string."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def _env_layers(env: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    layers = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            raise ParamsError(
                f"environment variable {name}: expected QUIRE__SECTION__KEY (double underscores "
                "between levels, e.g. QUIRE__TRAIN__CV_FOLDS=3)",
                source=f"env {name}",
            )
        layers.append((f"env {name}", _nest(".".join(parts), _scalar(env[name]))))
    return layers


def _override_layers(overrides: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    layers = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ParamsError(
                f"-p {item!r}: expected KEY=VALUE with a dotted key, "
                "e.g. -p ingest.split.test=0.25",
                source="-p",
            )
        layers.append((f"-p {key}", _nest(key, _scalar(value))))
    return layers


def folder_overrides(root: Path) -> list[str]:
    """Return ``-p`` overrides putting a project's data, reports, logs and MLflow store in ``root``.

    For benchmarks and tests that must never write into the project's own folders.
    """
    return [
        f"project.data_dir={root / 'data'}",
        f"project.reports_dir={root / 'reports'}",
        f"project.logs_dir={root / 'logs'}",
        f"mlflow.store_dir={root / 'mlruns'}",
    ]


def add_layer_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """Add the parameter layers every Quire command takes: ``--params FILE`` and ``-p KEY=VALUE``.

    Parameters
    ----------
    parser
        The command's parser (``args.params`` and ``args.overrides`` feed :func:`load_params`).
    example
        An override shown in the help, e.g. ``ingest.split.test=0.25``.
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


def load_params(
    presets: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    base: Path = BASE_PARAMS,
) -> Params:
    """Layer base, presets, environment and overrides, and validate the result.

    Parameters
    ----------
    presets
        YAML files applied in order on top of ``base``.
    overrides
        ``key.path=value`` strings; values are parsed as YAML scalars.
    env
        Environment to read ``QUIRE__*`` variables from; ``None`` reads none.
    base
        The file of defaults.

    Returns
    -------
    Params
        The validated parameters.

    Raises
    ------
    ParamsError
        On unreadable or invalid YAML, unknown keys or wrong types, naming the key and source.
    """
    merged: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    layers: list[tuple[str, Mapping[str, Any]]] = [(str(base), _read_yaml(Path(base)))]
    layers += [(str(p), _read_yaml(Path(p))) for p in presets]
    layers += _env_layers(env or {})
    layers += _override_layers(overrides)
    for source, layer in layers:
        _merge(merged, layer, source, provenance)
    return validate_params(merged, provenance)


def validate_params(raw: Mapping[str, Any], provenance: Mapping[str, str] | None = None) -> Params:
    """Validate a merged mapping into :class:`Params`, translating errors into ParamsError.

    Parameters
    ----------
    raw
        The merged parameter mapping.
    provenance
        Dotted key → where its value came from, used in error messages.

    Returns
    -------
    Params
        The validated parameters.
    """
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise _params_error(exc, provenance or {}) from None


def _source_of(dotted: str, provenance: Mapping[str, str]) -> str:
    key = dotted
    while key:
        if key in provenance:
            return provenance[key]
        key = key.rpartition(".")[0]
    return "defaults"


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        sub = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if sub is None:
            return None
        model = sub
    return model


_UNION_TAG = re.compile(r"^([A-Z]\w*Spec|[a-z-]+\[.*\])$")


def _params_error(exc: ValidationError, provenance: Mapping[str, str]) -> ParamsError:
    lines = []
    seen: set[str] = set()
    first_key = None
    first_source = None
    for err in exc.errors():
        # Union members show up as extra loc parts ("ColumnSpec", "literal[...]"); keep real keys
        # and report each key once.
        loc = [p for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p))]
        dotted = ".".join(str(p) for p in loc)
        if dotted in seen:
            continue
        seen.add(dotted)
        source = _source_of(dotted, provenance)
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; remove it or fix its spelling"
            parent_name = ".".join(str(p) for p in loc[:-1]) or "the top level"
            line = (
                f"{source}: unknown key '{dotted}'; allowed in {parent_name}: "
                f"{', '.join(allowed)}{hint}"
            )
        else:
            found = err.get("input")
            shown = repr(found)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            line = f"{source}: key '{dotted}': {err['msg']} (found {shown})"
        lines.append(line)
        if first_key is None:
            first_key, first_source = dotted, source
    return ParamsError(
        "invalid parameters:\n  " + "\n  ".join(lines), key=first_key, source=first_source
    )


def from_sections(**sections: Mapping[str, Any]) -> Params:
    """Build Params from the section dicts a notebook received (others keep their defaults).

    Parameters
    ----------
    **sections
        Section name → mapping, e.g. ``ingest={...}``.

    Returns
    -------
    Params
        The validated parameters.
    """
    provenance = {name: f"notebook parameter '{name}'" for name in sections}
    return validate_params({k: _plain(v) for k, v in sections.items()}, provenance)
