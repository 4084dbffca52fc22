"""Ideas for a better CLV model on real logs, judged on the TRAINING customers only (issue 14).

    LEAD2VALUE_SHARED_DATA=../shared/data .venv/bin/python bench/clv_variants_cv.py \\
        [--datasets online_retail cdnow] [--windows 7 28] [--folds 5]

Each variant is scored as :func:`utils.clv.model.select_by_time_cv` scores the protocol's
candidates: expanding, time-ordered folds over the training part of the 70/30 split by first
purchase; the test customers are cut off first and never read. Every variant starts from the
registered recipe (the hurdle with the product signal, at its default settings), so the table
says what each idea adds to it:

* ``bag5``: five seeds of the recipe averaged (the product signal's folds and the trees' samples);
* ``blend_btyd``: the recipe's forecast averaged with BG/NBD+GG's (fitted on the windows, all orders);
* ``stack_btyd``: BG/NBD+GG's forecast as a feature and as the hurdle's linear base;
* ``heteroscedastic``: a spend-if-any whose spread depends on the customer (exp(mu + s_i^2 / 2), s_i^2
  regressed on log first-window revenue) instead of one smearing factor;
* ``early_flag``: a flag for customers first seen in the data's first 14 days (an existing customer
  looks new at the start of a log);
* ``families``: a second product signal on product families (stock code digits, colour and size
  letters dropped), pooling thin products;
* ``order_signal``: a product signal learnt from every order of the fitted customers (the spend in
  the 180 days after each order whose future is observed), not only from their first window.

Prints one table per data set and window; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np
import pandas as pd
from clv_real_data import sources
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold

from utils.clv import protocol
from utils.clv.basket import BASKET_COLUMN, parse_baskets
from utils.clv.btyd import BTYDRegressor
from utils.clv.features import TARGET, latest_event
from utils.clv.model import (
    ENRICHED_DEFAULTS,
    NAIVE_FEATURE,
    HurdleCLV,
    NaiveCLV,
    ProductSignalRegressor,
    days_after_start,
    make_enriched_hurdle,
    select_by_time_cv,
    time_split,
)
from utils.clv.products import ProductSignal

SHOWN = ["model", "cv_gini", "cv_spearman", "cv_gini_gain", "cv_spearman_gain", "cv_worst_fold_gini_gain", "cv_score"]


class Averaged(RegressorMixin, BaseEstimator):
    """The mean forecast of several models, each reading its own columns."""

    thread_safe = False  # BG/NBD+GG members change process-wide state while they fit

    def __init__(self, members=(), reads=()):
        self.members = members
        self.reads = reads

    def fit(self, X, y):
        self.fitted_ = [clone(model).fit(X[list(cols)], y) for model, cols in zip(self.members, self.reads)]
        return self

    def predict(self, X):
        return np.mean([model.predict(X[list(cols)]) for model, cols in zip(self.fitted_, self.reads)], axis=0)


class WithBTYD(RegressorMixin, BaseEstimator):
    """``inner`` fitted on X plus BG/NBD+GG's forecast (column ``btyd_forecast``)."""

    thread_safe = False

    def __init__(self, btyd=None, inner=None):
        self.btyd = btyd
        self.inner = inner

    def fit(self, X, y):
        self.btyd_ = clone(self.btyd).fit(X, y)
        self.inner_ = clone(self.inner).fit(self._join(X), y)
        return self

    def predict(self, X):
        return self.inner_.predict(self._join(X))

    def _join(self, X):
        return X.drop(columns="customer_id").assign(btyd_forecast=self.btyd_.predict(X))


class HeteroscedasticHurdle(HurdleCLV):
    """HurdleCLV whose spend-if-any is exp(mu_i + s_i^2 / 2), s_i^2 linear in log first-window revenue."""

    def fit(self, X, y):
        super().fit(X, y)
        X, y = self._check_frame(X), np.asarray(y, dtype="float64")
        spends, base = y > 0, self._base(X)
        squared = (np.log(y[spends]) - self._log_amount(X[spends], base[spends])) ** 2
        self.spread_ = LinearRegression().fit(base[spends], squared)
        return self

    def predict_parts(self, X):
        parts = super().predict_parts(X)
        X = self._check_frame(X)
        variance = np.clip(self.spread_.predict(self._base(X)), 0.0, 4.0)
        parts["spend_if_any"] = parts["spend_if_any"] / self.smearing_ * np.exp(variance / 2)
        return parts


class ExtraSignal(RegressorMixin, BaseEstimator):
    """``inner`` fitted on X plus a second product signal (prefix ``prefix``) from another basket column,
    cross-fitted as :class:`utils.clv.products.ProductSignal` is."""

    def __init__(self, inner=None, column="family_basket", prefix="family_", smoothing=20.0, random_state=7):
        self.inner = inner
        self.column = column
        self.prefix = prefix
        self.smoothing = smoothing
        self.random_state = random_state

    def fit(self, X, y):
        self.signal_ = ProductSignal(self.smoothing, 5, self.random_state)
        signals = self.signal_.fit_transform(parse_baskets(X[self.column]), y, X[NAIVE_FEATURE].to_numpy())
        self.inner_ = clone(self.inner).fit(self._join(X, signals), y)
        return self

    def predict(self, X):
        return self.inner_.predict(self._join(X, self.signal_.transform(parse_baskets(X[self.column]), len(X))))

    def _join(self, X, signals):
        return pd.concat([X.drop(columns=self.column), signals.add_prefix(self.prefix).set_axis(X.index)], axis=1)


class OrderSignal(RegressorMixin, BaseEstimator):
    """``inner`` fitted on X plus a product signal learnt from every order of the fitted customers.

    ``pairs`` (customer_id, product, future, log_amount): for each customer and product, the mean over
    the customer's orders holding the product of log1p(spend in the 180 days after the order), for
    orders whose 180 days lie inside the data. Only the fitted customers' pairs are read; for them the
    signal is cross-fitted over customer folds.
    """

    def __init__(self, inner=None, pairs=None, smoothing=20.0, random_state=7):
        self.inner = inner
        self.pairs = pairs
        self.smoothing = smoothing
        self.random_state = random_state

    def fit(self, X, y):
        ids, products = X["customer_id"].to_numpy(), parse_baskets(X[BASKET_COLUMN])
        mine = self.pairs[self.pairs["customer_id"].isin(ids)]
        signals = pd.DataFrame(index=pd.RangeIndex(len(X)), columns=["order_mean", "order_max", "order_residual"],
                               dtype="float64")
        for fit_rows, out_rows in KFold(5, shuffle=True, random_state=self.random_state).split(ids):
            stats = self._stats(mine[mine["customer_id"].isin(ids[fit_rows])])
            scored = products[np.isin(products["row"], out_rows)]
            signals.iloc[out_rows] = self._signals(scored, *stats, len(X)).iloc[out_rows].to_numpy()
        self.stats_ = self._stats(mine)
        self.inner_ = clone(self.inner).fit(self._join(X, signals), y)
        return self

    def predict(self, X):
        signals = self._signals(parse_baskets(X[BASKET_COLUMN]), *self.stats_, len(X))
        return self.inner_.predict(self._join(X, signals))

    @staticmethod
    def _stats(pairs):
        slope, intercept = np.polyfit(pairs["log_amount"], pairs["future"], 1)
        pairs = pairs.assign(residual=pairs["future"] - (slope * pairs["log_amount"] + intercept))
        grouped = pairs.groupby("product")
        stats = pd.DataFrame({"future": grouped["future"].sum(), "residual": grouped["residual"].sum(),
                              "n": grouped.size()})
        return stats, float(pairs["future"].mean())

    def _signals(self, products, stats, mean, n_rows):
        joined = products.join(stats, on="product")
        n, m = joined["n"].fillna(0.0), self.smoothing
        joined["value"] = (joined["future"].fillna(0.0) + m * mean) / (n + m)
        joined["shrunk_residual"] = joined["residual"].fillna(0.0) / (n + m)
        grouped = joined.groupby("row")
        return pd.DataFrame({"order_mean": grouped["value"].mean(), "order_max": grouped["value"].max(),
                             "order_residual": grouped["shrunk_residual"].mean()}).reindex(pd.RangeIndex(n_rows))

    def _join(self, X, signals):
        return pd.concat([X.drop(columns="customer_id"), signals.set_axis(X.index)], axis=1)


def order_pairs(lines: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """:class:`OrderSignal`'s pairs from the purchase lines (every customer: the model reads its own)."""
    orders = (lines.assign(amount=lines["quantity"] * lines["unit_price"])
              .groupby(["customer_id", "order_id"], sort=False)
              .agg(timestamp=("timestamp", "first"), amount=("amount", "sum")).reset_index())
    horizon = pd.Timedelta(days=horizon_days)
    by_customer = {customer: group for customer, group in orders.groupby("customer_id")}
    observed = orders[orders["timestamp"] + horizon <= as_of].copy()
    observed["future"] = [np.log1p(by_customer[c].loc[(by_customer[c]["timestamp"] > t)
                                                      & (by_customer[c]["timestamp"] <= t + horizon), "amount"].sum())
                          for c, t in zip(observed["customer_id"], observed["timestamp"])]
    observed["log_amount"] = np.log1p(observed["amount"].clip(lower=0))
    pairs = (lines[["customer_id", "order_id", "product"]].drop_duplicates()
             .merge(observed[["customer_id", "order_id", "future", "log_amount"]]))
    return pairs.groupby(["customer_id", "product"], sort=False)[["future", "log_amount"]].mean().reset_index()


def family_basket(text: str) -> str:
    """A window basket with products pooled by family (the stock code's leading digits)."""
    families: dict[str, float] = {}
    for product, amount in json.loads(text).items():
        found = re.match(r"^\d{4,5}", product)
        family = found.group(0) if found else product
        families[family] = families.get(family, 0.0) + amount
    return json.dumps(families)


def variants(columns: dict, history: pd.DataFrame, pairs: pd.DataFrame, horizon_days: int,
             seed: int) -> tuple[dict, dict]:
    def recipe(random_state=seed):
        return make_enriched_hurdle(None, random_state)

    btyd = BTYDRegressor(horizon_days=horizon_days, fit_on="window", spend_orders="all", history=history)
    plain = {k: v for k, v in ENRICHED_DEFAULTS.items() if k != "smoothing"}
    enriched, with_id = columns["enriched"], ["customer_id", *columns["enriched"]]
    models = {
        "naive": NaiveCLV(), "btyd_window_all": btyd, "recipe": recipe(),
        "bag5": Averaged([recipe(seed + i) for i in range(5)], [enriched] * 5),
        "blend_btyd": Averaged([recipe(), btyd], [enriched, columns["btyd"]]),
        "stack_btyd": WithBTYD(btyd, recipe().set_params(estimator__base_feature="btyd_forecast")),
        "heteroscedastic": ProductSignalRegressor(HeteroscedasticHurdle(random_state=seed, **plain),
                                                  random_state=seed),
        "early_flag": recipe(),
        "families": ExtraSignal(recipe()),
        "order_signal": OrderSignal(recipe(), pairs),
    }
    reads = {"naive": columns["naive"], "btyd_window_all": columns["btyd"], "recipe": enriched, "bag5": enriched,
             "blend_btyd": list(dict.fromkeys([*enriched, *columns["btyd"]])),
             "stack_btyd": list(dict.fromkeys([*with_id, *columns["btyd"]])), "heteroscedastic": enriched,
             "early_flag": [*enriched, "early_customer"], "families": [*enriched, "family_basket"],
             "order_signal": with_id}
    return models, reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["online_retail", "cdnow"], choices=["online_retail", "cdnow"])
    parser.add_argument("--windows", nargs="+", type=int, default=[7, 28])
    parser.add_argument("--horizon", type=int, default=180)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    for name in args.datasets:
        data, _ = sources(name)
        # The same for every window: the data's end (the report's as_of) does not depend on it.
        data_end = latest_event(data["customers"], data["web_actions"], data["campaigns"], data["purchases"])
        pairs = order_pairs(data["purchase_lines"], data_end, args.horizon)
        for window in args.windows:
            started = time.perf_counter()
            customers, history, report = protocol.clv_tables(data, window, args.horizon)
            train, _ = time_split(customers)  # the test customers are dropped here, unread
            train = train.assign(
                early_customer=(days_after_start(train["ref_date"], pd.Timestamp(report["data_start"])) < 14)
                .astype("float64"),
                family_basket=train[BASKET_COLUMN].map(family_basket))
            assert pd.Timestamp(report["as_of"]) == data_end, "order pairs made for another end of the data"
            models, reads = variants(protocol.model_columns(customers), history, pairs, args.horizon, args.seed)
            _, table = select_by_time_cv(models, train, train[TARGET].to_numpy(), args.folds, reads)
            print(f"\n=== {name} {window} d: {len(train):,} training customers, {args.folds} time-ordered folds "
                  f"({time.perf_counter() - started:.0f} s)")
            print(table[SHOWN].round(4).to_string(index=False))


if __name__ == "__main__":
    main()
