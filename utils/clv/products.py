"""A product-level signal learnt from earlier customers: what did the buyers of this product spend later?

For product p bought (in their window) by n_p of the customers a model is fitted on, and a
target transform t (log1p of later revenue; its residual on log1p window revenue; 1[spent]),
the product's score is (sum of t over its buyers + m * mu) / (n_p + m): the buyers' mean
shrunk towards the overall mean mu with strength m = ``smoothing``, so a product bought by
three customers says little. A customer's signals are the mean, the amount-weighted mean and
the max of its products' scores, plus ``prod_support`` (log1p of the mean n_p).

Leak-free by construction:

* it is learnt only from the customers being fitted (inside a model's ``fit``: the training
  customers, or a CV fold's fit part), never from the customers it is applied to;
* for the fitted customers themselves it is **cross-fitted** (:meth:`ProductSignal.fit_transform`):
  they are cut into ``n_folds`` folds and a fold's signals come from the other folds only, with
  the residual's regression refitted there, so no customer's own outcome reaches its own signal.

Products come as a long table (row, product, amount), ``row`` being the customer's position
in the rows fitted or scored (see :func:`utils.clv.basket.parse_baskets`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

PRODUCT_SIGNALS = ("prod_value_mean", "prod_value_wmean", "prod_value_max",
                   "prod_residual_mean", "prod_residual_wmean", "prod_repeat_mean", "prod_support")
TARGET_KINDS = ("value", "residual", "repeat")


class ProductSignal:
    """Cross-fitted, smoothed later spend of each product's buyers, aggregated per customer."""

    def __init__(self, smoothing: float = 20.0, n_folds: int = 5, random_state: int = 0):
        if smoothing <= 0:
            raise ValueError(f"ProductSignal: smoothing must be > 0, got {smoothing}")
        if n_folds < 2:
            raise ValueError(f"ProductSignal: n_folds must be >= 2, got {n_folds}")
        self.smoothing = smoothing
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, products: pd.DataFrame, y, base=None) -> ProductSignal:
        """Learn every product's score from all rows of ``y`` (for scoring other customers)."""
        y, base = self._check(products, y, base)
        every = np.ones(len(y), dtype=bool)
        targets, self.means_ = _targets(y, base, every)
        self.stats_ = self._stats(products, targets, every)
        return self

    def fit_transform(self, products: pd.DataFrame, y, base=None) -> pd.DataFrame:
        """Each row's signals from the other folds' rows only; then :meth:`fit` on all rows."""
        y, base = self._check(products, y, base)
        out = pd.DataFrame(np.nan, index=pd.RangeIndex(len(y)), columns=list(PRODUCT_SIGNALS))
        folds = KFold(min(self.n_folds, len(y)), shuffle=True, random_state=self.random_state)
        for fit_rows, out_rows in folds.split(np.arange(len(y))):
            fit_mask = np.zeros(len(y), dtype=bool)
            fit_mask[fit_rows] = True
            targets, means = _targets(y, base, fit_mask)
            stats = self._stats(products, targets, fit_mask)
            scored = products[~fit_mask[products["row"].to_numpy()]]
            out.iloc[out_rows] = self._signals(scored, stats, means, len(y)).iloc[out_rows].to_numpy()
        self.fit(products, y, base)
        return out

    def transform(self, products: pd.DataFrame, n_rows: int) -> pd.DataFrame:
        """Signals of ``n_rows`` customers (not the fitted ones) from every fitted customer."""
        _check_products(products, n_rows)
        return self._signals(products, self.stats_, self.means_, n_rows)

    # -- internals --
    def _check(self, products: pd.DataFrame, y, base) -> tuple[np.ndarray, np.ndarray | None]:
        y = np.asarray(y, dtype="float64")
        if np.isnan(y).any():
            raise ValueError("ProductSignal: y holds NaN")
        if base is not None:
            base = np.asarray(base, dtype="float64")
            if len(base) != len(y):
                raise ValueError(f"ProductSignal: base has {len(base)} values, y {len(y)}")
        _check_products(products, len(y))
        return y, base

    @staticmethod
    def _stats(products: pd.DataFrame, targets: dict[str, np.ndarray], fit_mask: np.ndarray) -> pd.DataFrame:
        rows = products["row"].to_numpy()
        mine = fit_mask[rows]
        frame = pd.DataFrame({name: values[rows[mine]] for name, values in targets.items()})
        frame["product"] = products["product"].to_numpy()[mine]
        grouped = frame.groupby("product", sort=False)
        stats = grouped[list(targets)].sum()
        stats["n"] = grouped.size()
        return stats

    def _signals(self, products: pd.DataFrame, stats: pd.DataFrame, means: dict[str, float],
                 n_rows: int) -> pd.DataFrame:
        m = float(self.smoothing)
        joined = products.join(stats, on="product")
        n = joined["n"].fillna(0.0)
        score = {name: (joined[name].fillna(0.0) + m * means[name]) / (n + m) for name in TARGET_KINDS}
        weight = joined["amount"].clip(lower=0) + 1e-9  # a returned product still counts a little
        frame = pd.DataFrame({"row": joined["row"], "w": weight, "n": n, **score})
        frame["wv"] = frame["value"] * frame["w"]
        frame["wr"] = frame["residual"] * frame["w"]
        g = frame.groupby("row")
        wsum = g["w"].sum()
        out = pd.DataFrame({
            "prod_value_mean": g["value"].mean(),
            "prod_value_wmean": g["wv"].sum() / wsum,
            "prod_value_max": g["value"].max(),
            "prod_residual_mean": g["residual"].mean(),
            "prod_residual_wmean": g["wr"].sum() / wsum,
            "prod_repeat_mean": g["repeat"].mean(),
            "prod_support": np.log1p(g["n"].mean()),
        })
        # A customer without products has no signal (NaN), which the boosted models handle.
        return out.reindex(pd.RangeIndex(n_rows))[list(PRODUCT_SIGNALS)].astype("float64")


def _targets(y: np.ndarray, base: np.ndarray | None, fit_mask: np.ndarray) -> tuple[dict, dict]:
    """The three target transforms (for every row) and their means, learnt on ``fit_mask`` rows only."""
    value = np.log1p(np.clip(y, 0, None))
    if base is None:
        residual = value - value[fit_mask].mean()
    else:
        x = np.log1p(np.clip(np.nan_to_num(base), 0, None))
        if np.ptp(x[fit_mask]) > 0:
            residual = value - np.polyval(np.polyfit(x[fit_mask], value[fit_mask], 1), x)
        else:
            residual = value - value[fit_mask].mean()
    targets = {"value": value, "residual": residual, "repeat": (y > 0).astype("float64")}
    return targets, {name: float(values[fit_mask].mean()) for name, values in targets.items()}


def _check_products(products: pd.DataFrame, n_rows: int) -> None:
    missing = {"row", "product", "amount"} - set(products.columns)
    if missing:
        raise ValueError(f"ProductSignal: the products table lacks {sorted(missing)}")
    rows = products["row"].to_numpy()
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"ProductSignal: product rows must lie in [0, {n_rows}), got {rows.min()}..{rows.max()}")
