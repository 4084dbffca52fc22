"""What a transaction log says about a new customer beyond its revenue: basket, timing, products.

Every function here sees a customer's rows in ``[ref, ref + window)`` only (``refs`` maps
customer_id -> reference date), the rule of :func:`utils.clv.features.build_clv_dataset`:

* :func:`basket_features`: lines, distinct and repeated products, unit prices, quantity per
  line, returns (from ``purchase_lines``);
* :func:`timing_features`: span between the first and last order, gaps, hour of day,
  weekend share (from ``purchases``);
* :func:`window_baskets`: what each customer bought in its window, as one text column
  (``window_basket``: a JSON object product -> net amount), so that a model can carry a
  product-level signal learnt from earlier customers (:mod:`utils.clv.products`) and still
  score one row per customer; :func:`parse_baskets` reads it back.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

BASKET_COLUMN = "window_basket"
EMPTY_BASKET = "{}"


def in_window(events: pd.DataFrame, refs: pd.Series, window_days: float,
              time_column: str = "timestamp") -> pd.DataFrame:
    """Rows of customers in ``refs`` with ref <= time < ref + window, plus ``offset_days``."""
    if window_days <= 0:
        raise ValueError(f"window_days must be > 0, got {window_days}")
    ref = events["customer_id"].map(refs)
    offset = (events[time_column] - ref) / pd.Timedelta(days=1)
    keep = ref.notna() & (offset >= 0) & (offset < window_days)
    out = events.loc[keep].copy()
    out["offset_days"] = offset[keep].to_numpy()
    return out


def basket_features(lines: pd.DataFrame, refs: pd.Series, window_days: float) -> pd.DataFrame:
    """Basket and product-mix features per customer (index: refs' customers; NaN where undefined)."""
    w = in_window(lines, refs, window_days)
    w["amount"] = w["quantity"] * w["unit_price"]
    bought, returned = w[w["quantity"] > 0], w[w["quantity"] < 0]
    g = bought.groupby("customer_id")
    orders_per_product = bought.groupby(["customer_id", "product"])["order_id"].nunique()
    spent = g["amount"].sum()
    feats = pd.DataFrame({
        "basket_lines": g.size(),
        "basket_distinct_products": g["product"].nunique(),
        # The same product in several orders of the first days: a refill, the mark of a regular.
        "basket_repeated_products": (orders_per_product > 1).groupby("customer_id").sum(),
        "basket_unit_price_mean": g["unit_price"].mean(),
        "basket_unit_price_median": g["unit_price"].median(),
        "basket_unit_price_max": g["unit_price"].max(),
        # Many units per line marks a reseller buying stock.
        "basket_quantity_per_line_mean": g["quantity"].mean(),
        "basket_quantity_per_line_max": g["quantity"].max(),
        "basket_top_line_share": g["amount"].max() / spent.where(spent > 0),
        "basket_return_lines": returned.groupby("customer_id").size(),
        "basket_return_value": -returned.groupby("customer_id")["amount"].sum(),
    })
    feats = feats.reindex(pd.Index(refs.index, name="customer_id"))
    counts = ["basket_lines", "basket_distinct_products", "basket_repeated_products",
              "basket_return_lines", "basket_return_value"]
    feats[counts] = feats[counts].fillna(0.0)
    feats["basket_lines_per_product"] = feats["basket_lines"] / feats["basket_distinct_products"].where(
        feats["basket_distinct_products"] > 0)
    return feats.astype("float64")


def timing_features(purchases: pd.DataFrame, refs: pd.Series, window_days: float) -> pd.DataFrame:
    """Purchase timing in the window: span first -> last order, mean gap, hour, weekend share, day-0 orders."""
    w = in_window(purchases, refs, window_days)
    w = w[w["amount"] > 0]  # a refund is no purchase occasion
    g = w.groupby("customer_id")
    span = g["offset_days"].max() - g["offset_days"].min()
    orders = g.size()
    hour = w["timestamp"].dt.hour + w["timestamp"].dt.minute / 60
    feats = pd.DataFrame({
        "timing_span_days": span,
        "timing_mean_gap_days": span / (orders - 1).where(orders > 1),
        "timing_mean_hour": hour.groupby(w["customer_id"]).mean(),
        "timing_weekend_share": (w["timestamp"].dt.weekday >= 5).groupby(w["customer_id"]).mean(),
        "timing_orders_first_day": (w["offset_days"] < 1).groupby(w["customer_id"]).sum(),
    })
    return feats.reindex(pd.Index(refs.index, name="customer_id")).astype("float64")


def window_baskets(lines: pd.DataFrame, refs: pd.Series, window_days: float) -> pd.Series:
    """customer_id -> JSON object {product: net amount bought in the window} (``"{}"``: nothing).

    Products are sorted and amounts rounded to cents, so equal baskets give equal text and
    reruns give identical files. A product returned in full counts with amount 0: it was chosen.
    """
    w = in_window(lines, refs, window_days)
    amount = (w["quantity"] * w["unit_price"]).groupby([w["customer_id"], w["product"]], sort=True).sum()
    frame = amount.clip(lower=0).round(2).rename("amount").reset_index()
    pairs = frame["product"].astype(str).map(json.dumps) + ":" + frame["amount"].map(lambda a: json.dumps(float(a)))
    text = "{" + pairs.groupby(frame["customer_id"], sort=False).agg(",".join) + "}"
    out = text.astype(object).reindex(pd.Index(refs.index, name="customer_id"))
    return out.fillna(EMPTY_BASKET).rename(BASKET_COLUMN)


def parse_baskets(baskets: pd.Series | np.ndarray | list) -> pd.DataFrame:
    """The long table (row, product, amount) of a ``window_basket`` column; row = position in it.

    A missing or empty basket gives no rows; text that is no JSON object raises a ValueError
    naming the row.
    """
    rows, products, amounts = [], [], []
    for position, text in enumerate(np.asarray(baskets, dtype=object)):
        if text is None or (isinstance(text, float) and np.isnan(text)):
            continue
        items = _cached_basket(text) if isinstance(text, str) else _parse_basket(text)
        if items is None:
            # Bad data, not a caller's wrong type: a ValueError, as for unreadable text.
            raise ValueError(
                f"{BASKET_COLUMN}: row {position} is not a JSON object of product -> amount: {text!r:.80}")
        rows.extend([position] * len(items[0]))
        products.extend(items[0])
        amounts.extend(items[1])
    return pd.DataFrame({"row": np.asarray(rows, dtype="int64"), "product": pd.Series(products, dtype=object),
                         "amount": np.asarray(amounts, dtype="float64")})


def _parse_basket(text) -> tuple[tuple, tuple] | None:
    """(products, amounts) of one basket's JSON text, or None if it is no JSON object."""
    try:
        basket = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return None
    return (tuple(basket.keys()), tuple(basket.values())) if isinstance(basket, dict) else None


# The same customers' baskets are read again in every CV fold, tuning trial, refit and
# prediction of 04: each distinct text is parsed once (immutable tuples, safe to share).
_CACHE_SIZE = 1 << 17


def _cached_basket(text: str) -> tuple[tuple, tuple] | None:
    # The cache is looked up by name at call time, not referenced: a model pickled by value
    # (utils.core.tracking.log_model) carries this function, never the cache's contents.
    cache = globals().setdefault("_parsed_baskets", {})
    if text not in cache:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[text] = _parse_basket(text)
    return cache[text]
