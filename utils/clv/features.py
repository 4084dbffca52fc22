"""Customer lifetime value data set: early-life features and a later revenue target, no leakage.

Each customer gets ONE reference point: the signup date, or the first purchase when
the signup is missing. Features see only events in ``[ref, ref + window)``; the target is
net revenue in ``[ref + window, ref + window + horizon)``. The two intervals do not
overlap, so nothing the target counts can reach a feature.

Besides the features of the four sources, every customer gets what its window's purchases
say to the field's standard model (the BG/NBD summary ``btyd_*``, :mod:`utils.clv.btyd`) and
their timing (``timing_*``); with the ``purchase_lines`` source also its basket (``basket_*``)
and the ``window_basket`` text column a product signal is learnt from (:mod:`utils.clv.basket`).
:func:`btyd_history` summarises the training customers' window AND horizon: it is only
for fitting BG/NBD, never a feature.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from utils.clv import gdp
from utils.clv.basket import BASKET_COLUMN, EMPTY_BASKET, basket_features, timing_features, window_baskets
from utils.clv.btyd import btyd_summary
from utils.clv.schema import CLV_CHANNELS, CLV_SCHEMAS, check_purchase_lines
from utils.core.contracts import DataContractError

TARGET = "clv_target"
# Descriptive columns carried along for people and for scoring; never model inputs.
ID_COLUMNS = ("customer_id", "ref_date", "country", "iso3", "gender")
REQUIRED_COLUMNS = {f"clv_{name}": tuple(schema) for name, schema in CLV_SCHEMAS.items()}
TIME_COLUMNS = {"clv_customers": "signup_date", "clv_web_actions": "timestamp",
                "clv_campaigns": "sent_at", "clv_purchases": "timestamp"}
MAX_LEVELS = 20  # cap on one-column-per-level features (actions, extra channels, genders)


def build_clv_dataset(
    customers: pd.DataFrame,
    web_actions: pd.DataFrame,
    campaigns: pd.DataFrame,
    purchases: pd.DataFrame,
    feature_window_days: int,
    horizon_days: int,
    as_of: pd.Timestamp | None = None,
    purchase_lines: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Training rows (features + ``clv_target``), scoring rows (features only) and a report.

    ``as_of`` is the end of the observed data (default: the latest event). Customers whose
    ``ref + window + horizon`` lies beyond it cannot have a true target: they are left out
    of training and counted; those whose feature window is complete go to ``score_df``.
    ``purchase_lines`` (optional: what each purchase held) adds the basket features; without
    it (or when it is empty) they are missing and every ``window_basket`` is empty.
    """
    sources = _checked_sources(customers, web_actions, campaigns, purchases)
    lines = None
    if purchase_lines is not None and len(purchase_lines):
        lines = check_purchase_lines(purchase_lines, sources["clv_purchases"], "clv_purchase_lines")
    if feature_window_days <= 0 or horizon_days <= 0:
        raise ValueError(f"feature_window_days and horizon_days must be > 0, got {feature_window_days}, {horizon_days}")
    window, horizon = pd.Timedelta(days=feature_window_days), pd.Timedelta(days=horizon_days)
    as_of = latest_event(*sources.values()) if as_of is None else pd.Timestamp(as_of)

    refs = reference_dates(sources["clv_customers"], sources["clv_purchases"])
    status = customer_status(refs, as_of, window, horizon)
    ready = refs[status.isin(["train", "score"])]
    features = _features(ready, sources, window)
    features = _log_features(features, ready, sources["clv_purchases"], lines, feature_window_days)
    target = _window_sum(sources["clv_purchases"], "timestamp", "amount", ready, window, window + horizon)
    features[TARGET] = features["customer_id"].map(target).fillna(0.0)

    is_train = features["customer_id"].map(status).eq("train")
    train_df = features[is_train].reset_index(drop=True)
    score_df = features[~is_train].drop(columns=TARGET).reset_index(drop=True)
    report = _report(sources, status, train_df, score_df, feature_window_days, horizon_days, as_of)
    report["purchase_lines"] = 0 if lines is None else len(lines)
    return train_df, score_df, report


def btyd_history(train_df: pd.DataFrame, purchases: pd.DataFrame, feature_window_days: int,
                 horizon_days: int) -> pd.DataFrame:
    """The BG/NBD summary of each training customer over its window AND horizon (customer_id, ``btyd_*``).

    It holds what the target holds (the horizon's purchases), so it is never a feature: it only
    lets BG/NBD + Gamma-Gamma be fitted on the training customers' observed lives
    (``BTYDRegressor(fit_on="history")``), as the supervised models learn from their targets.
    """
    for frame, name, columns in ((train_df, "clv_train", ("customer_id", "ref_date")),
                                 (purchases, "clv_purchases", ("customer_id", "timestamp", "amount"))):
        for column in columns:
            if column not in frame.columns:
                raise DataContractError(name, column, "missing: cannot summarise the training customers' lives")
    checked = purchases.assign(timestamp=pd.to_datetime(purchases["timestamp"]))
    refs = pd.Series(pd.to_datetime(train_df["ref_date"]).to_numpy(), index=train_df["customer_id"].to_numpy())
    return btyd_summary(checked, refs, feature_window_days + horizon_days).reset_index()


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The model inputs of a CLV data set: every numeric column but the id and the target."""
    skip = set(ID_COLUMNS) | {TARGET}
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]


def reference_dates(customers: pd.DataFrame, purchases: pd.DataFrame) -> pd.Series:
    """customer_id -> reference date: signup, else first purchase, else NaT."""
    first_purchase = purchases.groupby("customer_id")["timestamp"].min()
    signup = customers.set_index("customer_id")["signup_date"]
    return signup.fillna(signup.index.to_series().map(first_purchase)).rename("ref_date")


def customer_status(refs: pd.Series, as_of: pd.Timestamp, window: pd.Timedelta, horizon: pd.Timedelta) -> pd.Series:
    """train (full horizon observed), score (full window only), window_incomplete, or no_reference."""
    status = pd.Series("window_incomplete", index=refs.index, dtype=object)
    status[refs + window <= as_of] = "score"
    status[refs + window + horizon <= as_of] = "train"
    status[refs.isna()] = "no_reference"
    return status


def earliest_event(customers, web_actions, campaigns, purchases) -> pd.Timestamp:
    """The first timestamp anywhere in the sources: where the data start (who came before is unseen)."""
    stamps = [customers["signup_date"].min(), web_actions["timestamp"].min(),
              campaigns["sent_at"].min(), purchases["timestamp"].min()]
    stamps = [s for s in stamps if pd.notna(s)]
    if not stamps:
        raise DataContractError("clv sources", None, "no timestamps at all: cannot tell where the data start")
    return min(stamps)


def latest_event(customers, web_actions, campaigns, purchases) -> pd.Timestamp:
    """The last timestamp anywhere in the sources: the default end of observed data."""
    stamps = [customers["signup_date"].max(), web_actions["timestamp"].max(),
              campaigns["sent_at"].max(), purchases["timestamp"].max()]
    stamps = [s for s in stamps if pd.notna(s)]
    if not stamps:
        raise DataContractError("clv sources", None, "no timestamps at all: cannot tell where the data ends")
    return max(stamps)


# --- inputs -----------------------------------------------------------------------------------


_NO_LINES = pd.DataFrame({"customer_id": pd.Series(dtype="int64"), "order_id": pd.Series(dtype=object),
                          "timestamp": pd.Series(dtype="datetime64[ns]"), "product": pd.Series(dtype=object),
                          "quantity": pd.Series(dtype="float64"), "unit_price": pd.Series(dtype="float64")})


def _checked_sources(customers, web_actions, campaigns, purchases) -> dict[str, pd.DataFrame]:
    sources = {"clv_customers": customers, "clv_web_actions": web_actions,
               "clv_campaigns": campaigns, "clv_purchases": purchases}
    checked = {}
    for name, frame in sources.items():
        for column in REQUIRED_COLUMNS[name]:
            if column not in frame.columns:
                raise DataContractError(name, column, "missing")
        frame = frame.copy()
        time_column = TIME_COLUMNS[name]
        parsed = pd.to_datetime(frame[time_column], errors="coerce")
        bad = parsed.isna() & frame[time_column].notna()
        if bad.any():
            raise DataContractError(name, time_column, f"{int(bad.sum())} values are not timestamps")
        frame[time_column] = parsed
        if name != "clv_customers" and frame[time_column].isna().any():
            raise DataContractError(name, time_column, f"{int(frame[time_column].isna().sum())} events have no time")
        checked[name] = frame
    if checked["clv_customers"]["customer_id"].duplicated().any():
        raise DataContractError("clv_customers", "customer_id", "duplicated ids")
    if checked["clv_purchases"]["amount"].isna().any():
        raise DataContractError("clv_purchases", "amount", "missing amounts")
    return checked


# --- features ---------------------------------------------------------------------------------


def _in_window(events: pd.DataFrame, time_column: str, refs: pd.Series,
               start: pd.Timedelta, end: pd.Timedelta) -> pd.DataFrame:
    """Events of the given customers with ref + start <= time < ref + end, plus their offset."""
    ref = events["customer_id"].map(refs)
    keep = (events[time_column] >= ref + start) & (events[time_column] < ref + end)
    out = events[keep].copy()
    out["offset_days"] = (out[time_column] - ref[keep]) / pd.Timedelta(days=1)
    out["offset_day"] = np.floor(out["offset_days"])  # 0 = the reference day's first 24 hours
    return out


def _window_sum(events, time_column, value_column, refs, start, end) -> pd.Series:
    return _in_window(events, time_column, refs, start, end).groupby("customer_id")[value_column].sum()


def _features(refs: pd.Series, sources: dict, window: pd.Timedelta) -> pd.DataFrame:
    customers = sources["clv_customers"].set_index("customer_id").loc[refs.index]
    out = pd.DataFrame({"customer_id": refs.index.astype("int64"), "ref_date": refs.to_numpy()})
    out["country"] = customers["country"].to_numpy()
    out["gender"] = customers["gender"].to_numpy()
    gdp = _gdp_columns(out["country"])
    out.insert(3, "iso3", gdp["iso3"])
    out["age"] = pd.to_numeric(customers["age"], errors="coerce").astype("float64").to_numpy()
    out["gdp_per_capita"] = gdp["gdp_per_capita"]
    # Time of day and weekday of the first contact: a business buys in office hours.
    out["ref_hour"] = (out["ref_date"].dt.hour + out["ref_date"].dt.minute / 60).astype("float64")
    out["ref_weekday"] = out["ref_date"].dt.weekday.astype("float64")
    out = pd.concat([out, _gender_columns(out["gender"])], axis=1)
    zero = pd.Timedelta(0)
    parts = [
        _web_features(_in_window(sources["clv_web_actions"], "timestamp", refs, zero, window)),
        _campaign_features(_in_window(sources["clv_campaigns"], "sent_at", refs, zero, window)),
        _purchase_features(_in_window(sources["clv_purchases"], "timestamp", refs, zero, window)),
    ]
    for part in parts:
        part = part.reindex(out["customer_id"])
        # No event in the window is a real zero for counts and sums; timings and ratios stay missing.
        counts = [c for c in part.columns if not _undefined_without_events(c)]
        part[counts] = part[counts].fillna(0.0)
        out = pd.concat([out, part.reset_index(drop=True).astype("float64")], axis=1)
    return out


def _log_features(out: pd.DataFrame, refs: pd.Series, purchases: pd.DataFrame, lines: pd.DataFrame | None,
                  window_days: int) -> pd.DataFrame:
    """The BG/NBD summary, timing and basket features of the window, and its basket text."""
    parts = [btyd_summary(purchases, refs, window_days), timing_features(purchases, refs, window_days)]
    if lines is not None:
        parts.append(basket_features(lines, refs, window_days))
        baskets = window_baskets(lines, refs, window_days)
    else:
        # No product lines at all: the basket is unknown, not empty-handed.
        parts.append(basket_features(_NO_LINES, refs, window_days) * np.nan)
        baskets = pd.Series(EMPTY_BASKET, index=refs.index, dtype=object)
    extra = pd.concat(parts, axis=1).reindex(out["customer_id"]).reset_index(drop=True)
    extra[BASKET_COLUMN] = baskets.reindex(out["customer_id"]).to_numpy()
    return pd.concat([out, extra], axis=1)


def _undefined_without_events(column: str) -> bool:
    return column.startswith(("days_to_", "window_last_")) or "_mean_" in column or "_per_" in column


def _web_features(web: pd.DataFrame) -> pd.DataFrame:
    grouped = web.groupby("customer_id")
    feats = pd.DataFrame({
        "web_actions": grouped.size(),
        "web_pages": grouped["page"].nunique(),
        "web_active_days": grouped["offset_day"].nunique(),
        "days_to_first_web_action": grouped["offset_days"].min(),
    })
    return feats.join(_level_counts(web, "action", "web_"))


def _campaign_features(campaigns: pd.DataFrame) -> pd.DataFrame:
    feats = pd.DataFrame({"campaigns": campaigns.groupby("customer_id").size()})
    counts = _level_counts(campaigns, "channel", "campaigns_", always=CLV_CHANNELS)
    return feats.join(counts, how="outer")


def _purchase_features(purchases: pd.DataFrame) -> pd.DataFrame:
    grouped = purchases.sort_values("timestamp", kind="stable").groupby("customer_id")
    feats = pd.DataFrame({
        "window_revenue": grouped["amount"].sum(),
        "window_orders": grouped.size(),
        "window_items": grouped["n_items"].sum(),
        "window_max_order": grouped["amount"].max(),
        "window_first_order": grouped["amount"].first(),
        "window_refunds": (purchases["amount"] < 0).groupby(purchases["customer_id"]).sum(),
        "window_purchase_days": grouped["offset_day"].nunique(),
        "days_to_first_purchase": grouped["offset_days"].min(),
        "window_last_purchase_day": grouped["offset_days"].max(),
    })
    if "n_products" in purchases.columns:
        feats["window_products"] = grouped["n_products"].sum()
        # Many units of each product marks a reseller, who tends to come back.
        products = feats["window_products"].where(feats["window_products"] > 0)
        feats["window_items_per_product"] = feats["window_items"] / products
    feats["window_mean_basket"] = feats["window_revenue"] / feats["window_orders"]
    feats["window_mean_item_price"] = feats["window_revenue"] / feats["window_items"].where(feats["window_items"] > 0)
    return feats


def _level_counts(events: pd.DataFrame, column: str, prefix: str, always: tuple[str, ...] = ()) -> pd.DataFrame:
    """One count column per level (the most frequent ones, plus ``always``)."""
    levels = list(always) + [v for v in events[column].dropna().astype(str).value_counts().index if v not in always]
    levels = levels[: max(MAX_LEVELS, len(always))]
    values = events[column].astype(str)
    counts = pd.DataFrame(
        {f"{prefix}{_slug(level)}": (values == level).groupby(events["customer_id"]).sum() for level in levels},
        index=pd.Index(events["customer_id"].unique(), name="customer_id"),
    )
    return counts


def _gender_columns(gender: pd.Series) -> pd.DataFrame:
    levels = gender.dropna().astype(str).value_counts().index[:MAX_LEVELS]
    return pd.DataFrame({f"gender_{_slug(g)}": (gender.astype(str) == g).astype("float64") for g in levels},
                        index=gender.index)


def _gdp_columns(country: pd.Series) -> pd.DataFrame:
    names = pd.Series(country.dropna().unique())
    iso3 = dict(zip(names, names.map(gdp.country_to_iso3)))
    table = gdp.gdp_table().drop_duplicates("iso3").set_index("iso3")["gdp_per_capita"]
    codes = country.map(iso3)
    return pd.DataFrame({"iso3": codes.astype(object), "gdp_per_capita": codes.map(table).astype("float64")})


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(text).lower()).strip("_") or "blank"


# --- report -----------------------------------------------------------------------------------


def _report(sources, status, train_df, score_df, window_days, horizon_days, as_of) -> dict:
    counts = status.value_counts()
    rows = pd.concat([train_df, score_df], ignore_index=True)
    has_country = rows["country"].notna()
    unmatched = rows.loc[has_country & rows["iso3"].isna(), "country"].value_counts()
    no_gdp = rows.loc[rows["iso3"].notna() & rows["gdp_per_capita"].isna(), "country"].value_counts()
    known = set(sources["clv_customers"]["customer_id"])
    return {
        "feature_window_days": int(window_days),
        "horizon_days": int(horizon_days),
        "as_of": str(as_of),
        "data_start": str(earliest_event(*sources.values())),
        "customers": len(status),
        "train_rows": len(train_df),
        "score_rows": len(score_df),
        "excluded_from_training": int(len(status) - len(train_df)),
        "excluded_no_full_horizon": int(counts.get("score", 0) + counts.get("window_incomplete", 0)),
        "excluded_window_incomplete": int(counts.get("window_incomplete", 0)),
        "excluded_no_reference_date": int(counts.get("no_reference", 0)),
        "train_zero_target_share": float((train_df[TARGET] <= 0).mean()) if len(train_df) else None,
        "train_ref_dates": [str(train_df["ref_date"].min()), str(train_df["ref_date"].max())] if len(train_df) else [],
        "customers_country_missing": int((~has_country).sum()),
        "customers_country_unmatched": int(unmatched.sum()),
        "countries_unmatched": {str(k): int(v) for k, v in unmatched.items()},
        "customers_country_without_gdp": int(no_gdp.sum()),
        "countries_without_gdp": {str(k): int(v) for k, v in no_gdp.items()},
        "events_of_unknown_customers": {
            name: int((~sources[name]["customer_id"].isin(known)).sum())
            for name in ("clv_web_actions", "clv_campaigns", "clv_purchases")
        },
        "features": feature_columns(train_df if len(train_df) else score_df),
    }
