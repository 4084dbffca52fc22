"""The field's standard CLV baseline: BG/NBD (how often) x Gamma-Gamma (how much), per customer window.

Protocol (one reference date per customer, as in ``build_clv_dataset``):

* Time unit: one day, counted from the customer's reference date (day 0 = its first 24 hours).
  Orders are summed per day and a day counts as a purchase when its net amount is > 0
  (a refund-only day is not a purchase); this is lifetimes' ``freq="D"`` convention.
* Summary of a period [ref, ref + end_days): first purchase day d0, ``frequency`` = purchase
  days after d0 (a one-time buyer has 0), ``recency`` = last purchase day - d0,
  ``T`` = end_days - d0 (the customer's age at the end of the period, from its first
  purchase), ``monetary_repeat`` = mean amount of the repeat days (0 if none, the lifetimes
  convention), ``monetary_all`` = mean amount of every purchase day (first one included).
  Customers with no purchase day in the period have NaN summaries ("not yet born": BG/NBD
  conditions on a first purchase and says nothing about them).
* Prediction for a customer from its window summary: E[purchase days in (T, T + horizon]]
  under BG/NBD given (frequency, recency, T) x E[amount per purchase day] under Gamma-Gamma
  given its orders; customers without a purchase in the window get the mean target of such
  customers in the fit set (a constant).
* Parameters are fitted on the fit customers only, either on their window summaries
  (``fit_on="window"``, the textbook calibration period) or on the summaries of their whole
  observed life, window + horizon (``fit_on="history"``): the same information the
  supervised models see through the target, which identifies the dropout process far better
  than a 7-day window can. The history table is passed to the constructor and only read in
  ``fit``, for the customers being fitted; ``predict`` reads the window columns of X only.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import ConvergenceError
from sklearn.base import BaseEstimator, RegressorMixin

SUMMARY_FIELDS = ("frequency", "recency", "T", "monetary_repeat", "monetary_all")
PREFIX = "btyd_"
WINDOW_COLUMNS = tuple(PREFIX + field for field in SUMMARY_FIELDS)
MIN_SPENDERS = 10  # fewer customers with spend than this: no Gamma-Gamma fit, the mean spend instead
LOG_PARAMETER_BOUND = 9.0  # BG/NBD parameters kept in [e^-9, e^9] = [1.2e-4, 8.1e3]


def btyd_summary(purchases: pd.DataFrame, refs: pd.Series, end_days: float, prefix: str = PREFIX) -> pd.DataFrame:
    """Per-customer BTYD summary of purchases in [ref, ref + end_days), indexed like ``refs``.

    ``purchases``: customer_id, timestamp, amount (one row per order). ``refs``: customer_id
    -> reference date. Rows outside the period, and customers not in ``refs``, are ignored.
    """
    if end_days <= 0:
        raise ValueError(f"btyd_summary: end_days must be > 0, got {end_days}")
    for column in ("customer_id", "timestamp", "amount"):
        if column not in purchases.columns:
            raise ValueError(f"btyd_summary: purchases lack column '{column}'")
    ref = purchases["customer_id"].map(refs)
    offset = (purchases["timestamp"] - ref) / pd.Timedelta(days=1)
    keep = ref.notna() & (offset >= 0) & (offset < end_days)
    days = pd.DataFrame({"customer_id": purchases.loc[keep, "customer_id"].to_numpy(),
                         "day": np.floor(offset[keep].to_numpy()),
                         "amount": purchases.loc[keep, "amount"].to_numpy(dtype="float64")})
    days = days.groupby(["customer_id", "day"], sort=True)["amount"].sum().reset_index()
    days = days[days["amount"] > 0]
    grouped = days.groupby("customer_id")
    first_day = grouped["day"].transform("min")
    repeat = days[days["day"] > first_day]
    out = pd.DataFrame({
        "frequency": grouped.size() - 1.0,
        "recency": grouped["day"].max() - grouped["day"].min(),
        "T": end_days - grouped["day"].min(),
        "monetary_repeat": repeat.groupby("customer_id")["amount"].mean(),
        "monetary_all": grouped["amount"].mean(),
    })
    out["monetary_repeat"] = out["monetary_repeat"].fillna(0.0)
    out = out.reindex(pd.Index(refs.index, name="customer_id")).astype("float64")
    return out.add_prefix(prefix)


class BTYDRegressor(RegressorMixin, BaseEstimator):
    """BG/NBD + Gamma-Gamma (lifetimes) as a scikit-learn regressor on the window summary columns.

    X must hold ``btyd_frequency``, ``btyd_recency``, ``btyd_T``, ``btyd_monetary_repeat`` and
    ``btyd_monetary_all`` (see :func:`btyd_summary`; NaN = no purchase in the window) and, when
    ``history`` is given, ``customer_id``. Other columns are ignored.

    spend_orders: "repeat" is the textbook Gamma-Gamma (fitted on repeat purchases of
    customers with frequency > 0; a one-time buyer gets the population mean spend);
    "all" fits it on every purchase day (x = frequency + 1 orders of mean monetary_all),
    so a one-time buyer's first basket informs its expected spend.
    time_unit_days: the BG/NBD clock unit handed to lifetimes (7 = weeks, its usual scale;
    purchases are still counted per day); it only rescales alpha and keeps the optimiser
    well conditioned.
    fit_on: "window" fits both models on the window summaries of the fit customers;
    "history" on ``history`` (a :func:`btyd_summary` over window + horizon, indexed by
    customer_id) for the same customers.
    """

    # lifetimes is quietened through process-wide state (warning filters, sys.stdout): never beside
    # other threads (utils.core.parallel runs it alone).
    thread_safe = False

    def __init__(self, horizon_days: float = 180.0, spend_orders: str = "repeat", fit_on: str = "window",
                 history: pd.DataFrame | None = None, penalizer_coef: float = 0.0,
                 gg_penalizer_coef: float = 0.0, time_unit_days: float = 7.0):
        self.horizon_days = horizon_days
        self.spend_orders = spend_orders
        self.fit_on = fit_on
        self.history = history
        self.penalizer_coef = penalizer_coef
        self.gg_penalizer_coef = gg_penalizer_coef
        self.time_unit_days = time_unit_days

    def fit(self, X: pd.DataFrame, y) -> BTYDRegressor:
        if self.spend_orders not in ("repeat", "all"):
            raise ValueError(f"spend_orders must be 'repeat' or 'all', got {self.spend_orders!r}")
        if self.fit_on not in ("window", "history"):
            raise ValueError(f"fit_on must be 'window' or 'history', got {self.fit_on!r}")
        window = _summary(X)
        y = np.asarray(y, dtype="float64")
        if len(y) != len(X) or np.isnan(y).any():
            raise ValueError("BTYDRegressor.fit: y must be as long as X and hold no NaN")
        unborn = window["frequency"].isna().to_numpy()
        self.unborn_value_ = float(y[unborn].mean()) if unborn.any() else 0.0
        if self.fit_on == "history":
            if self.history is None or "customer_id" not in X.columns:
                raise ValueError("fit_on='history' needs the history table and a customer_id column in X")
            fit_summary = self.history.reindex(X["customer_id"].to_numpy())
            fit_summary = _summary(fit_summary.reset_index(drop=True))
        else:
            fit_summary = window
        born = fit_summary.dropna()
        if len(born) < 10:
            raise ValueError(f"BTYDRegressor.fit: {len(born)} customers with a purchase; need at least 10")
        unit = float(self.time_unit_days)
        orders, value = self._spend_inputs(born)
        usable = (orders > 0) & (value > 0)
        self.bgnbd_, self.penalizer_used_ = _fit_escalating(
            lambda p: _bounded(BetaGeoFitter)(penalizer_coef=p).fit(
                born["frequency"], born["recency"] / unit, born["T"] / unit),
            self.penalizer_coef)
        # Gamma-Gamma needs spenders to learn from; with too few (textbook "repeat" spend on a
        # short window) every customer gets the mean spend per purchase day instead, and it is said.
        self.gamma_gamma_ = self.gg_penalizer_used_ = None
        self.mean_spend_ = float(np.mean(value[usable])) if usable.any() else float(
            born["monetary_all"].clip(lower=0).mean())
        if usable.sum() >= MIN_SPENDERS:
            self.gamma_gamma_, self.gg_penalizer_used_ = _fit_escalating(
                lambda p: GammaGammaFitter(penalizer_coef=p).fit(orders[usable], value[usable]),
                self.gg_penalizer_coef)
        self.n_fit_customers_ = len(born)
        # What predict reads (the gate and scoring pass exactly these columns).
        self.feature_names_in_ = np.array(WINDOW_COLUMNS, dtype=object)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        parts = self.predict_parts(X)
        return (parts["expected_purchases"] * parts["expected_spend"]).fillna(self.unborn_value_).to_numpy()

    def predict_parts(self, X: pd.DataFrame) -> pd.DataFrame:
        """Expected purchase days in the horizon and expected spend per purchase day (NaN if unborn)."""
        summary = _summary(X)
        born = summary["frequency"].notna().to_numpy()
        out = pd.DataFrame({"expected_purchases": np.nan, "expected_spend": np.nan}, index=X.index)
        if born.any():
            b = summary[born]
            unit = float(self.time_unit_days)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                purchases = self.bgnbd_.conditional_expected_number_of_purchases_up_to_time(
                    float(self.horizon_days) / unit, b["frequency"].to_numpy(), b["recency"].to_numpy() / unit,
                    b["T"].to_numpy() / unit)
                orders, value = self._spend_inputs(b)
                if self.gamma_gamma_ is None:
                    spend = np.full(len(b), self.mean_spend_)
                else:
                    spend = self.gamma_gamma_.conditional_expected_average_profit(orders, np.clip(value, 0, None))
            out.loc[born, "expected_purchases"] = np.asarray(purchases, dtype="float64")
            out.loc[born, "expected_spend"] = np.asarray(spend, dtype="float64")
        return out

    def _spend_inputs(self, summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if self.spend_orders == "repeat":
            return summary["frequency"].to_numpy(), summary["monetary_repeat"].to_numpy()
        return summary["frequency"].to_numpy() + 1.0, summary["monetary_all"].to_numpy()




def _bounded(fitter_class):
    """A lifetimes fitter whose log-parameters are searched inside +-LOG_PARAMETER_BOUND.

    On Online Retail the unconstrained BG/NBD likelihood runs off to the boundary (dropout
    a -> 0, b -> infinity: nobody drops out within the horizon) and lifetimes reports a
    convergence failure; bounds (L-BFGS-B) give the constrained maximum instead, which is the
    same model up to a negligible dropout probability.
    """

    class Bounded(fitter_class):
        def _fit(self, minimizing_function_args, initial_params, params_size, disp, tol=1e-7, bounds=None,
                 **kwargs):
            bounds = [(-LOG_PARAMETER_BOUND, LOG_PARAMETER_BOUND)] * params_size
            return super()._fit(minimizing_function_args, initial_params, params_size, disp, tol, bounds, **kwargs)

    Bounded.__name__ = Bounded.__qualname__ = f"Bounded{fitter_class.__name__}"
    return Bounded


def _fit_escalating(fit, penalizer: float):
    """Fit with ``penalizer``; if the optimiser does not converge, retry with a 10x stronger one.

    A short window leaves the BG/NBD dropout parameters barely identified (few repeats), and
    the unpenalized likelihood can run off to infinity; the smallest penalizer that converges
    is kept (and reported as ``penalizer_used_``).
    """
    tries = [penalizer] + [p for p in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2) if p > penalizer]
    for attempt in tries:
        try:
            # lifetimes prints the optimiser's report when it fails; the failure is handled here.
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                return fit(attempt), attempt
        except (ConvergenceError, np.linalg.LinAlgError, ValueError) as error:
            last = error
    raise RuntimeError(f"BTYD fit did not converge even with penalizer {tries[-1]}: {last}")


def _summary(X: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in WINDOW_COLUMNS if c not in X.columns]
    if missing:
        raise ValueError(f"BTYDRegressor: X lacks the window summary columns {missing}")
    summary = X[list(WINDOW_COLUMNS)].astype("float64")
    summary.columns = list(SUMMARY_FIELDS)
    return summary
