"""The four customer-lifetime-value sources (customers, web actions, campaigns, purchases),
the optional fifth (``purchase_lines``: what each purchase held) and a retailer's transaction
lines: their columns, readers and checks.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from utils.clv import gdp
from utils.core.contracts import (
    WRITTEN_AT,
    ContractReport,
    DataContractError,
    DateSpec,
    as_datetime,
    as_number,
    as_whole_number,
    check_kind,
    match_headers,
    report_notes,
    require_columns,
    require_not_all_null,
    require_rows,
    set_dates,
    warn_extra_columns,
    warn_implausible_dates,
)
from utils.core.io import read_table

# kind per column: id (whole number), datetime, number, integer, text
CLV_SCHEMAS: dict[str, dict[str, str]] = {
    "customers": {"customer_id": "id", "signup_date": "datetime", "age": "number", "gender": "text", "country": "text"},
    "web_actions": {"customer_id": "id", "timestamp": "datetime", "page": "text", "action": "text"},
    "campaigns": {"customer_id": "id", "campaign_id": "text", "channel": "text", "sent_at": "datetime"},
    "purchases": {"customer_id": "id", "order_id": "text", "timestamp": "datetime", "amount": "number",
                  "n_items": "integer"},
}
# Columns that may not hold a single empty value (age, gender, country, signup may be unknown).
CLV_NOT_NULL = {
    "customers": ("customer_id",),
    "web_actions": ("customer_id", "timestamp"),
    "campaigns": ("customer_id", "channel", "sent_at"),
    "purchases": ("customer_id", "order_id", "timestamp", "amount"),
}
# Known extras, not warned about: products per order, which a transaction log yields.
CLV_OPTIONAL = {"purchases": ("n_products",)}
CLV_MAY_BE_EMPTY = ("web_actions", "campaigns")  # a retailer's transaction export has neither
CLV_CHANNELS = ("email", "sms", "push", "social")
TRANSACTION_FIELDS = ("invoice", "product", "quantity", "timestamp", "unit_price", "customer", "country")
# The optional fifth source: one row per product line of a purchase. Each line carries its order's
# timestamp, so a line falls in a customer's window exactly when its purchase does; the lines of an
# order add up to the purchase's amount (quantity * unit_price, negative quantity = returned).
PURCHASE_LINES_SCHEMA: dict[str, str] = {"customer_id": "id", "order_id": "text", "timestamp": "datetime",
                                         "product": "text", "quantity": "number", "unit_price": "number"}


# --- reading ----------------------------------------------------------------------------------


def clv_date_spec(date_format: str = "", dayfirst: bool = False) -> DateSpec:
    """How the four CLV files write their dates, from the 00_data parameters of that name."""
    return DateSpec(date_format, dayfirst, "clv_date_format", "clv_dayfirst")


def tx_date_spec(date_format: str = "", dayfirst: bool = False) -> DateSpec:
    """How a transactions file writes its timestamps, from the 00_data parameters of that name."""
    return DateSpec(date_format, dayfirst, "tx_date_format", "tx_dayfirst")


def read_clv_sources(paths_by_source: Mapping[str, str | Path | None], dates: DateSpec | None = None,
                     sep: str = "auto") -> dict[str, pd.DataFrame]:
    """customers, web_actions, campaigns, purchases from user files, in the contract's dtypes.

    customers and purchases are required; an empty or absent path for web_actions or
    campaigns gives an empty frame (a shop's export often has neither). Headers that differ
    from the schema's only in case or surrounding spaces are matched and counted.
    """
    frames = {}
    for name in CLV_SCHEMAS:
        path = paths_by_source.get(name)
        if not path:
            if name in ("customers", "purchases"):
                raise DataContractError(f"<{name}>", None, f"no file given for the CLV source '{name}'")
            frames[name] = empty_clv_frame(name)
            continue
        frame = match_headers(read_table(path, sep), CLV_SCHEMAS[name], str(path))
        frames[name] = coerce_clv(name, frame, str(path), dates)
    return frames


def read_transactions(path: str | Path, columns: Mapping[str, str], dates: DateSpec | None = None,
                      sep: str = "auto") -> pd.DataFrame:
    """A table of invoice lines with its timestamp column parsed (``columns``: our field -> the user's column).

    The user's column names are matched after trimming and case-folding (counted).
    """
    frame = match_headers(read_table(path, sep), [c for c in columns.values() if c], str(path))
    stamp = columns.get("timestamp")
    if stamp and stamp in frame.columns:
        set_dates(frame, stamp, as_datetime(frame[stamp], str(path), stamp, dates or tx_date_spec()))
    return frame


def coerce_clv(name: str, frame: pd.DataFrame, file: str, dates: DateSpec | None = None) -> pd.DataFrame:
    """One CLV source in the contract's dtypes; columns outside the schema are kept as they are."""
    out = frame.copy()
    for column, kind in CLV_SCHEMAS[name].items():
        if column not in out.columns:
            continue
        values = out[column]
        if kind == "datetime":
            set_dates(out, column, as_datetime(values, file, column, dates or clv_date_spec()))
        elif kind == "number":
            out[column] = as_number(values, file, column)
        elif kind in ("id", "integer"):
            parsed = as_whole_number(values, file, column)
            out[column] = parsed.astype("int64") if parsed.notna().all() else parsed.astype("Int64")
        else:
            out[column] = values.astype(object).where(values.notna(), None)
    if name == "customers" and "age" in out.columns:
        out["age"] = out["age"].round().astype("Int64")
    return out


def empty_clv_frame(name: str) -> pd.DataFrame:
    dtypes = {"id": "int64", "datetime": "datetime64[ns]", "number": "float64", "integer": "int64", "text": object}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[k]) for c, k in CLV_SCHEMAS[name].items()})


# --- CLV sources ------------------------------------------------------------------------------


def validate_clv_sources(
    sources: Mapping[str, pd.DataFrame], files: Mapping[str, str], as_of: pd.Timestamp | None = None,
) -> ContractReport:
    """Check customers, web_actions, campaigns and purchases (keys as in :data:`CLV_SCHEMAS`)."""
    report = ContractReport("clv sources")
    checked = {}
    for name in CLV_SCHEMAS:
        file = str(files.get(name, name))
        if name not in sources:
            raise DataContractError(file, None, f"the CLV source '{name}' is missing")
        checked[name] = _check_clv_frame(sources[name], name, file, report, as_of)
    report.rows = len(checked["customers"])
    purchases = checked["purchases"]
    if not (purchases["amount"] > 0).any():
        raise DataContractError(str(files.get("purchases", "purchases")), "amount",
                                f"no purchase with a positive amount ({len(purchases):,} row(s), all refunds or zero): "
                                f"there is no spend to learn from")
    customers = checked["customers"]
    customer_file = str(files.get("customers", "customers"))
    duplicated = customers["customer_id"].duplicated()
    if duplicated.any():
        raise DataContractError(customer_file, "customer_id", f"{int(duplicated.sum())} duplicated id(s), "
                                                             f"e.g. {customers['customer_id'][duplicated].iloc[0]:.0f}")
    known = set(customers["customer_id"])
    for name in ("web_actions", "campaigns", "purchases"):
        orphans = int((~checked[name]["customer_id"].isin(known)).sum())
        report.warn(f"unknown_customers.{name}", orphans,
                    f"{files.get(name, name)}: {orphans} row(s) of customers absent from the customers file")
    _warn_clv_values(report, sources, checked, files)
    return report


def _check_clv_frame(df: pd.DataFrame, name: str, file: str, report: ContractReport,
                     as_of: pd.Timestamp | None) -> pd.DataFrame:
    schema = CLV_SCHEMAS[name]
    report_notes(report, df)
    if name not in CLV_MAY_BE_EMPTY:
        require_rows(df, file)
    require_columns(df, schema, file)
    checked = pd.DataFrame({c: check_kind(df[c], kind, file, c) for c, kind in schema.items()})
    for column in CLV_NOT_NULL[name]:
        missing = int(checked[column].isna().sum())
        if missing:
            raise DataContractError(file, column, f"{missing} row(s) have no value")
    warn_extra_columns(report, df, (*schema, *CLV_OPTIONAL.get(name, ())))
    for column, kind in schema.items():
        if kind == "datetime":
            warn_implausible_dates(report, checked[column], f"{name}.{column}", as_of, df.attrs.get(WRITTEN_AT))
    return checked


def _warn_clv_values(report: ContractReport, sources: Mapping[str, pd.DataFrame],
                     checked: Mapping[str, pd.DataFrame], files: Mapping[str, str]) -> None:
    purchases = checked["purchases"]
    refunds = int((purchases["amount"] < 0).sum())
    report.warn("refunds", refunds, f"{files.get('purchases', 'purchases')}: {refunds} refund(s) (negative amounts)")
    channels = sources["campaigns"]["channel"].dropna().astype(str)
    odd = channels[~channels.isin(CLV_CHANNELS)]
    report.warn("unseen_levels.channel", len(odd),
                f"{files.get('campaigns', 'campaigns')}: {len(odd)} campaign(s) on channels other than "
                f"{'/'.join(CLV_CHANNELS)}: {', '.join(sorted(odd.unique())[:5])}")
    countries = sources["customers"]["country"]
    _, found = gdp.attach_gdp(pd.DataFrame({"country": countries}))
    report.warn("countries_unmatched", found["unmatched_rows"],
                f"{files.get('customers', 'customers')}: {found['unmatched_rows']} customer(s) with a country that "
                f"has no ISO code: {', '.join(list(found['unmatched_countries'])[:5])}")
    report.warn("countries_without_gdp", found["without_gdp_rows"],
                f"{files.get('customers', 'customers')}: {found['without_gdp_rows']} customer(s) in countries "
                f"without GDP data: {', '.join(list(found['without_gdp_countries'])[:5])}")


# --- transaction logs -------------------------------------------------------------------------


def validate_transactions(df: pd.DataFrame, columns: Mapping[str, str], file: str,
                          as_of: pd.Timestamp | None = None) -> ContractReport:
    """Check a table of invoice lines; ``columns`` maps our field names to the user's column names."""
    report = ContractReport(str(file), rows=len(df))
    report_notes(report, df)
    require_rows(df, file)
    for our_name in TRANSACTION_FIELDS:
        if our_name not in columns:
            raise DataContractError(file, our_name, f"no column of the file is mapped to '{our_name}'")
        if columns[our_name] not in df.columns:
            raise DataContractError(file, columns[our_name], f"missing (it should hold the {our_name})")
    col = dict(columns)
    require_not_all_null(df, [col[f] for f in ("invoice", "quantity", "timestamp", "unit_price")], file)
    quantity = as_number(df[col["quantity"]], file, col["quantity"])
    price = as_number(df[col["unit_price"]], file, col["unit_price"])
    customer = as_whole_number(df[col["customer"]], file, col["customer"])
    stamps = as_datetime(df[col["timestamp"]], file, col["timestamp"], tx_date_spec())
    if stamps.isna().any():
        raise DataContractError(file, col["timestamp"], f"{int(stamps.isna().sum())} line(s) have no timestamp")
    no_customer = customer.isna() | (customer == 0)
    if no_customer.all():
        raise DataContractError(file, col["customer"], f"no line has a customer id (all {len(df):,} are empty or 0): "
                                                       f"lifetime value needs to know who bought")
    if not ((quantity * price)[~no_customer] > 0).any():
        raise DataContractError(file, col["quantity"], "no line of a known customer has a positive amount "
                                                       "(quantity x unit price): only returns or free items, "
                                                       "no spend to learn from")
    unknown = int(no_customer.sum())
    report.warn("unknown_customer_lines", unknown, f"{unknown} line(s) without a customer id (0 or empty): excluded")
    returns = int((quantity < 0).sum())
    report.warn("return_lines", returns, f"{returns} line(s) with negative quantity (returns)")
    free = int((price <= 0).sum())
    report.warn("non_positive_price_lines", free, f"{free} line(s) with a unit price of zero or less")
    warn_implausible_dates(report, stamps, col["timestamp"], as_of, df.attrs.get(WRITTEN_AT))
    return report


# --- purchase lines (optional fifth source) ---------------------------------------------------


def empty_purchase_lines() -> pd.DataFrame:
    """A ``purchase_lines`` frame without rows (a source that names no products)."""
    dtypes = {"id": "int64", "datetime": "datetime64[ns]", "number": "float64", "text": object}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[k]) for c, k in PURCHASE_LINES_SCHEMA.items()})


def check_purchase_lines(lines: pd.DataFrame, purchases: pd.DataFrame | None = None,
                         file: str = "purchase_lines") -> pd.DataFrame:
    """``purchase_lines`` in the contract's dtypes, or a :class:`DataContractError` naming the problem.

    With ``purchases``, every line must belong to one of them (customer_id, order_id) and carry
    its timestamp: a line outside its order's time would reach a window its purchase does not.
    """
    require_columns(lines, PURCHASE_LINES_SCHEMA, file)
    out = pd.DataFrame({c: check_kind(lines[c], kind, file, c) for c, kind in PURCHASE_LINES_SCHEMA.items()})
    for column in PURCHASE_LINES_SCHEMA:
        missing = int(out[column].isna().sum())
        if missing:
            raise DataContractError(file, column, f"{missing} line(s) have no value")
    out["customer_id"] = out["customer_id"].astype("int64")
    out["order_id"] = out["order_id"].astype(str).astype(object)
    out["product"] = out["product"].astype(str).astype(object)
    if purchases is not None and len(out):
        orders = (purchases[["customer_id", "order_id", "timestamp"]].astype({"order_id": str})
                  .groupby(["customer_id", "order_id"], as_index=False)["timestamp"].min())
        joined = out[["customer_id", "order_id", "timestamp"]].merge(
            orders, on=["customer_id", "order_id"], how="left", suffixes=("", "_order"), validate="many_to_one")
        orphans = int(joined["timestamp_order"].isna().sum())
        if orphans:
            raise DataContractError(file, "order_id", f"{orphans} line(s) belong to no purchase (customer_id, order_id)")
        moved = int((joined["timestamp"] != joined["timestamp_order"]).sum())
        if moved:
            raise DataContractError(file, "timestamp", f"{moved} line(s) carry another time than their purchase")
    return out.reset_index(drop=True)
