"""Typed, layered parameters: :class:`Params` and how it is read, layered and validated.

Layers, later ones win: ``params/base.yaml`` → preset files (``--params``) → environment variables
(``QUIRE__SECTION__KEY=value``) → command-line overrides (``-p section.key=value``). The merged
mapping is validated into :class:`Params` before any notebook starts; every error names the key,
where its value came from and what is allowed. The sections themselves (one per stage) are in
:mod:`lib.core.param_sections`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, model_validator

from lib.core.errors import ParamsError
from lib.core.param_sections import (
    DataParams,
    EvaluateParams,
    GeneratorParams,
    IngestParams,
    MlflowParams,
    MonitorParams,
    ProjectParams,
    RunParams,
    Section,
    TrainParams,
)
from lib.core.paths import BASE_PARAMS, GENERATOR_PARAMS

ENV_PREFIX = "QUIRE__"
# Maps a layer replaces rather than deep-merges: a preset's `floors: {f1_macro: 0.8}` means
# exactly that floor, not that floor plus the defaults' (``null`` clears any of them).
REPLACED = frozenset(
    {
        "data.columns",
        "evaluate.floors",
        "monitor.methods",
        "monitor.thresholds",
        "monitor.alerts.metric_drop",
    }
)
BUILTIN_SOURCE = "generator"


class Params(Section):
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
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, raw: Any) -> Any:
        """Fill what the data source implies.

        For the built-in data, its settings (``params/builtin/generator.yaml``) where ``raw``
        sets none (load_params layers that file itself, so this matters to Params built in
        code); ``project.name: auto``: 'churn' for the built-in data, else the source's name.
        """
        if not isinstance(raw, Mapping):
            return raw
        data = raw.get("data")
        source = str(
            data.get("source", BUILTIN_SOURCE) if isinstance(data, Mapping) else BUILTIN_SOURCE
        )
        filled = _fill_missing(raw, builtin_settings()) if source == BUILTIN_SOURCE else dict(raw)
        project = filled.get("project") or {}
        if isinstance(project, Mapping) and project.get("name", "auto") == "auto":
            filled["project"] = {**project, "name": derived_name(source)}
        return filled

    @model_validator(mode="after")
    def _target_named(self) -> Params:
        if not self.data.target:
            raise ParamsError(
                f"data.target is not set for data.source {self.data.source!r}: name the column "
                "to predict in your preset, e.g. 'data: {target: price}', or -p data.target=price",
                key="data.target",
            )
        return self

    def monitor_current(self) -> str:
        """Return ``monitor.current`` resolved.

        ``auto`` is the generator's production batch for the built-in data, else the server's
        prediction log.
        """
        current = self.monitor.current
        if current != "auto":
            return current
        return "production" if self.data.source == BUILTIN_SOURCE else "log"

    def source_of(self, key: str) -> str:
        """Return where the value of dotted ``key`` came from (a file, variable or ``-p``).

        Keys no layer set are the code's defaults; parameters rebuilt in a notebook from its
        sections say so.
        """
        return _source_of(key, self._sources) if self._sources else "the notebook's parameters"

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


@functools.cache
def builtin_settings(path: Path = GENERATOR_PARAMS) -> dict[str, Any]:
    """Return the built-in data's own settings (they name its columns)."""
    return _read_yaml(path)


def _fill_missing(raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``raw`` with the keys of ``defaults`` it does not have (deeply) added."""
    out = dict(raw)
    for key, value in defaults.items():
        if key not in out:
            out[key] = _plain(value)
        elif isinstance(value, Mapping) and isinstance(out[key], Mapping):
            out[key] = _fill_missing(out[key], value)
    return out


def derived_name(source: str) -> str:
    """Return the project name ``auto`` means for ``source`` (``data/raw/sales-*.csv`` → sales)."""
    if source == BUILTIN_SOURCE:
        return "churn"
    stem = Path(source).name.split(".")[0]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._")
    return cleaned or "data"


def _merge(
    into: dict[str, Any],
    layer: Mapping[str, Any],
    source: str,
    provenance: dict[str, str],
    prefix: str = "",
) -> None:
    """Deep-merge ``layer`` into ``into`` in place, recording each leaf's source.

    The maps in :data:`REPLACED` are replaced whole, unless the layer is one ``-p`` or variable
    setting a key inside one (``-p evaluate.floors.accuracy=0.5`` adds that floor).
    """
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if dotted in REPLACED and not _one_key_inside(source, dotted):
            for known in [k for k in provenance if k.startswith(f"{dotted}.")]:
                del provenance[known]
            into[key] = _plain(value)
            provenance[dotted] = source
        elif isinstance(value, Mapping) and isinstance(into.get(key), dict) and value:
            _merge(into[key], value, source, provenance, f"{dotted}.")
        else:
            into[key] = _plain(value)
            provenance[dotted] = source


def _one_key_inside(source: str, dotted: str) -> bool:
    """Whether ``source`` is a ``-p``/environment layer setting a key below ``dotted``."""
    if source.startswith("-p "):
        named = source[3:]
    elif source.startswith(f"env {ENV_PREFIX}"):
        named = source[4 + len(ENV_PREFIX) :].lower().replace("__", ".")
    else:
        return False
    return named.startswith(f"{dotted}.")


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


def load_params(
    presets: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    base: Path = BASE_PARAMS,
    builtin_params: Path = GENERATOR_PARAMS,
) -> Params:
    """Layer base, presets, environment and overrides, and validate the result.

    When the result's ``data.source`` is the built-in generator, ``builtin_params`` (the
    settings naming the generator's columns) is layered right after ``base``.

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
    builtin_params
        The built-in data's settings.

    Returns
    -------
    Params
        The validated parameters.

    Raises
    ------
    ParamsError
        On unreadable or invalid YAML, unknown keys or wrong types, naming the key and source.
    """
    layers: list[tuple[str, Mapping[str, Any]]] = [(_shown(base), _read_yaml(Path(base)))]
    layers += [(str(p), _read_yaml(Path(p))) for p in presets]
    layers += _env_layers(env or {})
    layers += _override_layers(overrides)
    merged, provenance = _layered(layers)
    if str(merged.get("data", {}).get("source", BUILTIN_SOURCE)) == BUILTIN_SOURCE:
        builtin = (
            f"{_shown(builtin_params)} (the built-in data's settings, layered because "
            f"data.source is '{BUILTIN_SOURCE}')"
        )
        merged, provenance = _layered(
            [layers[0], (builtin, _read_yaml(builtin_params)), *layers[1:]]
        )
    params = validate_params(merged, provenance)
    params._sources = provenance
    return params


def _shown(path: Path) -> str:
    """Return a params file as messages name it: relative to the project when inside it."""
    try:
        return str(Path(path).resolve().relative_to(BASE_PARAMS.parent.parent))
    except ValueError:
        return str(path)


def _layered(
    layers: Sequence[tuple[str, Mapping[str, Any]]],
) -> tuple[dict[str, Any], dict[str, str]]:
    merged: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    for source, layer in layers:
        _merge(merged, layer, source, provenance)
    return merged, provenance


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
