"""The product signal: it learns which products' buyers come back, and is cross-fitted so that a
customer's own outcome never reaches its own signal."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.clv.products import PRODUCT_SIGNALS, ProductSignal


def products() -> pd.DataFrame:
    # Rows 0..5 bought product A, 6..11 bought B; row 12 (not fitted) bought both.
    rows = [(r, "A", 10.0) for r in range(6)] + [(r, "B", 10.0) for r in range(6, 12)]
    return pd.DataFrame(rows, columns=["row", "product", "amount"])


def new_customers() -> pd.DataFrame:
    return pd.DataFrame({"row": [0, 0, 1, 2], "product": ["A", "B", "A", "B"], "amount": [5.0, 5.0, 1.0, 1.0]})


def test_learns_which_products_buyers_come_back():
    y = np.r_[np.full(6, 500.0), np.zeros(6)]  # A's buyers spend later, B's do not
    signal = ProductSignal(smoothing=1.0, n_folds=3).fit(products(), y)
    new = signal.transform(new_customers(), 4)  # row 3 bought nothing
    assert list(new.columns) == list(PRODUCT_SIGNALS)
    assert new.loc[0, "prod_value_max"] > new.loc[0, "prod_value_mean"] > 0
    assert new.loc[1, "prod_value_mean"] > new.loc[2, "prod_value_mean"] + 1.0
    assert new.loc[1, "prod_repeat_mean"] > new.loc[2, "prod_repeat_mean"] + 0.5
    assert new.loc[3].isna().all()  # no products, no signal


def test_smoothing_pulls_rare_products_to_the_mean():
    y = np.r_[np.full(6, 500.0), np.zeros(6)]
    weak = ProductSignal(smoothing=1000.0).fit(products(), y).transform(new_customers(), 3)
    strong = ProductSignal(smoothing=1.0).fit(products(), y).transform(new_customers(), 3)
    spread = lambda s: abs(s.loc[1, "prod_value_mean"] - s.loc[2, "prod_value_mean"])
    assert spread(weak) < spread(strong) / 10


def test_cross_fitting_keeps_each_customers_own_target_out_of_its_signal():
    y = np.random.default_rng(0).gamma(1.0, 100.0, 12)
    before = ProductSignal(smoothing=5.0, n_folds=4, random_state=3).fit_transform(products(), y)
    for i in range(12):
        changed = y.copy()
        changed[i] = 1e7  # one customer's outcome, made extreme
        after = ProductSignal(smoothing=5.0, n_folds=4, random_state=3).fit_transform(products(), changed)
        pd.testing.assert_series_equal(before.loc[i], after.loc[i])
        assert not before.drop(index=i).equals(after.drop(index=i))  # ... while it does inform the others


def test_cross_fitted_base_regression_sees_no_own_outcome():
    y = np.random.default_rng(1).gamma(1.0, 100.0, 12)
    base = np.random.default_rng(2).gamma(1.0, 50.0, 12)
    before = ProductSignal(smoothing=5.0, n_folds=3, random_state=0).fit_transform(products(), y, base)
    changed = y.copy()
    changed[4] = 0.0
    after = ProductSignal(smoothing=5.0, n_folds=3, random_state=0).fit_transform(products(), changed, base)
    pd.testing.assert_series_equal(before.loc[4], after.loc[4])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="smoothing"):
        ProductSignal(smoothing=0)
    with pytest.raises(ValueError, match="n_folds"):
        ProductSignal(n_folds=1)
    with pytest.raises(ValueError, match="lacks"):
        ProductSignal().fit(products().drop(columns="amount"), np.ones(12))
    with pytest.raises(ValueError, match="NaN"):
        ProductSignal().fit(products(), np.r_[np.ones(11), np.nan])
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 5\)"):
        ProductSignal().fit(products(), np.ones(5))
    with pytest.raises(ValueError, match="base has"):
        ProductSignal().fit(products(), np.ones(12), np.ones(3))
