from __future__ import annotations

import pandas as pd
import pytest

from lib.core.errors import ParamsError
from lib.core.param_sections import GeneratorParams
from lib.data.generator import NEW_PAYMENT, TARGET, generate, iter_chunks


@pytest.fixture
def gen() -> GeneratorParams:
    return GeneratorParams(rows=3000, chunk_rows=1000)


def test_same_params_give_identical_bytes(tmp_path, gen):
    a = generate(gen, 7, tmp_path / "a")
    b = generate(gen, 7, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    c = generate(gen, 8, tmp_path / "c")
    assert not pd.read_parquet(c).equals(pd.read_parquet(a))


def test_realistic_table(tmp_path, gen):
    frame = pd.read_parquet(generate(gen, 1, tmp_path))
    assert len(frame) == 3000
    assert frame["customer_id"].is_unique
    features = frame.drop(columns=["customer_id", TARGET])
    assert features.shape[1] >= 12
    kinds = {str(t) for t in features.dtypes}
    assert {"float64", "int64", "object", "bool", "datetime64[ns]"} <= kinds
    assert features.isna().any().sum() >= 4  # missing values in several columns
    rate = frame[TARGET].mean()
    assert 0.1 < rate < 0.35  # imbalanced
    charges = frame["monthly_charges"]
    assert charges.max() > charges.quantile(0.99) * 3  # outliers exist


def test_label_noise_and_churn_rate_follow_params(tmp_path):
    low = pd.read_parquet(generate(GeneratorParams(rows=4000, churn_rate=0.1), 1, tmp_path))
    high = pd.read_parquet(generate(GeneratorParams(rows=4000, churn_rate=0.4), 1, tmp_path))
    assert low[TARGET].mean() < 0.17 < 0.33 < high[TARGET].mean()


def test_production_batch_has_the_configured_drift(tmp_path, gen):
    ref = pd.read_parquet(generate(gen, 3, tmp_path))
    prod = pd.read_parquet(generate(gen, 3, tmp_path, production=True))
    assert len(prod) == gen.production.rows
    assert NEW_PAYMENT in set(prod["payment_method"]) and NEW_PAYMENT not in set(
        ref["payment_method"]
    )
    for column in gen.production.shifted_columns:
        shift = (prod[column].median() - ref[column].median()) / ref[column].std()
        assert shift > 0.3, column
    assert prod["signup_date"].max() > ref["signup_date"].max()


def test_relation_change_alters_label_dependence():
    gen = GeneratorParams(rows=20000, chunk_rows=20000, label_noise=0.0)
    ref = next(iter_chunks(gen, 5))
    prod = next(
        iter_chunks(
            gen.model_copy(
                update={"production": gen.production.model_copy(update={"rows": 20000})}
            ),
            5,
            production=True,
        )
    )
    corr_ref = ref["support_calls"].corr(ref[TARGET])
    corr_prod = prod["support_calls"].corr(prod[TARGET])
    assert corr_ref > 0.1 and abs(corr_prod) < 0.05


def test_raw_file_is_reused_not_rewritten(tmp_path, gen):
    path = generate(gen, 1, tmp_path)
    before = path.stat().st_mtime_ns
    assert generate(gen, 1, tmp_path) == path
    assert path.stat().st_mtime_ns == before


def test_csv_format_and_chunking_write_all_rows(tmp_path):
    gen = GeneratorParams(rows=2500, chunk_rows=1000, format="csv")
    frame = pd.read_csv(generate(gen, 1, tmp_path))
    assert len(frame) == 2500
    assert frame["customer_id"].is_unique


def test_unknown_shift_column_is_a_params_error(tmp_path):
    gen = GeneratorParams(production={"shifted_columns": ["region"]})
    with pytest.raises(ParamsError, match=r"shifted_columns: \['region'\] are not numeric"):
        generate(gen, 1, tmp_path)
