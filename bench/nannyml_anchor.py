"""NannyML 0.13.1 on a monitoring case: the anchor Quire's per-window analysis is checked against.

Runs inside NannyML's own venv (``bash bench/nannyml_env.sh`` builds it), never the project's:

    bench/.venv-nannyml/bin/python bench/nannyml_anchor.py export car_loan CASE_DIR
    bench/.venv-nannyml/bin/python bench/nannyml_anchor.py run CASE_DIR [--only drift ...]

A *case* is a folder holding ``reference.parquet``, ``analysis.parquet`` and ``case.json``, in the
layout Quire's monitor uses (``lib/core/contracts/predlog.py``): the features, the target (missing
where unlabelled), ``prediction`` and, for classifiers, ``proba_<class>``. ``case.json`` names the
task, target, classes (in ``proba_`` order), numeric and categorical features, the time column
and the chunking: ``{"size": N}`` (NannyML's ``chunk_size``, Quire's ``"N rows"``) or
``{"period": "M"}`` (``chunk_period``, Quire's period windows).

``export`` writes a case from a dataset shipped inside the nannyml package. ``run`` writes, under
``CASE_DIR/nannyml/``, one long Parquet file per analysis, one row per chunk (and column):

- ``univariate.parquet``: Wasserstein for numeric columns and the model's scores, Jensen-Shannon
  for categorical ones and the prediction, NannyML's default thresholds (reference chunks' mean +
  3 sd, upwards only);
- ``multivariate.parquet``: ``DataReconstructionDriftCalculator`` with its defaults;
- ``quality.parquet``: missing values (counts), unseen values (categorical), out of range (numeric);
- ``performance.parquet``: CBPE (classifiers) or DLE (regression), estimated and realized;
- ``timings.json``: seconds per analysis (fit + calculate).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # NannyML phones home on every call otherwise

import nannyml as nml  # noqa: E402

DATASETS = {
    "car_loan": "load_synthetic_car_loan_dataset",
    "car_loan_quality": "load_synthetic_car_loan_data_quality_dataset",
    "multiclass": "load_synthetic_multiclass_classification_dataset",
    "car_price": "load_synthetic_car_price_dataset",
}
TEXT = frozenset({"key", "period", "column", "method", "check", "metric"})  # the rest are numbers
META = ["key", "chunk_index", "start_index", "end_index", "start_date", "end_date", "period"]


def export(name: str, out: Path, chunk_size: int = 5000) -> None:
    """Write one of NannyML's own datasets as a case (reference, analysis with targets)."""
    reference, analysis, targets = getattr(nml, DATASETS[name])()
    analysis = analysis.merge(targets, on="id", how="left")
    if name in ("car_loan", "car_loan_quality"):
        target, task, classes = "repaid", "binary", [0, 1]
        frames = []
        for frame in (reference, analysis):
            frame = frame.rename(columns={"y_pred": "prediction", "y_pred_proba": "proba_1"})
            frame.insert(len(frame.columns), "proba_0", 1 - frame["proba_1"])
            frame = frame[[c for c in frame if c != "proba_1"] + ["proba_1"]]
            frames.append(frame)
        numeric = ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"]
        categorical = ["salary_range", "repaid_loan_on_prev_car", "size_of_downpayment"]
    elif name == "multiclass":
        target, task = "y_true", "multiclass"
        classes = ["highstreet_card", "prepaid_card", "upmarket_card"]
        renames = {f"y_pred_proba_{c}": f"proba_{c}" for c in classes} | {"y_pred": "prediction"}
        frames = [f.rename(columns=renames) for f in (reference, analysis)]
        numeric = ["app_behavioral_score", "requested_credit_limit", "credit_bureau_score",
                   "stated_income"]  # fmt: skip
        categorical = ["acq_channel", "app_channel", "is_customer"]
    else:
        target, task, classes = "y_true", "regression", []
        frames = [f.rename(columns={"y_pred": "prediction"}) for f in (reference, analysis)]
        numeric = ["car_age", "km_driven", "price_new", "accident_count", "door_count"]
        categorical = ["fuel", "transmission"]
    out.mkdir(parents=True, exist_ok=True)
    for side, frame in zip(("reference", "analysis"), frames, strict=True):
        frame = frame.drop(columns=["id"]).copy()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
        for c in categorical:
            frame[c] = frame[c].astype(str).where(frame[c].notna())
        frame.to_parquet(out / f"{side}.parquet", index=False)
    case = {
        "name": name, "task": task, "target": target, "classes": classes, "numeric": numeric,
        "categorical": categorical, "time_column": "timestamp", "chunk": {"size": chunk_size},
        "source": f"nannyml.{DATASETS[name]}()",
    }  # fmt: skip
    (out / "case.json").write_text(json.dumps(case, indent=2) + "\n")


def _chunking(case: dict[str, Any]) -> dict[str, Any]:
    chunk = case["chunk"]
    kw: dict[str, Any] = {"timestamp_column_name": case.get("time_column")}
    if "size" in chunk:
        kw["chunk_size"] = int(chunk["size"])
    else:
        kw["chunk_period"] = chunk["period"]
    return kw


def _flat(result: Any) -> pd.DataFrame:
    """One flat frame: chunk fields, then ``<column>|<method>|<field>`` or ``<column>|<field>``."""
    frame = result.to_df()
    frame.columns = ["|".join(str(x) for x in c if x != "") for c in frame.columns]
    return frame


def _chunks(frame: pd.DataFrame) -> pd.DataFrame:
    keep = {f"chunk|{m}": m for m in META}
    keep |= {f"chunk|chunk|{m}": m for m in META}
    return frame[[c for c in frame if c in keep]].rename(columns=keep)


def _explode(frame: pd.DataFrame, columns: list[str], fields: list[str]) -> pd.DataFrame:
    """Rows per chunk and (column, method) from a flat frame."""
    base = _chunks(frame)
    out = []
    for column in columns:
        prefix = f"{column}|"
        names = [c[len(prefix) :] for c in frame if c.startswith(prefix)]
        methods = sorted({n.rsplit("|", 1)[0] for n in names if "|" in n}) or [""]
        for method in methods:
            part = base.copy()
            part["column"] = column
            part["method"] = method
            stem = f"{prefix}{method}|" if method else prefix
            for f in fields:
                part[f] = frame[stem + f].to_numpy() if stem + f in frame else np.nan
            out.append(part)
    return pd.concat(out, ignore_index=True)


def univariate(case: dict[str, Any], ref: pd.DataFrame, ana: pd.DataFrame) -> pd.DataFrame:
    """Wasserstein (numeric, scores) and Jensen-Shannon (categorical, prediction) per chunk."""
    scores = [c for c in ref if c.startswith("proba_")]
    numeric = case["numeric"] + scores + (["prediction"] if case["task"] == "regression" else [])
    categorical = case["categorical"] + ([] if case["task"] == "regression" else ["prediction"])
    calc = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical,
        treat_as_categorical=categorical,
        continuous_methods=["wasserstein"],
        categorical_methods=["jensen_shannon"],
        **_chunking(case),
    )
    calc.fit(ref)
    flat = _flat(calc.calculate(ana))
    return _explode(flat, numeric + categorical,
                    ["value", "upper_threshold", "lower_threshold", "alert"])  # fmt: skip


def multivariate(case: dict[str, Any], ref: pd.DataFrame, ana: pd.DataFrame) -> pd.DataFrame:
    """Data reconstruction error (PCA) per chunk, NannyML's defaults."""
    calc = nml.DataReconstructionDriftCalculator(
        column_names=case["numeric"] + case["categorical"], **_chunking(case)
    )
    calc.fit(ref)
    flat = _flat(calc.calculate(ana))
    fields = ["value", "upper_threshold", "lower_threshold", "alert", "sampling_error"]
    return _explode(flat, ["reconstruction_error"], fields).drop(columns=["method"])


def quality(case: dict[str, Any], ref: pd.DataFrame, ana: pd.DataFrame) -> pd.DataFrame:
    """Missing (all features), unseen (categorical), out-of-range (numeric) counts per chunk."""
    out = []
    calcs = {
        "missing": nml.MissingValuesCalculator(
            column_names=case["numeric"] + case["categorical"], normalize=False, **_chunking(case)
        ),
        "unseen": nml.UnseenValuesCalculator(
            column_names=case["categorical"], normalize=False, **_chunking(case)
        ),
        "out_of_range": nml.NumericalRangeCalculator(
            column_names=case["numeric"], normalize=False, **_chunking(case)
        ),
    }
    for check, calc in calcs.items():
        calc.fit(ref)
        flat = _flat(calc.calculate(ana))
        columns = sorted({c.split("|")[0] for c in flat if not c.startswith("chunk|")})
        part = _explode(flat, columns, ["value", "upper_threshold", "lower_threshold", "alert"])
        part["check"] = check
        out.append(part.drop(columns=["method"]))
    return pd.concat(out, ignore_index=True)


CBPE_METRICS = {
    "binary": ["roc_auc", "f1", "precision", "recall", "accuracy"],
    "multiclass": ["roc_auc", "f1", "precision", "recall", "accuracy"],
}


def performance(case: dict[str, Any], ref: pd.DataFrame, ana: pd.DataFrame) -> pd.DataFrame:
    """CBPE (classifiers) or DLE (regression): estimated and realized per chunk."""
    task, target = case["task"], case["target"]
    if task == "regression":
        metrics = ["mae", "rmse"]
        calc: Any = nml.DLE(
            feature_column_names=case["numeric"] + case["categorical"],
            y_pred="prediction", y_true=target, metrics=metrics,
            tune_hyperparameters=False, **_chunking(case),
        )  # fmt: skip
    else:
        metrics = CBPE_METRICS[task]
        if task == "binary":
            proba: Any = f"proba_{case['classes'][-1]}"
            problem = "classification_binary"
        else:
            proba = {c: f"proba_{c}" for c in case["classes"]}
            problem = "classification_multiclass"
        calc = nml.CBPE(
            y_pred_proba=proba, y_pred="prediction", y_true=target, metrics=metrics,
            problem_type=problem, **_chunking(case),
        )  # fmt: skip
    calc.fit(ref)
    flat = _flat(calc.estimate(ana))
    fields = ["value", "realized", "sampling_error", "upper_confidence_boundary",
              "lower_confidence_boundary", "upper_threshold", "lower_threshold", "alert"]  # fmt: skip
    return (
        _explode(flat, metrics, fields)
        .drop(columns=["method"])
        .rename(columns={"column": "metric", "value": "estimated"})
    )


ANALYSES = {
    "drift": univariate,
    "multivariate": multivariate,
    "quality": quality,
    "performance": performance,
}
FILES = {
    "drift": "univariate",
    "multivariate": "multivariate",
    "quality": "quality",
    "performance": "performance",
}


def load_case(
    folder: Path, as_object: bool = True
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Read a case's description and both sides.

    ``as_object`` turns categorical columns into Python objects, NaN where missing, as NannyML's
    own datasets hold them; otherwise they stay as read (``category`` when written so).
    """
    case = json.loads((folder / "case.json").read_text())
    ref = pd.read_parquet(folder / "reference.parquet")
    ana = pd.read_parquet(folder / "analysis.parquet")
    if as_object:
        for c in case["categorical"]:
            for frame in (ref, ana):
                frame[c] = frame[c].astype(object).where(frame[c].notna(), np.nan)
    return case, ref, ana


def run(folder: Path, only: list[str]) -> dict[str, float]:
    """Run the analyses on a case; write their tables and timings under ``folder/nannyml``."""
    case, ref, ana = load_case(folder)
    out = folder / "nannyml"
    out.mkdir(exist_ok=True)
    timings = {}
    for name in only:
        t0 = time.perf_counter()
        frame = ANALYSES[name](case, ref, ana)
        timings[name] = time.perf_counter() - t0
        for c in frame.columns:  # NannyML leaves None in unset thresholds: NaN here
            if c == "alert":
                frame[c] = frame[c].astype(bool)
            elif frame[c].dtype == object and c not in TEXT:
                frame[c] = pd.to_numeric(frame[c], errors="coerce")
        frame.to_parquet(out / f"{FILES[name]}.parquet", index=False)
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write a case from a dataset shipped with nannyml")
    ex.add_argument("dataset", choices=sorted(DATASETS))
    ex.add_argument("folder", type=Path)
    ex.add_argument("--chunk-size", type=int, default=5000)
    rn = sub.add_parser("run", help="run NannyML's analyses on a case")
    rn.add_argument("folder", type=Path)
    rn.add_argument("--only", nargs="*", default=list(ANALYSES), choices=list(ANALYSES))
    args = parser.parse_args()
    if args.cmd == "export":
        export(args.dataset, args.folder, args.chunk_size)
    else:
        print(json.dumps({"nannyml": nml.__version__, **run(args.folder, args.only)}))


if __name__ == "__main__":
    main()
