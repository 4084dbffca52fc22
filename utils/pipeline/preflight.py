"""Checks on the user's input files before any notebook starts.

``run_all.py`` calls :func:`check_inputs` with the parameters of ``00_data``: a
missing, unreadable or contract-breaking file stops the run in seconds, with a
message naming the file, the column and the problem, before a run folder, an
MLflow run or a kernel exists. Notebook 00 applies the same readers and contracts
again (it also runs on its own in JupyterLab).
"""
from __future__ import annotations

from typing import Any

from utils.clv import schema as clv_schema
from utils.clv.transactions import sources_from_transactions
from utils.core import paths
from utils.core.contracts import ContractReport
from utils.core.io import read_table
from utils.leads import schema as leads_schema

TX_FIELDS = {"invoice": "tx_invoice_col", "product": "tx_product_col", "quantity": "tx_quantity_col",
             "timestamp": "tx_timestamp_col", "unit_price": "tx_unit_price_col", "customer": "tx_customer_col",
             "country": "tx_country_col"}
CLV_PATH_PARAMS = {"customers": "clv_customers_path", "web_actions": "clv_web_actions_path",
                   "campaigns": "clv_campaigns_path", "purchases": "clv_purchases_path"}


def check_inputs(params: dict[str, Any]) -> list[ContractReport]:
    """Read and validate every file the 00_data parameters name; raise DataContractError on a broken one.

    Returns the reports of recoverable findings (counted warnings), one per input.
    """
    reports = []
    leads = None
    if params.get("leads_path"):
        source = str(paths.resolve_input(params["leads_path"]))
        leads = leads_schema.read_leads(source, lead_id_col=params.get("lead_id_col", ""))
        reports.append(leads_schema.validate_raw_leads(leads, source))
    if params.get("new_leads_path"):
        source = str(paths.resolve_input(params["new_leads_path"]))
        new_leads = leads_schema.read_leads(source, lead_id_col=params.get("lead_id_col", "")).drop(columns=[leads_schema.LEADS_TARGET], errors="ignore")
        known = leads_schema.leads_levels(leads) if leads is not None else None
        reports.append(leads_schema.validate_raw_leads(new_leads, source, require_target=False, known_levels=known))
    if params.get("transactions_path"):
        source = str(paths.resolve_input(params["transactions_path"]))
        columns = {field: params.get(name, "") for field, name in TX_FIELDS.items()}
        transactions = read_table(source)
        reports.append(clv_schema.validate_transactions(transactions, columns, source))
        sources_from_transactions(transactions, columns, source)
    elif any(params.get(name) for name in CLV_PATH_PARAMS.values()):
        files = {src: str(paths.resolve_input(params[name])) if params.get(name) else ""
                 for src, name in CLV_PATH_PARAMS.items()}
        frames = clv_schema.read_clv_sources(files)
        reports.append(clv_schema.validate_clv_sources(frames, {k: v or f"<{k}>" for k, v in files.items()}))
    return reports
