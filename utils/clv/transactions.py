"""Real transaction logs (one row per invoice line) turned into the CLV sources.

A retailer's export rarely has web actions, campaigns or demographics: what it has is
invoice lines. ``sources_from_transactions`` maps such a table onto the same four frames
the synthetic generator writes, so ``build_clv_dataset`` runs unchanged on either;
``purchase_lines_from_transactions`` keeps what each purchase held (the fifth source),
which summing lines into purchases would lose.

A second real log ships with the ``lifetimes`` package: CDNOW (69,659 transactions of
23,570 customers, 1997-98). :func:`cdnow_transactions` reads it from the installed package
(no network) as invoice lines in :data:`CDNOW_COLUMNS`, so it takes the very same route.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pandas as pd

from utils.clv.schema import PURCHASE_LINES_SCHEMA, TRANSACTION_FIELDS
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


def transaction_sources(tx: pd.DataFrame, columns: dict[str, str],
                        file: str = "<transactions>") -> tuple[dict[str, pd.DataFrame], dict]:
    """The five CLV sources of a table of invoice lines (keys as the synthetic shop's) and the report."""
    customers, web, campaigns, purchases, report = sources_from_transactions(tx, columns, file)
    lines = purchase_lines_from_transactions(tx, columns, file)
    report = {**report, "purchase_lines": len(lines), "products": int(lines["product"].nunique()),
              "return_lines": int((lines["quantity"] < 0).sum())}
    return {"customers": customers, "web_actions": web, "campaigns": campaigns, "purchases": purchases,
            "purchase_lines": lines}, report


def purchase_lines_from_transactions(tx: pd.DataFrame, columns: dict[str, str],
                                     file: str = "<transactions>") -> pd.DataFrame:
    """The ``purchase_lines`` source: every invoice line of a known customer, as the purchases see it.

    Same column mapping, parsing, errors and exclusion of unknown customers as
    :func:`sources_from_transactions`; each line takes its invoice's timestamp (the first
    line's, as the purchase does), so the lines of an order add up to its amount and fall in
    exactly the windows its purchase falls in.
    """
    lines = _mapped_lines(tx, columns, file)
    known = lines.loc[~(lines["customer"].isna() | (lines["customer"] == 0))]
    out = pd.DataFrame({
        "customer_id": known["customer"].astype("int64").to_numpy(),
        "order_id": known["invoice"].astype(str).to_numpy(dtype=object),
        "timestamp": known["timestamp"].to_numpy(),
        "product": known["product"].astype(str).to_numpy(dtype=object),
        "quantity": known["quantity"].to_numpy(dtype="float64"),
        "unit_price": known["unit_price"].to_numpy(dtype="float64"),
    })
    out["timestamp"] = out.groupby(["customer_id", "order_id"], sort=False)["timestamp"].transform("min")
    out = out.sort_values(["timestamp", "customer_id", "order_id"], kind="stable").reset_index(drop=True)
    return out[list(PURCHASE_LINES_SCHEMA)]


# --- CDNOW ------------------------------------------------------------------------------------

CDNOW_COLUMNS = {"invoice": "invoice", "product": "product", "quantity": "cds", "timestamp": "date",
                 "unit_price": "unit_price", "customer": "customer_id", "country": "country"}


def cdnow_path() -> Path:
    """CDNOW_master.txt inside the installed ``lifetimes`` package; FileNotFoundError if absent."""
    try:
        path = Path(str(files("lifetimes.datasets").joinpath("CDNOW_master.txt")))
    except ModuleNotFoundError:
        raise FileNotFoundError("CDNOW_master.txt ships with the lifetimes package, which is not installed") from None
    if not path.is_file():
        raise FileNotFoundError(f"CDNOW_master.txt is not in the lifetimes package ({path})")
    return path


def cdnow_transactions(path: str | Path | None = None) -> pd.DataFrame:
    """The CDNOW master file as invoice lines (columns of :data:`CDNOW_COLUMNS`).

    One row of the file (customer, yyyymmdd, CDs, dollars) is one invoice of one line: the
    file names no product ("CD" for all), unit price = dollars / CDs, no country, no time of day.
    """
    source = Path(path) if path else cdnow_path()
    raw = pd.read_csv(source, sep=r"\s+", header=None, skiprows=1, names=["customer_id", "date", "cds", "dollars"],
                      dtype={"date": str})
    cds = as_number(raw["cds"], str(source), "number_of_cds")
    dollars = as_number(raw["dollars"], str(source), "dollar_value")
    if (cds <= 0).any():
        raise DataContractError(str(source), "number_of_cds", f"{int((cds <= 0).sum())} row(s) with no CD bought")
    date = pd.to_datetime(raw["date"], format="%Y%m%d", errors="coerce")
    if date.isna().any():
        raise DataContractError(str(source), "date", f"{int(date.isna().sum())} value(s) are not yyyymmdd dates")
    return pd.DataFrame({
        "invoice": [f"T{i:06d}" for i in range(len(raw))],
        "product": "CD",
        "cds": cds,
        "date": date.astype("datetime64[ns]"),
        "unit_price": dollars / cds,
        "customer_id": raw["customer_id"].astype("int64"),
        "country": pd.Series([None] * len(raw), dtype=object),
    })


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
