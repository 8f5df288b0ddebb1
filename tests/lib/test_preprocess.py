from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from lib.core.param_sections import ChecksParams, DataParams, PreprocessingParams
from lib.data.preprocess import DateFeatures, QuantileClipper, build_preprocessor
from lib.data.validate import conform, infer_schema
from tests.conftest import small_frame

PATH = Path("fixture.csv")


@pytest.fixture
def table():
    frame = small_frame(90)
    frame.loc[3, "charges"] = np.nan
    frame.loc[4, "plan"] = np.nan
    data = DataParams(target="label", id_column=None, date_column="joined")
    schema = infer_schema(frame, data, ChecksParams(), PATH)
    conformed, _ = conform(frame, schema, PATH)
    return schema, conformed


def test_preprocessor_is_unfitted_and_covers_every_kind(table):
    schema, frame = table
    pre = build_preprocessor(schema, PreprocessingParams())
    assert not hasattr(pre, "transformers_")
    assert {name for name, _, _ in pre.transformers} == {
        "numeric",
        "boolean",
        "categorical",
        "dates",
    }
    out = clone(pre).set_output(transform="pandas").fit_transform(frame[schema.names()])
    assert not out.isna().any().any()
    assert "categorical__plan_basic" in out.columns
    assert {"dates__joined_days", "dates__joined_month", "dates__joined_weekday"} <= set(
        out.columns
    )
    assert abs(out["numeric__charges"].mean()) < 1e-9  # standard-scaled


def test_unknown_category_at_predict_time_does_not_fail(table):
    schema, frame = table
    pre = build_preprocessor(schema, PreprocessingParams()).fit(frame[schema.names()])
    row = frame[schema.names()].head(1).assign(plan="never-seen")
    assert pre.transform(row).shape[0] == 1


def test_ordinal_and_no_scaling_options(table):
    schema, frame = table
    params = PreprocessingParams(encode="ordinal", scale="none", clip_quantiles=None)
    out = (
        build_preprocessor(schema, params)
        .set_output(transform="pandas")
        .fit_transform(frame[schema.names()])
    )
    assert "categorical__plan" in out.columns
    assert out["numeric__tenure"].max() == frame["tenure"].max()


def test_quantile_clipper_learns_bounds_on_fit_only():
    train = np.arange(101, dtype=float).reshape(-1, 1)
    clip = QuantileClipper(0.1, 0.9).fit(train)
    assert clip.lower_[0] == pytest.approx(10) and clip.upper_[0] == pytest.approx(90)
    assert clip.transform(np.array([[-1000.0], [50.0], [1000.0]])).ravel().tolist() == [10, 50, 90]


def test_date_features():
    frame = pd.DataFrame({"d": pd.to_datetime(["1970-01-02", "2024-03-15", None])})
    out = DateFeatures().fit(frame).transform(frame)
    assert out[0].tolist() == [1.0, 1.0, 4.0]  # day 1, January, Friday
    assert np.isnan(out[2]).all()


def test_none_and_nan_categories_are_imputed_alike():
    from lib.data.schema import ColumnSchema, Schema

    schema = Schema(
        target="y", task="binary", features=[ColumnSchema(name="c", kind="categorical")]
    )
    frame = pd.DataFrame({"c": pd.Series(["a", None, "b", np.nan, "a"], dtype=object)})
    pre = build_preprocessor(schema, PreprocessingParams(min_frequency=0.0)).set_output(
        transform="pandas"
    )
    out = pre.fit_transform(frame)
    assert list(out.columns) == ["categorical__c_a", "categorical__c_b", "categorical__c_missing"]
    assert out["categorical__c_missing"].tolist() == [0, 1, 0, 1, 0]
