"""The real-data corpus: public tables that ship inside pip packages, and the preset a newcomer writes.

Each :class:`Dataset` exports its table *exactly as the package ships it* (no cleaning: ids, free
text, dates, coded categories and missing values stay as they are; only the choice of table is
ours) and carries the shortest preset a new user would write for it: ``project.name``,
``data.source``, ``data.target`` and only what the table truly needs (``data.task`` where it
cannot be inferred, ``data.date_column`` + ``ingest.split.by_time`` for a time split).

Used by ``bench/real_data.py`` (all of them, table in ``docs/real-data.md``) and by
``tests/test_real_data.py`` (a small subset, slow-marked).
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Dataset:
    """One real table and the preset a new user would write for it.

    Attributes
    ----------
    name
        Short name; also ``project.name`` of its preset.
    origin
        Where the table ships (package and loader), for the docs.
    task
        The task a person would say the table poses (binary, multiclass, regression).
    covers
        What makes the table hard for a pipeline (ids, free text, missing values, ...).
    target
        The column to predict.
    export
        Writes the table into a folder and returns the file's path.
    preset_extra
        Sections of the preset beyond ``project.name``, ``data.source`` and ``data.target``.
    """

    name: str
    origin: str
    task: str
    covers: tuple[str, ...]
    target: str
    export: Callable[[Path], Path]
    preset_extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def preset(self, source: Path) -> dict[str, dict[str, Any]]:
        """Return the preset for the table exported at ``source``."""
        preset: dict[str, dict[str, Any]] = {
            "project": {"name": self.name},
            "data": {"source": str(source), "target": self.target},
        }
        for section, values in self.preset_extra.items():
            preset.setdefault(section, {}).update(values)
        return preset


# --------------------------------------------------------------------------------------------
# Exporters: the packaged table, as shipped


def _csv(frame: pd.DataFrame, folder: Path, name: str, *, index: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    if index is None:
        frame.to_csv(path, index=False)
    else:  # the packaged frame keeps its dates in the index: write them as a column
        frame.rename_axis(index).to_csv(path)
    return path


def _parquet(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def _copy(packaged: Path, folder: Path, name: str) -> Path:
    """Copy a CSV the package ships (gunzipped if it ships compressed) byte for byte."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    if packaged.suffix == ".gz":
        with gzip.open(packaged, "rb") as src, path.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        shutil.copyfile(packaged, path)
    return path


def _sklearn(loader: str, **kwargs: Any) -> Callable[[Path], Path]:
    def export(folder: Path) -> Path:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)(as_frame=True, **kwargs)
        return _csv(bunch.frame, folder, loader.removeprefix("load_"))

    return export


def _statsmodels(name: str, *, index: str | None = None) -> Callable[[Path], Path]:
    def export(folder: Path) -> Path:
        import statsmodels.datasets

        frame = getattr(statsmodels.datasets, name).load_pandas().data
        return _csv(frame, folder, name, index=index)

    return export


def _penguins(file: str) -> Callable[[Path], Path]:
    def export(folder: Path) -> Path:
        import palmerpenguins

        packaged = Path(palmerpenguins.__file__).parent / "data" / file
        return _copy(packaged, folder, Path(file).stem)

    return export


def _plotly(name: str, *, parquet: bool = False) -> Callable[[Path], Path]:
    def export(folder: Path) -> Path:
        import plotly

        packaged = Path(plotly.__file__).parent / "package_data" / "datasets" / f"{name}.csv.gz"
        if parquet:  # the same table as a Parquet file, as a user with Parquet data would bring
            return _parquet(pd.read_csv(packaged), folder, name)
        return _copy(packaged, folder, name)

    return export


# --------------------------------------------------------------------------------------------
# The corpus

CORPUS: tuple[Dataset, ...] = (
    Dataset(
        name="breast_cancer",
        origin="scikit-learn load_breast_cancer",
        task="binary",
        covers=("binary", "numeric only", "0/1 target"),
        target="target",
        export=_sklearn("load_breast_cancer"),
    ),
    Dataset(
        name="wine",
        origin="scikit-learn load_wine",
        task="multiclass",
        covers=("multiclass", "integer-coded classes", "178 rows"),
        target="target",
        export=_sklearn("load_wine"),
    ),
    Dataset(
        name="diabetes",
        origin="scikit-learn load_diabetes(scaled=False)",
        task="regression",
        covers=("regression", "coded category (sex 1/2)"),
        target="target",
        export=_sklearn("load_diabetes", scaled=False),
    ),
    Dataset(
        name="penguins",
        origin="palmerpenguins penguins.csv",
        task="multiclass",
        covers=("multiclass", "missing values", "categoricals", "coded year", "'NA' strings"),
        target="species",
        export=_penguins("penguins.csv"),
    ),
    Dataset(
        name="penguins_raw",
        origin="palmerpenguins penguins-raw.csv",
        task="multiclass",
        covers=(
            "multiclass (long labels)",
            "free text (Comments)",
            "ids (Individual ID, Sample Number)",
            "date (Date Egg)",
            "constant columns",
            "missing values",
            "column names with spaces and units",
        ),
        target="Species",
        export=_penguins("penguins-raw.csv"),
    ),
    Dataset(
        name="penguins_season",
        origin="palmerpenguins penguins-raw.csv",
        task="multiclass",
        covers=(
            "time split on a date",
            "classes absent from the validation and test folds",
            "free text",
            "ids",
        ),
        target="studyName",
        export=_penguins("penguins-raw.csv"),
        preset_extra={
            "data": {"date_column": "Date Egg"},
            "ingest": {"split": {"by_time": True}},
        },
    ),
    Dataset(
        name="anes96",
        origin="statsmodels anes96",
        task="binary",
        covers=("binary (0.0/1.0 floats)", "coded categories (PID, educ, income)"),
        target="vote",
        export=_statsmodels("anes96"),
    ),
    Dataset(
        name="fair",
        origin="statsmodels fair",
        task="regression",
        covers=("regression (zero-inflated)", "coded categories (occupation, religious)"),
        target="affairs",
        export=_statsmodels("fair"),
    ),
    Dataset(
        name="modechoice",
        origin="statsmodels modechoice",
        task="binary",
        covers=("binary", "id column (individual, 4 rows each)", "coded category (mode 1-4)"),
        target="choice",
        export=_statsmodels("modechoice"),
    ),
    Dataset(
        name="grunfeld",
        origin="statsmodels grunfeld",
        task="regression",
        covers=("regression", "panel: firm name x year", "220 rows"),
        target="invest",
        export=_statsmodels("grunfeld"),
    ),
    Dataset(
        name="co2",
        origin="statsmodels co2 (dates in the index)",
        task="regression",
        covers=("regression", "date column only", "missing target values"),
        target="co2",
        export=_statsmodels("co2", index="date"),
    ),
    Dataset(
        name="gapminder",
        origin="plotly gapminder (as Parquet)",
        task="regression",
        covers=(
            "regression",
            "high-cardinality category (142 countries)",
            "country codes (iso_alpha, iso_num)",
            "Parquet",
        ),
        target="lifeExp",
        export=_plotly("gapminder", parquet=True),
    ),
    Dataset(
        name="stocks",
        origin="plotly stocks",
        task="regression",
        covers=("regression", "ISO date column", "time split", "105 rows"),
        target="GOOG",
        export=_plotly("stocks"),
        preset_extra={
            "data": {"date_column": "date"},
            "ingest": {"split": {"by_time": True}},
        },
    ),
    Dataset(
        name="tips",
        origin="plotly tips",
        task="binary",
        covers=(
            "binary (Yes/No)",
            "text categories",
            "a column named 'time' (lunch or dinner), as the prediction log's own: the run without"
            " data.rename stops in seconds asking for it",
        ),
        target="smoker",
        export=_plotly("tips"),
        preset_extra={"data": {"rename": {"time": "meal_time"}}},
    ),
    Dataset(
        name="wind",
        origin="plotly wind",
        task="multiclass",
        covers=("multiclass (8 speed bands)", "16 wind directions", "128 rows"),
        target="strength",
        export=_plotly("wind"),
    ),
    Dataset(
        name="spector",
        origin="statsmodels spector",
        task="binary",
        covers=("binary (0.0/1.0 floats)", "32 rows: 5 in validation, 6 in test"),
        target="GRADE",
        export=_statsmodels("spector"),
    ),
    Dataset(
        name="randhie",
        origin="statsmodels randhie",
        task="regression",
        covers=("regression (counts)", "20,190 rows"),
        target="mdvis",
        export=_statsmodels("randhie"),
    ),
)

# The smallest binary, regression and multiclass tables: the slow test's subset.
SMOKE = ("breast_cancer", "diabetes", "wine")


def by_name(names: list[str] | tuple[str, ...] | None = None) -> list[Dataset]:
    """Return the corpus's datasets named in ``names`` (all when None), in corpus order.

    Raises
    ------
    KeyError
        When a name is not in the corpus, listing the names that are.
    """
    if not names:
        return list(CORPUS)
    known = {d.name: d for d in CORPUS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"not in the corpus: {unknown}; choose from {', '.join(known)}")
    return [d for d in CORPUS if d.name in names]
