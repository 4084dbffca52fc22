"""Basket, timing and basket text: right values, and no row after a customer's window reaches them."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from utils.clv.basket import (
    BASKET_COLUMN,
    EMPTY_BASKET,
    basket_features,
    in_window,
    parse_baskets,
    timing_features,
    window_baskets,
)

T0 = pd.Timestamp("2021-03-01 09:00")  # a Monday
DAY = pd.Timedelta(days=1)
REFS = pd.Series([T0, T0, T0], index=[1, 2, 3])


def tiny_lines() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 1, 2, 2],
        "order_id": ["a", "a", "b", "c", "z", "d", "d"],
        "timestamp": [T0, T0, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 9 * DAY, T0 + DAY, T0 + DAY],
        "product": ["P1", "P2", "P1", "P3", "P9", "P2", "P2"],
        "quantity": [10.0, 1.0, 5.0, -2.0, 100.0, 3.0, 1.0],
        "unit_price": [1.0, 20.0, 1.0, 4.0, 50.0, 2.0, 2.0],
    })


def orders(lines: pd.DataFrame) -> pd.DataFrame:
    return (lines.assign(amount=lines["quantity"] * lines["unit_price"])
            .groupby(["customer_id", "order_id"]).agg(timestamp=("timestamp", "min"), amount=("amount", "sum"))
            .reset_index())


def test_in_window_keeps_ref_to_just_before_its_end():
    w = in_window(tiny_lines(), REFS, 3)
    assert set(w["order_id"]) == {"a", "b", "d"}  # c is at exactly 3 days: outside
    assert w["offset_days"].max() < 3
    with pytest.raises(ValueError, match="window_days"):
        in_window(tiny_lines(), REFS, 0)


def test_basket_features_on_a_tiny_log():
    f = basket_features(tiny_lines(), REFS, 7)
    one = f.loc[1]
    assert one["basket_lines"] == 3  # the return and the day-9 order are not bought lines of the window
    assert one["basket_distinct_products"] == 2 and one["basket_repeated_products"] == 1  # P1 in orders a and b
    assert one["basket_unit_price_max"] == 20.0 and one["basket_quantity_per_line_max"] == 10.0
    assert one["basket_top_line_share"] == pytest.approx(20 / 35)
    assert one["basket_return_lines"] == 1 and one["basket_return_value"] == pytest.approx(8.0)
    assert f.loc[2, "basket_repeated_products"] == 0 and f.loc[2, "basket_lines_per_product"] == 2.0
    # A customer without lines has zero counts and no prices.
    assert f.loc[3, "basket_lines"] == 0 and np.isnan(f.loc[3, "basket_unit_price_mean"])


def test_timing_features_on_a_tiny_log():
    t = timing_features(orders(tiny_lines()), REFS, 7)
    assert t.loc[1, "timing_span_days"] == 2.0  # orders a and b (c is a net refund, z after the window)
    assert t.loc[1, "timing_mean_gap_days"] == 2.0 and t.loc[1, "timing_orders_first_day"] == 1
    assert t.loc[1, "timing_mean_hour"] == 9.0 and t.loc[1, "timing_weekend_share"] == 0.0
    assert np.isnan(t.loc[2, "timing_mean_gap_days"]) and t.loc[3].isna().all()


def test_basket_text_round_trips_and_names_the_products_of_the_window():
    baskets = window_baskets(tiny_lines(), REFS, 7)
    assert baskets.name == BASKET_COLUMN
    assert json.loads(baskets.loc[1]) == {"P1": 15.0, "P2": 20.0, "P3": 0.0}  # P3 returned: kept at 0
    assert json.loads(baskets.loc[2]) == {"P2": 8.0} and baskets.loc[3] == EMPTY_BASKET
    long = parse_baskets(baskets)
    assert list(long.columns) == ["row", "product", "amount"]
    assert long.groupby("row").size().to_dict() == {0: 3, 1: 1}
    assert long["amount"].sum() == pytest.approx(43.0)


def test_parse_baskets_skips_missing_and_names_a_bad_row():
    assert parse_baskets([None, np.nan, "{}"]).empty
    with pytest.raises(ValueError, match="row 1"):
        parse_baskets(['{"A": 1}', "not json"])
    with pytest.raises(ValueError, match="row 0"):
        parse_baskets(["[1, 2]"])


def test_parsing_a_basket_again_gives_the_same_rows_and_a_bad_one_is_still_named():
    baskets = ['{"A": 1.5, "B": -2}', None, '{"A": 1.5, "B": -2}', "{}", '{"C": 3}']
    first, again = parse_baskets(baskets), parse_baskets(list(reversed(baskets)))
    assert first["row"].tolist() == [0, 0, 2, 2, 4] and first["product"].tolist() == ["A", "B", "A", "B", "C"]
    assert again["row"].tolist() == [0, 2, 2, 4, 4] and again["amount"].tolist() == [3.0, 1.5, -2.0, 1.5, -2.0]
    for _ in range(2):  # parsed once, refused every time
        with pytest.raises(ValueError, match="row 1"):
            parse_baskets(['{"A": 1}', '"just text"'])


def test_a_model_pickled_by_value_carries_the_parser_but_not_its_cache():
    import pickle

    import cloudpickle

    from utils.core.tracking import pickled_by_value

    parse_baskets([f'{{"P{i}": {i}}}' for i in range(5_000)])
    with pickled_by_value():
        blob = cloudpickle.dumps(parse_baskets)
    assert len(blob) < 20_000, "five thousand parsed baskets must not travel with the model"
    assert pickle.loads(blob)(['{"A": 2}'])["amount"].tolist() == [2.0]


def test_nothing_after_the_window_reaches_any_basket_feature():
    lines = tiny_lines()
    late = lines["timestamp"] >= T0 + 7 * DAY
    changed = lines.copy()
    changed.loc[late, ["quantity", "unit_price", "product"]] = [-1e6, 1e6, "P1"]
    extra = changed.iloc[[0]].assign(timestamp=T0 + 7 * DAY, order_id="new", product="P77")
    changed = pd.concat([changed, extra], ignore_index=True)
    pd.testing.assert_frame_equal(basket_features(lines, REFS, 7), basket_features(changed, REFS, 7))
    pd.testing.assert_series_equal(window_baskets(lines, REFS, 7), window_baskets(changed, REFS, 7))
    pd.testing.assert_frame_equal(timing_features(orders(lines), REFS, 7), timing_features(orders(changed), REFS, 7))
