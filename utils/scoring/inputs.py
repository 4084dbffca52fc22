"""What a scoring job reads: new leads with their ids, and customers as the CLV model's feature table.

The same readers and contracts as a full run (``00_data``): a broken file stops with a
:class:`~utils.core.contracts.DataContractError` naming the file, the column and the problem.
Customers arrive as the CLV sources (customers, purchases, and optionally web actions and
campaigns) or as a retailer's transaction lines; the feature table is built with the same
code as ``02_cleaning`` (:func:`utils.clv.features.build_clv_dataset`) and the feature
window the model was trained with (its recorded recipe).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from utils.clv import schema as clv_schema
from utils.clv.basket import BASKET_COLUMN
from utils.clv.features import TARGET, build_clv_dataset
from utils.clv.transactions import transaction_sources
from utils.core.contracts import ContractReport, DataContractError
from utils.core.io import read_table
from utils.leads import schema as leads_schema

# Features that count events of one level (an action, a campaign channel, a gender): a level
# absent from new data is a count of zero, not a missing column.
LEVEL_COUNT_PREFIXES = ("web_", "campaigns_", "gender_")
RECIPE_KEYS = ("feature_window_days", "horizon_days")
# How the user's files are written: 00_data's parameters of that name, honoured by the scoring job too.
READING_PARAMETERS = ("csv_sep", "leads_date_format", "leads_dayfirst", "tx_date_format", "tx_dayfirst",
                      "clv_date_format", "clv_dayfirst")


@dataclass
class NewLeads:
    frame: pd.DataFrame  # lead_id first, then the raw columns
    report: ContractReport
    id_source: str
    dropped_target: bool = False


def read_new_leads(path: str, lead_id_col: str = "", reading: Mapping | None = None) -> NewLeads:
    """Raw leads to score, checked by the raw-leads contract, each with its key (``lead_id``).

    ``reading``: how the file is written (:data:`READING_PARAMETERS`; defaults: sniffed
    separator, ISO dates). A target column, if the file has one (a labelled export), is
    dropped: scoring never reads it.
    """
    reading = reading or {}
    dates = leads_schema.date_spec(reading.get("leads_date_format", ""), bool(reading.get("leads_dayfirst", False)))
    frame = leads_schema.read_leads(path, dates=dates, sep=reading.get("csv_sep", "auto"), lead_id_col=lead_id_col)
    id_source = frame.attrs.get(leads_schema.LEAD_ID_SOURCE, "")
    dropped = leads_schema.LEADS_TARGET in frame.columns
    frame = frame.drop(columns=[leads_schema.LEADS_TARGET], errors="ignore")
    report = leads_schema.validate_raw_leads(frame, path, require_target=False)
    columns = [leads_schema.LEAD_ID, *leads_schema.LEADS_FEATURE_COLUMNS]
    return NewLeads(frame[columns].reset_index(drop=True), report, id_source, dropped)


def read_customer_sources(files: Mapping[str, str] | None = None, transactions: str = "",
                          tx_columns: Mapping[str, str] | None = None,
                          reading: Mapping | None = None) -> tuple[dict[str, pd.DataFrame], ContractReport]:
    """The CLV sources from their files (customers and purchases required; ``purchase_lines``
    optional) or from transaction lines (which hold the purchase lines too)."""
    reading = reading or {}
    sep = reading.get("csv_sep", "auto")
    if transactions:
        columns = dict(tx_columns or {})
        dates = clv_schema.tx_date_spec(reading.get("tx_date_format", ""), bool(reading.get("tx_dayfirst", False)))
        lines = clv_schema.read_transactions(transactions, columns, dates, sep=sep)
        report = clv_schema.validate_transactions(lines, columns, transactions)
        sources, _ = transaction_sources(lines, columns, transactions)
        return sources, report
    files = {name: path for name, path in (files or {}).items() if path}
    lines_file = files.pop("purchase_lines", "")
    dates = clv_schema.clv_date_spec(reading.get("clv_date_format", ""), bool(reading.get("clv_dayfirst", False)))
    sources = clv_schema.read_clv_sources(files, dates, sep)
    report = clv_schema.validate_clv_sources(sources, {name: files.get(name, f"<{name}: none>") for name in sources})
    sources["purchase_lines"] = (clv_schema.check_purchase_lines(read_table(lines_file, sep), sources["purchases"],
                                                                 lines_file)
                                 if lines_file else clv_schema.empty_purchase_lines())
    return sources, report


def customer_features(sources: Mapping[str, pd.DataFrame], recipe: Mapping, model_columns: Iterable[str],
                      file: str) -> tuple[pd.DataFrame, dict]:
    """Every customer whose feature window is complete, as the model's feature table; and a summary.

    ``recipe`` holds the ``feature_window_days`` and ``horizon_days`` the model was trained
    with. A model column the table lacks is zero when it counts events of a level these
    customers never had (e.g. ``web_download``); any other stops the job, naming it.
    """
    missing_keys = [key for key in RECIPE_KEYS if key not in recipe]
    if missing_keys:
        raise DataContractError("<clv model>", missing_keys[0], "not recorded with the model: cannot build its "
                                                                "features (train a new version)")
    lines = sources.get("purchase_lines")
    if BASKET_COLUMN in model_columns and (lines is None or lines.empty):
        raise DataContractError(file, BASKET_COLUMN, "the CLV model reads what each customer bought, and no purchase "
                                                     "lines were given: give --purchase-lines (or --transactions), "
                                                     "or score with a model that does not (--clv-model)")
    with_horizon, without_horizon, report = build_clv_dataset(
        sources["customers"], sources["web_actions"], sources["campaigns"], sources["purchases"],
        feature_window_days=int(recipe["feature_window_days"]), horizon_days=int(recipe["horizon_days"]),
        purchase_lines=lines)
    # Scored whether or not their horizon is over: the window is all the model looks at.
    features = pd.concat([with_horizon.drop(columns=[TARGET]), without_horizon], ignore_index=True)
    filled = []
    for column in model_columns:
        if column in features.columns:
            continue
        if not column.startswith(LEVEL_COUNT_PREFIXES):
            raise DataContractError(file, column, "missing from the customer features built from these files, "
                                                  "but the CLV model needs it")
        features[column] = 0.0
        filled.append(column)
    summary = {
        "customers": report["customers"],
        "scored": len(features),
        "window_incomplete": report["excluded_window_incomplete"],
        "no_reference_date": report["excluded_no_reference_date"],
        "as_of": report["as_of"],
        "level_counts_filled_with_zero": filled,
        **{key: int(recipe[key]) for key in RECIPE_KEYS},
    }
    return features.sort_values("customer_id", kind="stable", ignore_index=True), summary
