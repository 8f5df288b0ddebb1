"""The typed sections of the parameters: one pydantic model per stage, plus the shared ones.

Each section forbids unknown keys and is frozen. :class:`lib.core.params.Params` gathers them;
``lib/core/params.py`` also reads, layers and validates the YAML files they are filled from.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ColumnKind = Literal["numeric", "categorical", "boolean", "datetime"]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


def _cleared(empty: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """Return a before-validator by which ``null`` clears a list or map setting."""

    def clear(value: Any) -> Any:
        return empty() if value is None else value

    return clear


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectParams(Section):
    """Shared keys: dataset name, seed and where outputs go."""

    name: str = Field("auto", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    seed: int = 42
    data_dir: str = "data"
    reports_dir: str = "reports"
    logs_dir: str = "logs"


class CsvParams(Section):
    """How CSV files are read."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"


class ColumnSpec(Section):
    """A declared column: its kind and, optionally, its allowed values."""

    kind: ColumnKind
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    format: str | None = None  # dates: a strftime format such as "%d/%m/%Y" (None: detected)


class DataParams(Section):
    """Where the data comes from and which column is the target."""

    source: str = "generator"
    target: str = ""
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    id_column: str | None = None
    date_column: str | None = None
    columns: dict[str, ColumnKind | ColumnSpec] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)  # file's column -> the project's name
    csv: CsvParams = Field(default_factory=CsvParams)

    _null_target = field_validator("target", mode="before")(lambda v: "" if v is None else v)
    _null_map = field_validator("columns", "rename", mode="before")(_cleared(dict))
    _null_list = field_validator("drop", mode="before")(_cleared(list))

    @field_validator("rename")
    @classmethod
    def _distinct_new_names(cls, rename: dict[str, str]) -> dict[str, str]:
        empty = [old for old, new in rename.items() if not str(new).strip()]
        if empty:
            raise ValueError(f"column {empty[0]!r} is renamed to an empty name; give it a name")
        seen: dict[str, str] = {}
        for old, new in rename.items():
            if new in seen:
                raise ValueError(
                    f"columns {seen[new]!r} and {old!r} are both renamed to {new!r}; "
                    "give each its own name"
                )
            seen[new] = old
        return rename


class ProductionParams(Section):
    """The generator's later "production" batch and the drift injected into it."""

    rows: int = Field(5000, ge=0, le=10_000_000)
    numeric_shift: float = 0.5
    shifted_columns: list[str] = Field(
        default_factory=lambda: ["monthly_charges", "avg_session_minutes"]
    )
    new_category: bool = True
    relation_change: bool = True


class GeneratorParams(Section):
    """The built-in customer-churn generator."""

    rows: int = Field(20_000, ge=50, le=10_000_000)
    format: Literal["parquet", "csv"] = "parquet"
    chunk_rows: int = Field(250_000, ge=1_000)
    churn_rate: Share = 0.2
    label_noise: Share = 0.03
    missing_rate: Share = 0.04
    outlier_rate: Share = 0.005
    production: ProductionParams = Field(default_factory=ProductionParams)


class SplitParams(Section):
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


class ChecksParams(Section):
    """Thresholds of the validation report's soft findings and of type inference."""

    max_missing_share: Share = 0.3
    max_duplicate_share: Share = 0.01
    numeric_min_share: Share = 0.9
    max_integer_codes: int = Field(10, ge=0)  # integer columns with at most this many distinct
    # values are categorical codes (0 turns the rule off); see lib/data/infer.py


class PreprocessingParams(Section):
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


class IngestParams(Section):
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


class TrainParams(Section):
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
    family_time_budget: float = Field(45.0, gt=0.0)

    @model_validator(mode="after")
    def _grids_name_known_families(self) -> TrainParams:
        for family, grid in self.grids.items():
            for name, values in grid.items():
                if not values:
                    raise ValueError(f"grids.{family}.{name} is empty; give at least one value")
        return self


class GateParams(Section):
    """The gate's second comparison: challenger and champion on the most recent labelled windows.

    The labelled served rows a retrain ingested (``ingest.feedback``) are cut into windows in
    serving order (or by ``time_column``); the test-split rows of the last ``recent_windows``
    windows (``all``: every one) are the recent regime. The rule is
    :func:`lib.model.gate.decide`'s.
    """

    # all: every served window; 0: no recent comparison (the mixed holdout decides)
    recent_windows: Literal["all"] | Annotated[int, Field(ge=0)] = "all"
    window: str = "4 windows"
    time_column: str | None = None
    min_rows: int = Field(150, ge=10)
    margin: float | None = Field(None, ge=0.0)  # None: evaluate.min_delta
    mixed_tolerance: float | None = Field(None, ge=0.0)  # None: the margin


class EvaluateParams(Section):
    """The evaluate stage: held-out metrics, segments, threshold and the promotion gate."""

    min_delta: float = Field(0.005, ge=0.0)
    floors: Literal["auto"] | dict[str, float] = "auto"
    segments: Literal["auto"] | list[str] = "auto"
    _null_floors = field_validator("floors", mode="before")(_cleared(dict))
    _null_segments = field_validator("segments", mode="before")(_cleared(list))
    bootstrap: int = Field(200, ge=0, le=10_000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    threshold: Literal["auto"] | float = "auto"
    worst_errors: int = Field(20, ge=0)
    importance_rows: int = Field(2000, ge=100)
    block_on_leakage: bool = True
    leakage_acknowledged: list[str] = Field(default_factory=list)
    leakage_threshold: float = Field(0.98, gt=0.5, le=1.0)
    gate: GateParams = Field(default_factory=GateParams)

    @field_validator("threshold")
    @classmethod
    def _in_unit_interval(cls, v: str | float) -> str | float:
        if isinstance(v, float) and not 0.0 < v < 1.0:
            raise ValueError(f"a fixed threshold must be between 0 and 1, got {v}")
        return v


DRIFT_METHODS = Literal["ks", "wasserstein", "chisquare", "z", "jensenshannon", "psi"]


class AlertParams(Section):
    """When the monitor stage raises an alert (null or false turns a rule off)."""

    dataset_drift: bool = True
    drift_share: Share | None = 0.3
    key_features: Literal["auto"] | list[str] = "auto"
    prediction_drift: bool = True
    metric_drop: Literal["auto"] | dict[str, float] = "auto"
    missing_jump: Share | None = 0.1
    concept_drift: bool = True
    # per window (issue #18): a current window's statistic left the reference windows' band
    window_drift: bool = True
    multivariate: bool = True
    estimated_performance: bool = True
    realized_performance: bool = True
    data_quality: bool = True
    webhook_timeout: float = Field(5.0, gt=0.0, le=120.0)
    webhook_retries: int = Field(3, ge=0, le=10)
    webhook_backoff: float = Field(0.5, ge=0.0, le=60.0)

    _null_keys = field_validator("key_features", mode="before")(_cleared(list))
    _null_drop = field_validator("metric_drop", mode="before")(_cleared(dict))


class LiveParams(Section):
    """Live drift in the server: a sliding window of served rows, exported on /metrics."""

    enabled: bool = True
    window_rows: int = Field(1000, ge=10, le=1_000_000)
    window_seconds: float | None = Field(None, gt=0)
    min_rows: int = Field(100, ge=1)
    every_seconds: float = Field(5.0, gt=0, le=3600)


class MonitorParams(Section):
    """The monitor stage: what is compared with what, how drift is judged, and the alerts."""

    reference: str = "champion"
    current: str = "auto"
    window_rows: int | None = Field(None, ge=1)
    since: str | None = None
    until: str | None = None
    labels: str | None = None
    label_key: list[str] | None = None
    columns: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    methods: dict[str, DRIFT_METHODS] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    _null_maps = field_validator("methods", "thresholds", mode="before")(_cleared(dict))
    _null_list = field_validator("exclude", mode="before")(_cleared(list))
    drift_share: Share = 0.5
    windows: int = Field(5, ge=1, le=100)
    window: str | int | None = None
    time_column: str | None = None
    sigmas: float = Field(3.0, gt=0)
    bootstrap: int = Field(200, ge=0, le=10_000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    evidently_report: bool = True
    evidently_max_rows: int = Field(20_000, ge=100)
    history_runs: int = Field(500, ge=1)
    retrain_on_alert: bool = False
    alerts: AlertParams = Field(default_factory=AlertParams)
    live: LiveParams = Field(default_factory=LiveParams)
    backend: Literal["memory", "stream", "dask"] = "memory"
    sample_rows: int = Field(200_000, ge=1_000)
    dask_scheduler: str | None = None
    dask_workers: int = Field(2, ge=1)
    threads: int | None = Field(None, ge=1)  # None: the cores, at most lib.core.parallel.AUTO_MAX

    @model_validator(mode="after")
    def _bounded(self) -> MonitorParams:
        if self.backend != "memory" and self.window_rows is not None:
            raise ValueError(
                f"monitor.window_rows ({self.window_rows}) reads the last rows in memory; with "
                f"monitor.backend: {self.backend} bound the log by time (monitor.since, "
                "monitor.until) instead, or set monitor.backend: memory"
            )
        return self

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | int | None) -> str | int | None:
        from lib.core.windowspec import parse_spec

        try:
            parse_spec(v)
        except Exception as exc:  # ParamsError: pydantic reports it under the key
            raise ValueError(str(exc).removeprefix("monitor.window: ")) from None
        return v

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


class MlflowParams(Section):
    """Where runs and models are tracked; the registry's model name."""

    tracking_uri: str | None = None
    store_dir: str = "mlruns"
    experiment: str | None = None
    model_name: str | None = None


class RunParams(Section):
    """How run_all runs the stages (not passed to the notebooks)."""

    cell_timeout: int = Field(1800, ge=0)
    history: int = Field(20, ge=1)
