"""Built-in sample data: a realistic, seeded customer-churn table, and a drifted production batch.

The table has numeric, categorical, boolean and date features, missing values, outliers, class
imbalance and label noise. Rows are generated and written in chunks, so 10 million rows never sit
in memory twice; the same parameters always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib.core.atomic import atomic_path
from lib.core.logs import get_logger
from lib.core.param_sections import GeneratorParams

log = get_logger(__name__)

TARGET = "churned"
REGIONS = ["north", "south", "east", "west", "central"]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["credit_card", "bank_transfer", "electronic_check", "mailed_check"]
NEW_PAYMENT = "crypto_wallet"
PLANS = ["basic", "standard", "premium"]
_PLAN_PRICE = np.array([35.0, 65.0, 95.0])
_START = np.datetime64("2018-01-01")
_REFERENCE_END = np.datetime64("2025-01-01")
_PRODUCTION_END = np.datetime64("2025-07-01")
_CALIBRATION_ROWS = 20_000


@dataclass(frozen=True)
class _Regime:
    """How one batch is drawn: the reference regime, or production with drift."""

    production: bool
    shift: dict[str, float]
    new_category: bool
    relation_change: bool


def _features(rng: np.random.Generator, n: int, regime: _Regime) -> pd.DataFrame:
    """Draw the feature columns (no label, no missing values or outliers yet)."""
    end = _PRODUCTION_END if regime.production else _REFERENCE_END
    span = int((end - _START) / np.timedelta64(1, "D"))
    signup = _START + rng.integers(0, span, n).astype("timedelta64[D]")
    tenure = ((end - signup) / np.timedelta64(1, "D") / 30.44).astype(np.int64)
    plan = rng.choice(3, n, p=[0.45, 0.35, 0.20])
    age = np.clip(rng.normal(45, 15, n), 18, 90).round()
    payment_p = [0.35, 0.25, 0.30, 0.10]
    payment = np.array(PAYMENTS, dtype=object)[rng.choice(4, n, p=payment_p)]
    if regime.new_category:
        payment[rng.random(n) < 0.12] = NEW_PAYMENT
    monthly = _PLAN_PRICE[plan] + rng.normal(0, 8, n)
    frame = pd.DataFrame(
        {
            "customer_id": [f"{'P' if regime.production else 'C'}{i:08d}" for i in range(n)],
            "signup_date": signup.astype("datetime64[ns]"),
            "age": age,
            "region": np.array(REGIONS, dtype=object)[rng.choice(5, n)],
            "contract_type": np.array(CONTRACTS, dtype=object)[
                rng.choice(3, n, p=[0.55, 0.25, 0.20])
            ],
            "payment_method": payment,
            "plan_tier": np.array(PLANS, dtype=object)[plan],
            "tenure_months": tenure,
            "monthly_charges": monthly.round(2),
            "total_charges": (monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.05, n)).round(2),
            "avg_session_minutes": rng.lognormal(3.0, 0.6, n).round(1),
            "data_usage_gb": rng.gamma(2.0, 6.0, n).round(2),
            "support_calls": rng.poisson(1.2, n),
            "num_dependents": rng.choice(5, n, p=[0.45, 0.2, 0.2, 0.1, 0.05]),
            "satisfaction_score": rng.choice(5, n, p=[0.08, 0.15, 0.3, 0.3, 0.17]) + 1,
            "is_senior": (age >= 65) | (rng.random(n) < 0.02),
            "has_partner": rng.random(n) < 0.48,
            "paperless_billing": rng.random(n) < 0.6,
            "auto_pay": rng.random(n) < 0.4,
        }
    )
    for column, shift in regime.shift.items():
        frame[column] = (frame[column] + shift).round(2)
    return frame


def _logit(frame: pd.DataFrame, regime: _Regime) -> np.ndarray:
    """Churn log-odds before the intercept; production may change the relation."""
    contract = frame["contract_type"].map(
        {"month-to-month": 1.1, "one-year": -0.3, "two-year": -1.3}
    )
    contract_weight = 2.0 if regime.relation_change else 1.0
    calls_weight = 0.0 if regime.relation_change else 0.35
    return np.asarray(
        contract_weight * contract.to_numpy(dtype=float)
        + calls_weight * frame["support_calls"].to_numpy()
        - 0.025 * frame["tenure_months"].to_numpy()
        - 0.45 * (frame["satisfaction_score"].to_numpy() - 3)
        + 0.5 * (frame["payment_method"] == "electronic_check").to_numpy()
        + 0.012 * (frame["monthly_charges"].to_numpy() - 60)
        - 0.3 * frame["auto_pay"].to_numpy()
        + 0.2 * frame["paperless_billing"].to_numpy(),
        dtype=float,
    )


def _calibrate(seed: int, churn_rate: float) -> tuple[float, dict[str, float]]:
    """Intercept giving ``churn_rate``, and each numeric column's std (for drift shifts)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 - 1,)))
    regime = _Regime(False, {}, False, False)
    frame = _features(rng, _CALIBRATION_ROWS, regime)
    z = _logit(frame, regime)
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(z + mid)))).mean() < churn_rate:
            lo = mid
        else:
            hi = mid
    stds = {c: float(frame[c].std()) for c in frame.select_dtypes("number").columns}
    return (lo + hi) / 2, stds


def _finish(
    rng: np.random.Generator,
    frame: pd.DataFrame,
    intercept: float,
    regime: _Regime,
    p: GeneratorParams,
) -> pd.DataFrame:
    """Add the noisy label, then missing values and outliers (a new frame)."""
    n = len(frame)
    prob = 1 / (1 + np.exp(-(_logit(frame, regime) + intercept)))
    label = rng.random(n) < prob
    label ^= rng.random(n) < p.label_noise
    out = frame.assign(**{TARGET: label.astype(np.int64)})
    for column in ("age", "total_charges", "avg_session_minutes", "satisfaction_score"):
        out[column] = out[column].astype(float).mask(rng.random(n) < p.missing_rate)
    for column in ("region", "payment_method"):
        out[column] = out[column].mask(rng.random(n) < p.missing_rate / 2)
    out["paperless_billing"] = (
        out["paperless_billing"].astype(object).mask(rng.random(n) < p.missing_rate / 2)
    )
    for column, factor in (("monthly_charges", 8.0), ("data_usage_gb", 15.0)):
        hit = rng.random(n) < p.outlier_rate
        out.loc[hit, column] = (out.loc[hit, column] * factor).round(2)
    return out


def iter_chunks(
    p: GeneratorParams, seed: int, *, production: bool = False
) -> Iterator[pd.DataFrame]:
    """Yield the table in chunks of ``p.chunk_rows`` rows.

    Parameters
    ----------
    p
        Generator parameters.
    seed
        The project seed; each chunk derives its own stream from it.
    production
        Draw the drifted production batch instead of the reference table.

    Yields
    ------
    pandas.DataFrame
        The next chunk, with ``customer_id`` unique across chunks.
    """
    intercept, stds = _calibrate(seed, p.churn_rate)
    prod = p.production
    regime = _Regime(
        production=production,
        shift={c: prod.numeric_shift * stds[c] for c in prod.shifted_columns} if production else {},
        new_category=production and prod.new_category,
        relation_change=production and prod.relation_change,
    )
    total = prod.rows if production else p.rows
    stream = 1 if production else 0
    for index, start in enumerate(range(0, total, p.chunk_rows)):
        n = min(p.chunk_rows, total - start)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))
        chunk = _finish(rng, _features(rng, n, regime), intercept, regime, p)
        prefix = "P" if production else "C"
        chunk["customer_id"] = [f"{prefix}{i:08d}" for i in range(start, start + n)]
        yield chunk


def _unknown_shift_columns(p: GeneratorParams) -> list[str]:
    known = {"age", "tenure_months", "monthly_charges", "total_charges", "avg_session_minutes"}
    known |= {"data_usage_gb", "support_calls", "num_dependents", "satisfaction_score"}
    return [c for c in p.production.shifted_columns if c not in known]


def raw_path(p: GeneratorParams, seed: int, raw_dir: Path, *, production: bool = False) -> Path:
    """Return the file the generator writes for these parameters (named by their digest)."""
    blob = json.dumps({"seed": seed, **p.model_dump(mode="json")}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    kind = "churn-production" if production else "churn"
    return raw_dir / f"{kind}-{digest}.{p.format}"


def generate(p: GeneratorParams, seed: int, raw_dir: Path, *, production: bool = False) -> Path:
    """Write the table to ``raw_dir`` unless the same parameters already wrote it.

    Raw data is immutable: an existing file is reused, never rewritten. The file appears
    atomically, so a crash leaves no partial file under the final name.

    Parameters
    ----------
    p
        Generator parameters.
    seed
        The project seed.
    raw_dir
        Folder for raw files.
    production
        Write the drifted production batch instead of the reference table.

    Returns
    -------
    Path
        The raw file.
    """
    from lib.core.errors import ParamsError

    bad = _unknown_shift_columns(p)
    if bad:
        raise ParamsError(
            f"generator.production.shifted_columns: {bad} are not numeric generator columns; "
            "use age, tenure_months, monthly_charges, total_charges, avg_session_minutes, "
            "data_usage_gb, support_calls, num_dependents or satisfaction_score",
            key="generator.production.shifted_columns",
        )
    path = raw_path(p, seed, raw_dir, production=production)
    if path.exists():
        log.info("generator_reuse", path=str(path))
        return path
    raw_dir.mkdir(parents=True, exist_ok=True)
    rows = 0
    with atomic_path(path) as tmp:
        if p.format == "parquet":
            writer: pq.ParquetWriter | None = None
            try:
                for chunk in iter_chunks(p, seed, production=production):
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                    rows += len(chunk)
            finally:
                if writer is not None:
                    writer.close()
        else:
            for index, chunk in enumerate(iter_chunks(p, seed, production=production)):
                chunk.to_csv(tmp, mode="w" if index == 0 else "a", header=index == 0, index=False)
                rows += len(chunk)
    log.info("generated", path=str(path), rows=rows, production=production)
    return path
