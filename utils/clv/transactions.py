"""Real transaction logs (one row per invoice line) turned into the four CLV sources.

A retailer's export rarely has web actions, campaigns or demographics: what it has is
invoice lines. ``sources_from_transactions`` maps such a table onto the same four frames
the synthetic generator writes, so ``build_clv_dataset`` runs unchanged on either.
"""
from __future__ import annotations

import pandas as pd

from utils.clv.schema import TRANSACTION_FIELDS
from utils.core.contracts import DataContractError, as_datetime, as_number

CUSTOMER_COLUMNS = ("customer_id", "signup_date", "age", "gender", "country")
WEB_ACTION_COLUMNS = ("customer_id", "timestamp", "page", "action")
CAMPAIGN_COLUMNS = ("customer_id", "campaign_id", "channel", "sent_at")
PURCHASE_COLUMNS = ("customer_id", "order_id", "timestamp", "amount", "n_items", "n_products")


def sources_from_transactions(
    tx: pd.DataFrame, columns: dict[str, str], file: str = "<transactions>"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Customers, web actions, campaigns and purchases from a table of invoice lines.

    ``columns`` maps each of :data:`TRANSACTION_FIELDS` to the user's column name.
    Lines whose customer is 0 or missing belong to no one: they are excluded and counted.
    A purchase is one invoice of one customer: amount = sum(quantity * unit_price) (returns,
    with negative quantities, make it net), n_items = sum(quantity), n_products = distinct
    products. signup_date is the first purchase; age and gender are unknown (missing).
    """
    lines = _mapped_lines(tx, columns, file)
    unknown = lines["customer"].isna() | (lines["customer"] == 0)
    known = lines.loc[~unknown].copy()
    known["customer"] = known["customer"].astype("int64")
    known["line_amount"] = known["quantity"] * known["unit_price"]

    purchases = _purchases(known)
    customers = _customers(known, purchases)
    report = {
        "file": str(file),
        "lines": len(lines),
        "lines_unknown_customer": int(unknown.sum()),
        "invoices_unknown_customer": int(lines.loc[unknown, "invoice"].nunique()),
        "customers": len(customers),
        "purchases": len(purchases),
        "refund_purchases": int((purchases["amount"] < 0).sum()),
        "customers_several_countries": int((known.groupby("customer")["country"].nunique() > 1).sum()),
        "invoices_several_customers": int((known.groupby("invoice")["customer"].nunique() > 1).sum()),
        "first_timestamp": str(known["timestamp"].min()) if len(known) else None,
        "last_timestamp": str(known["timestamp"].max()) if len(known) else None,
    }
    return customers, _empty(WEB_ACTION_COLUMNS, "timestamp"), _empty(CAMPAIGN_COLUMNS, "sent_at"), purchases, report


def _mapped_lines(tx: pd.DataFrame, columns: dict[str, str], file: str) -> pd.DataFrame:
    """The user's columns under our names, with numbers and timestamps parsed (or a clear error)."""
    for field in TRANSACTION_FIELDS:
        if field not in columns:
            raise DataContractError(file, field, f"no column of the file is mapped to '{field}'")
        if columns[field] not in tx.columns:
            raise DataContractError(file, columns[field], f"missing (mapped to '{field}')")
    lines = pd.DataFrame({field: tx[columns[field]].to_numpy() for field in TRANSACTION_FIELDS})
    # The contracts' own coercion: an empty cell is missing, text that is no number is an error.
    for field in ("quantity", "unit_price", "customer"):
        lines[field] = as_number(lines[field], file, columns[field])
    lines["timestamp"] = as_datetime(lines["timestamp"], file, columns["timestamp"])
    for field in ("quantity", "unit_price", "timestamp"):
        empty = int(lines[field].isna().sum())
        if empty:
            raise DataContractError(file, columns[field], f"{empty} line(s) have no value")
    if lines["customer"].notna().any() and (lines["customer"].dropna() % 1 != 0).any():
        raise DataContractError(file, columns["customer"], "customer ids must be whole numbers")
    return lines


def _purchases(known: pd.DataFrame) -> pd.DataFrame:
    orders = (
        known.groupby(["customer", "invoice"], sort=False)
        .agg(
            timestamp=("timestamp", "min"),
            amount=("line_amount", "sum"),
            n_items=("quantity", "sum"),
            n_products=("product", "nunique"),
        )
        .reset_index()
        .rename(columns={"customer": "customer_id", "invoice": "order_id"})
    )
    orders["order_id"] = orders["order_id"].astype(str)
    orders["n_items"] = orders["n_items"].round().astype("int64")
    orders["n_products"] = orders["n_products"].astype("int64")
    orders = orders.sort_values(["timestamp", "customer_id", "order_id"], kind="stable").reset_index(drop=True)
    return orders[list(PURCHASE_COLUMNS)]


def _customers(known: pd.DataFrame, purchases: pd.DataFrame) -> pd.DataFrame:
    first_purchase = purchases.groupby("customer_id")["timestamp"].min()
    # A customer seen under several countries gets the one most of their lines carry.
    country = (
        known.groupby(["customer", "country"], dropna=False).size().rename("lines").reset_index()
        .sort_values(["customer", "lines", "country"], ascending=[True, False, True], kind="stable")
        .drop_duplicates("customer").set_index("customer")["country"]
    )
    customers = pd.DataFrame({"customer_id": first_purchase.index.astype("int64"),
                              "signup_date": first_purchase.to_numpy()})
    customers["age"] = pd.array([pd.NA] * len(customers), dtype="Int64")
    customers["gender"] = pd.Series([None] * len(customers), dtype=object)
    customers["country"] = customers["customer_id"].map(country).astype(object)
    return customers[list(CUSTOMER_COLUMNS)]


def _empty(columns: tuple[str, ...], time_column: str) -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame[time_column] = frame[time_column].astype("datetime64[ns]")
    return frame
