"""Data quality per window: missing rates against a band, range, unseen and type errors."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from lib.core.errors import DataValidationError
from lib.monitoring import windows as w
from lib.monitoring.window_quality import COLUMNS, beyond_chance, outside_tail, window_quality

KINDS = {"x": "numeric", "colour": "categorical"}


def sides(n=20_000, seed=0):
    """Two sides of ``n`` rows with 2 % missing ``x``; ``x`` spans [0, 10] in the reference."""
    rng = np.random.default_rng(seed)

    def frame():
        x = rng.uniform(0, 10, n)
        x[:2] = [0.0, 10.0]  # the whole range, so the current's values all lie inside it
        x[rng.random(n) < 0.02] = np.nan  # the reference knows a few missing values
        return pd.DataFrame({"x": x, "colour": rng.choice(["red", "green", "blue"], n)})

    return frame(), frame()


def cut(ref, cur, spec="10 windows"):
    parsed = w.parse_spec(spec)
    cur_w = w.split(len(cur), parsed)
    return w.reference_windows(len(ref), parsed, cur_w), cur_w


def current(out, column):
    return out[(out["period"] == "current") & (out["column"] == column)].reset_index(drop=True)


def test_nans_in_one_window_alert_there_only():
    ref, cur = sides()
    cur.loc[6000:6199, "x"] = np.nan  # a tenth of window 4 (rows 6,000-7,999)
    out = window_quality(ref, cur, KINDS, *cut(ref, cur))
    x = current(out, "x")
    assert x["alert"].tolist() == [i == 3 for i in range(10)]
    assert x.loc[3, "missing"] == cur.loc[6000:7999, "x"].isna().sum() >= 200
    assert x.loc[3, "missing_rate"] == pytest.approx(x.loc[3, "missing"] / 2000)
    assert x.loc[3, "reason"].startswith("missing 1")  # about 12 %, above about 3 %
    assert (x.loc[x.index != 3, "reason"] == "").all()
    assert list(out.columns) == COLUMNS


def test_a_reference_without_missing_values_allows_none():
    ref, cur = sides()
    ref["x"], cur["x"] = ref["x"].fillna(5.0), cur["x"].fillna(5.0)
    cur.loc[10, "x"] = np.nan
    out = window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur))
    assert current(out, "x")["alert"].tolist() == [i == 0 for i in range(10)]


def test_values_outside_the_reference_range_alert():
    ref, cur = sides()
    cur.loc[[4500, 4501], "x"] = [-3.0, 1e6]  # window 3
    out = window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur))
    x = current(out, "x")
    assert x["out_of_range"].tolist() == [2 if i == 2 else 0 for i in range(10)]
    assert x["alert"].tolist() == [i == 2 for i in range(10)]
    assert "2 outside the reference range [" in x.loc[2, "reason"]
    assert "'-3.0', '1000000.0'" in x.loc[2, "reason"]


def test_a_new_extreme_just_past_the_range_is_counted_but_chance():
    ref, cur = sides()
    cur.loc[4500, "x"] = 10.4  # window 3: one value a little above the reference's maximum
    x = current(window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur)), "x")
    assert x["out_of_range"].tolist() == [1 if i == 2 else 0 for i in range(10)]
    assert not x["alert"].any() and (x["reason"] == "").all()  # expected every ~10 windows


def test_many_values_just_past_the_range_alert():
    ref, cur = sides()
    cur.loc[4500:4519, "x"] = np.linspace(10.1, 10.5, 20)  # 20 in window 3: far beyond chance
    x = current(window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur)), "x")
    assert x["alert"].tolist() == [i == 2 for i in range(10)]
    assert x.loc[2, "reason"].startswith("20 outside the reference range [0, 10]")


def test_a_window_of_many_offenders_quotes_the_first_three_in_order():
    ref, cur = sides()
    cur.loc[4000:5999, "x"] = 11 + np.arange(2000) / 100  # every row of window 3 out of range
    cur.loc[4000, "x"] = cur.loc[4002, "x"]  # a repeat is quoted once
    x = current(window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur)), "x")
    assert x.loc[2, "reason"].startswith("2000 outside the reference range [0, 10]")
    assert "('11.02', '11.01', '11.03')" in x.loc[2, "reason"]


def test_chance_is_exact_on_the_reference_size():
    assert not beyond_chance(1, 2_000, 20_000)  # expected 0.18: one is common
    assert not beyond_chance(3, 2_000, 20_000)  # p about 0.0028
    assert beyond_chance(4, 2_000, 20_000)  # p about 0.0003
    assert beyond_chance(1, 2_000, 0) is False and beyond_chance(0, 10, 10) is False


def _enumerated_tail(outside: int, present: int, n: int) -> float:
    """P(outside or more of ``present`` new values beyond the range of ``n``), every ordering."""
    total, hits, count = n + present, 0, 0
    for new in itertools.combinations(range(total), present):
        old = sorted(set(range(total)) - set(new))
        hits += sum(i < old[0] or i > old[-1] for i in new) >= outside
        count += 1
    return hits / count


def test_the_tail_is_exact_for_exchangeable_values():
    # every way of interleaving small samples (the ranks are all that matter)
    for n in (1, 2, 3, 5):
        for present in (1, 2, 4, 6):
            for outside in range(present + 2):
                assert outside_tail(outside, present, n) == pytest.approx(
                    _enumerated_tail(outside, present, n), abs=1e-12
                )
    # and by simulation at a small table's sizes, where a binomial tail (independent values
    # against a fixed range) understates it 600-fold at 11
    rng = np.random.default_rng(0)
    ref, new = rng.random((40_000, 88)), rng.random((40_000, 84))
    lo, hi = ref.min(axis=1, keepdims=True), ref.max(axis=1, keepdims=True)
    counts = ((new < lo) | (new > hi)).sum(axis=1)
    for k in (1, 3, 5, 8):
        assert outside_tail(k, 84, 88) == pytest.approx((counts >= k).mean(), abs=0.01)
    assert outside_tail(11, 84, 88) == pytest.approx(0.00185, abs=1e-4)


@pytest.mark.parametrize("loader", ["load_wine", "load_diabetes"])
def test_a_small_references_range_raises_no_chance_alerts_on_real_data(loader):
    """A real table split at random: 88 reference rows, 5 windows of the rest, no change."""
    from sklearn import datasets

    x = getattr(datasets, loader)(as_frame=True).frame.drop(columns="target")
    kinds = dict.fromkeys(x.columns, "numeric")
    alerts = 0
    for seed in range(10):
        order = np.random.default_rng(seed).permutation(len(x))
        ref = x.iloc[order[:88]].reset_index(drop=True)
        cur = x.iloc[order[88:]].reset_index(drop=True)
        out = window_quality(ref, cur, kinds, *cut(ref, cur, "5 windows"))
        alerts += int(out.loc[out["period"] == "current", "alert"].sum())
    # 10 runs x 13 (wine) or 10 (diabetes) columns x 5 windows: the binomial tail raised 4
    # alerts on each table (in 3 and 1 runs), all on counts of values just past the range
    assert alerts == 0


def test_unseen_categories_alert_and_are_named():
    ref, cur = sides()
    cur.loc[[19_000, 19_500], "colour"] = ["purple", "purple"]  # window 10
    out = window_quality(ref, cur, {"colour": "categorical"}, *cut(ref, cur))
    colour = current(out, "colour")
    assert colour["unseen"].tolist() == [2 if i == 9 else 0 for i in range(10)]
    assert colour.loc[9, "reason"] == "2 unseen ('purple')"
    assert colour["alert"].sum() == 1


def test_text_that_is_not_a_number_counts_as_a_type_error():
    ref, cur = sides()
    raw = cur.astype({"x": object})
    raw.loc[5, "x"] = "abc"
    raw.loc[6, "x"] = " 4.5 "  # spaces around a number still parse
    out = window_quality(ref, raw, {"x": "numeric"}, *cut(ref, cur))
    x = current(out, "x")
    assert x["type_errors"].tolist() == [1] + [0] * 9
    assert "1 not a number ('abc')" in x.loc[0, "reason"]
    typed = window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur))
    assert typed["type_errors"].sum() == 0


def test_dates_are_checked_as_times():
    ref = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=100, freq="D")})
    cur = pd.DataFrame({"when": ["2024-02-01"] * 50 + ["2030-01-01", "soon"] + ["2024-03-01"] * 48})
    out = window_quality(ref, cur, {"when": "datetime"}, *cut(ref, cur, "2 windows"))
    first = current(out, "when").iloc[1]
    assert (first["out_of_range"], first["type_errors"]) == (1, 1)


def test_dates_given_as_numbers_that_do_not_parse_are_type_errors_not_missing():
    # a float column checked as dates: a number past any date parses to nothing, which is a
    # type error; only NaN is missing (the float's NaN is not the parse's)
    day = 86_400e9  # nanoseconds
    ref = pd.DataFrame({"when": np.arange(100) * day})
    cur = pd.DataFrame({"when": [5 * day] * 50 + [1e30, np.nan] + [6 * day] * 48})
    out = window_quality(ref, cur, {"when": "datetime"}, *cut(ref, cur, "2 windows"))
    first = current(out, "when").iloc[1]
    assert (first["missing"], first["type_errors"]) == (1, 1)


def test_a_float_columns_missing_values_are_its_nans_window_by_window():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=2000)})
    values = rng.normal(size=2000)
    values[[5, 1500, 1501]] = np.nan
    values[1502] = np.inf  # present, not missing: out of range
    cur = pd.DataFrame({"x": values})
    out = current(window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur, "2 windows")), "x")
    assert list(out["missing"]) == [1, 2]
    assert list(out["out_of_range"] >= 1) == [False, True]


def test_the_reference_windows_are_reported_too():
    ref, cur = sides()
    out = window_quality(ref, cur, KINDS, *cut(ref, cur))
    reference = out[out["period"] == "reference"]
    assert len(reference) == 2 * 10
    assert reference["missing"].sum() == ref["x"].isna().sum()
    assert reference["out_of_range"].sum() == reference["unseen"].sum() == 0


def test_a_missing_column_names_the_side():
    ref, cur = sides()
    with pytest.raises(DataValidationError, match=r"current data: columns \['x'\]"):
        window_quality(ref, cur.drop(columns="x"), KINDS, *cut(ref, cur))


def test_penguins_with_an_injected_problem_per_kind():
    """Palmer penguins ship with missing sexes and measures: the reference's own rate is allowed,
    an injected burst of missing values, an unseen island and an impossible mass are not.

    The reference is the whole table and the current a sample of it: split in two halves, the
    range check fires on one half's natural extremes (a mass above the other half's maximum),
    as NannyML's does."""
    ref = load_penguins()
    cur = ref.sample(n=172, random_state=0).reset_index(drop=True)
    kinds = {"sex": "categorical", "island": "categorical", "body_mass_g": "numeric"}
    ref_w, cur_w = cut(ref, cur, "4 windows")
    cur.loc[cur_w[1].index[:20], "sex"] = np.nan
    cur.loc[cur_w[2].index[0], "island"] = "Anvers"
    cur.loc[cur_w[3].index[0], "body_mass_g"] = 12_000.0
    out = window_quality(ref, cur, kinds, ref_w, cur_w)
    alerts = {c: current(out, c)["alert"].tolist() for c in kinds}
    assert alerts == {
        "sex": [False, True, False, False],
        "island": [False, False, True, False],
        "body_mass_g": [False, False, False, True],
    }


def test_windows_index_rows_by_position_not_by_label():
    ref, cur = sides()
    cur.loc[[4500, 4501], "x"] = [-3.0, 1e6]  # window 3 by position
    shuffled_labels = cur.set_axis(np.random.default_rng(1).permutation(len(cur)))
    out = window_quality(ref, shuffled_labels, {"x": "numeric"}, *cut(ref, cur))
    assert current(out, "x")["out_of_range"].tolist() == [2 if i == 2 else 0 for i in range(10)]
    assert "'-3.0', '1000000.0'" in current(out, "x").loc[2, "reason"]


def test_threads_give_the_same_table_as_one_thread():
    ref = load_penguins()
    cur = ref.sample(n=172, random_state=0).reset_index(drop=True)
    kinds = {"sex": "categorical", "island": "categorical", "body_mass_g": "numeric",
             "bill_length_mm": "numeric", "year": "numeric"}  # fmt: skip
    ref_w, cur_w = cut(ref, cur, "4 windows")
    cur.loc[cur_w[1].index[:20], "sex"] = np.nan
    one = window_quality(ref, cur, kinds, ref_w, cur_w, threads=1)
    many = window_quality(ref, cur, kinds, ref_w, cur_w, threads=4)
    pd.testing.assert_frame_equal(one, many)
    assert one["alert"].any()


def test_the_ingested_range_widens_the_references():
    """A small reference misses a heavy tail the project's data held: not a quality problem."""
    ref, cur = sides()  # x spans [0, 10] in the reference
    cur.loc[4500, "x"] = 25.0  # window 3: far beyond the reference's range (1.5 widths)
    cur.loc[6500, "x"] = 75.0  # window 4: far beyond the data's range too
    only_ref = current(window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur)), "x")
    assert only_ref["alert"].tolist() == [i in (2, 3) for i in range(10)]
    wide = window_quality(
        ref, cur, {"x": "numeric"}, *cut(ref, cur), ingested_ranges={"x": (0.0, 30.0)}
    )
    x = current(wide, "x")
    assert x["out_of_range"].tolist() == [1 if i == 3 else 0 for i in range(10)]
    assert x["alert"].tolist() == [i == 3 for i in range(10)]
    assert x.loc[3, "reason"] == "1 outside the ingested range [0, 30] ('75.0')"
    # a range inside the reference's changes nothing; categories are not ranged
    same = window_quality(
        ref, cur, {"x": "numeric"}, *cut(ref, cur), ingested_ranges={"x": (2.0, 8.0)}
    )
    assert same.equals(window_quality(ref, cur, {"x": "numeric"}, *cut(ref, cur)))
