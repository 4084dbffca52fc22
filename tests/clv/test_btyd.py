"""BG/NBD + Gamma-Gamma baseline: the window summary, the estimator, and what it may not see."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.clv.btyd import MIN_SPENDERS, WINDOW_COLUMNS, BTYDRegressor, btyd_summary

T0 = pd.Timestamp("2021-01-01 10:00")


def purchases(rows):
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).assign(
        timestamp=lambda f: pd.to_datetime(f["timestamp"]))


def test_summary_counts_repeat_days_in_the_window_only():
    p = purchases([
        (1, T0, 10.0), (1, T0 + pd.Timedelta(hours=2), 5.0),  # same day: one purchase day of 15
        (1, T0 + pd.Timedelta(days=3), 20.0), (1, T0 + pd.Timedelta(days=5, hours=1), 40.0),
        (1, T0 + pd.Timedelta(days=7), 999.0),  # first instant after a 7-day window: ignored
        (2, T0 + pd.Timedelta(days=2), 30.0),   # first purchase after the reference date
        (3, T0 - pd.Timedelta(days=1), 50.0),   # before the reference date: ignored
        (4, T0 + pd.Timedelta(days=1), -8.0),   # a refund-only day is no purchase
    ])
    refs = pd.Series(T0, index=[1, 2, 3, 4])
    s = btyd_summary(p, refs, 7)
    assert list(s.columns) == list(WINDOW_COLUMNS)
    assert s.loc[1].tolist() == [2.0, 5.0, 7.0, 30.0, pytest.approx(25.0)]
    assert s.loc[2].tolist() == [0.0, 0.0, 5.0, 0.0, 30.0]
    assert s.loc[[3, 4]].isna().all().all()


def test_summary_rejects_bad_inputs():
    with pytest.raises(ValueError, match="end_days"):
        btyd_summary(purchases([]), pd.Series(dtype="datetime64[ns]"), 0)
    with pytest.raises(ValueError, match="amount"):
        btyd_summary(purchases([]).drop(columns="amount"), pd.Series(dtype="datetime64[ns]"), 7)


def simulated(n=1500, seed=0, window=28):
    """Customers with a Poisson purchase rate (gamma heterogeneity), first purchase at day 0."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.8, 1 / 8.0, n)  # purchases per day
    spend = rng.gamma(4.0, 10.0, n)
    rows = []
    for c in range(n):
        days = np.concatenate([[0.0], np.cumsum(rng.exponential(1 / rate[c], 40))])
        for d in days[days < window + 180]:
            rows.append((c + 1, T0 + pd.Timedelta(days=float(d)), float(rng.gamma(4.0, spend[c] / 4.0))))
    p = purchases(rows)
    refs = pd.Series(T0, index=np.arange(1, n + 1))
    X = btyd_summary(p, refs, window).reset_index()
    offset = p["timestamp"] - T0
    in_horizon = (offset >= pd.Timedelta(days=window)) & (offset < pd.Timedelta(days=window + 180))
    y = p[in_horizon].groupby("customer_id")["amount"].sum().reindex(refs.index).fillna(0).to_numpy()
    history = btyd_summary(p, refs, window + 180)
    return X, y, history


@pytest.mark.parametrize("fit_on", ["window", "history"])
@pytest.mark.parametrize("spend_orders", ["repeat", "all"])
def test_btyd_ranks_frequent_buyers_first_and_gets_the_level_right(fit_on, spend_orders):
    X, y, history = simulated()
    model = BTYDRegressor(horizon_days=180, fit_on=fit_on, spend_orders=spend_orders, history=history).fit(X, y)
    predicted = model.predict(X)
    assert np.corrcoef(predicted, y)[0, 1] > 0.5
    assert predicted.mean() == pytest.approx(y.mean(), rel=0.25)
    parts = model.predict_parts(X)
    assert (parts["expected_purchases"] >= 0).all() and (parts["expected_spend"] > 0).all()


def test_unborn_customers_get_the_fit_mean_of_their_kind():
    X, y, _ = simulated(400)
    X.loc[:9, list(WINDOW_COLUMNS)] = np.nan
    y = y.copy()
    y[:10] = 7.0
    model = BTYDRegressor().fit(X, y)
    assert model.predict(X)[:10] == pytest.approx(np.full(10, 7.0))


def test_predict_reads_only_the_window_columns():
    """History (window + horizon) is a fit-time input: changing it cannot move a prediction
    of a customer that is not being fitted, and predict never needs it."""
    X, y, history = simulated(600)
    fit, new = X.iloc[:400], X.iloc[400:]
    model = BTYDRegressor(fit_on="history", history=history).fit(fit, y[:400])
    before = model.predict(new)
    shuffled = history.copy()
    shuffled.loc[new["customer_id"]] = 1e6  # the new customers' future, made absurd
    refit = BTYDRegressor(fit_on="history", history=shuffled).fit(fit, y[:400])
    assert refit.predict(new) == pytest.approx(before)
    assert model.predict(new.drop(columns="customer_id")) == pytest.approx(before)


def test_btyd_rejects_bad_settings():
    X, y, _ = simulated(200)
    with pytest.raises(ValueError, match="spend_orders"):
        BTYDRegressor(spend_orders="first").fit(X, y)
    with pytest.raises(ValueError, match="fit_on"):
        BTYDRegressor(fit_on="future").fit(X, y)
    with pytest.raises(ValueError, match="history"):
        BTYDRegressor(fit_on="history").fit(X, y)
    with pytest.raises(ValueError, match="window summary"):
        BTYDRegressor().fit(X.drop(columns="btyd_T"), y)
    with pytest.raises(ValueError, match="y must"):
        BTYDRegressor().fit(X, y[:-1])


def test_too_few_spenders_for_gamma_gamma_gives_everyone_the_mean_spend():
    X, y, _ = simulated(300, seed=4, window=7)
    repeaters = X.index[X["btyd_frequency"] > 0]
    # Only 5 customers came back within the window: too little repeat spend to fit Gamma-Gamma on.
    X.loc[repeaters[5:], ["btyd_frequency", "btyd_recency", "btyd_monetary_repeat"]] = 0.0
    model = BTYDRegressor(spend_orders="repeat").fit(X, y)
    assert model.gamma_gamma_ is None and (X["btyd_frequency"] > 0).sum() < MIN_SPENDERS
    parts = model.predict_parts(X)
    assert parts["expected_spend"].nunique() == 1
    assert np.isfinite(model.predict(X)).all()


def test_fitted_model_names_the_columns_it_reads():
    X, y, _ = simulated(300)
    model = BTYDRegressor().fit(X, y)
    assert list(model.feature_names_in_) == list(WINDOW_COLUMNS)
    assert model.predict(X[list(WINDOW_COLUMNS)]) == pytest.approx(model.predict(X))
