"""The compiled inference path gives the pipeline's numbers bit for bit, or is not used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures

from lib.core.params import load_params
from lib.data.ingest import load_processed, run_ingest
from lib.data.preprocess import DateFeatures
from lib.serving.contract import check_rows, probe_rows
from lib.serving.fastpath import Unsupported, compile_pipeline
from lib.serving.predictor import LoadedModel
from tests.conftest import dirs_overrides


@pytest.fixture(scope="module", params=["onehot-standard", "ordinal-robust"])
def processed(request, tmp_path_factory):
    encode, scale = request.param.split("-")
    root = tmp_path_factory.mktemp("fast")
    params = load_params(
        overrides=[
            *dirs_overrides(root),
            "generator.rows=1500",
            f"ingest.preprocessing.encode={encode}",
            f"ingest.preprocessing.scale={scale}",
            "ingest.preprocessing.min_frequency=0.05",  # some categories grouped as infrequent
        ]
    )
    run_ingest(params)
    return load_processed(params)


def fitted(processed, estimator):
    X, y = processed.xy("train")
    pipeline = Pipeline([("pre", clone(processed.preprocessor)), ("model", estimator)])
    return pipeline.fit(X, y if is_classifier(estimator) else X["age"].fillna(40))


def random_rows(processed, n=400, seed=1):
    """Probe rows plus real test rows with values knocked out at random."""
    X, _ = processed.xy("test")
    frame = X.head(n).astype(object)
    rng = np.random.default_rng(seed)
    frame = frame.mask(pd.DataFrame(rng.random(frame.shape) < 0.1, index=frame.index), None)
    frame["signup_date"] = [None if v is None else str(v)[:10] for v in frame["signup_date"]]
    for c in ("is_senior", "has_partner", "paperless_billing", "auto_pay"):
        frame[c] = [None if v is None or pd.isna(v) else bool(v) for v in frame[c]]
    real = [{k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v)
             for k, v in r.items()} for r in frame.to_dict("records")]  # fmt: skip
    return probe_rows(processed.schema) + real


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingClassifier(max_iter=30, random_state=0),
        LogisticRegression(max_iter=500),
        HistGradientBoostingRegressor(max_iter=30, random_state=0),
    ],
    ids=["hgb", "logistic", "hgb-regressor"],
)
def test_fast_path_equals_the_pipeline_bit_for_bit(processed, estimator):
    pipeline = fitted(processed, estimator)
    fast = compile_pipeline(pipeline)
    assert fast is not None
    batch = check_rows(random_rows(processed), processed.schema)
    frame = batch.frame()
    assert np.array_equal(fast.transform(batch.columns), pipeline[:-1].transform(frame))
    method = "predict_proba" if hasattr(pipeline, "predict_proba") else "predict"
    ours = getattr(fast.estimator, method)(fast.transform(batch.columns))
    assert np.array_equal(ours, getattr(pipeline, method)(frame))
    assert fast.verify(pipeline, batch.columns, frame)
    for i in (0, 7, 300):  # one row at a time, as the server mostly sees them
        row = {k: v[i : i + 1] for k, v in batch.columns.items()}
        assert np.array_equal(fast.transform(row), pipeline[:-1].transform(frame.iloc[i : i + 1]))


def test_verify_catches_a_difference(processed):
    pipeline = fitted(processed, LogisticRegression(max_iter=500))
    fast = compile_pipeline(pipeline)
    batch = check_rows(probe_rows(processed.schema), processed.schema)
    scaler = pipeline[0].named_transformers_["numeric"][-1]
    attribute = "mean_" if hasattr(scaler, "mean_") else "center_"
    setattr(scaler, attribute, getattr(scaler, attribute) + 1e-9)  # the pipeline drifts away
    assert not fast.verify(pipeline, batch.columns, batch.frame())


def test_unsupported_steps_compile_to_none(processed):
    X, y = processed.xy("train")
    numeric = processed.schema.names("numeric")
    odd = Pipeline(
        [
            ("pre", ColumnTransformer([("poly", PolynomialFeatures(), numeric)])),
            ("model", LogisticRegression(max_iter=200)),
        ]
    ).fit(X.fillna(0), y)
    assert compile_pipeline(odd) is None
    assert compile_pipeline(LogisticRegression()) is None


def test_a_value_the_tables_cannot_place_falls_back_to_the_pipeline(processed):
    pipeline = fitted(processed, HistGradientBoostingClassifier(max_iter=20, random_state=0))
    fast = compile_pipeline(pipeline)
    batch = check_rows(probe_rows(processed.schema, n=5), processed.schema)
    column = next(iter(processed.schema.names("categorical")))
    batch.columns[column] = batch.columns[column].copy()
    batch.columns[column][0] = 3.5  # not a string: the encoder tables cannot place it
    with pytest.raises(Unsupported):
        fast.transform(batch.columns)
    model = LoadedModel(pipeline, processed.schema, "test", fast=fast)
    _, proba = model.predict(batch)
    assert np.array_equal(proba, model._in_schema_order(pipeline.predict_proba(batch.frame())))


def test_date_features_match_the_pandas_definition():
    rng = np.random.default_rng(0)
    stamps = rng.integers(pd.Timestamp("1700-01-01").value, pd.Timestamp("2260-01-01").value, 5000)
    dates = pd.Series(pd.to_datetime(stamps))
    dates[::7] = pd.NaT
    frame = pd.DataFrame({"a": dates, "b": ["2024-01-31", None, "nonsense", "1969-12-31"] * 1250})
    expected = []
    for name in frame.columns:
        d = pd.to_datetime(frame[name], errors="coerce")
        days = (d - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        expected += [days, d.dt.month, d.dt.dayofweek]
    ours = DateFeatures().fit(frame).transform(frame)
    assert np.array_equal(
        ours, np.column_stack([np.asarray(p, dtype=float) for p in expected]), equal_nan=True
    )
