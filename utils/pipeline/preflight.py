"""Everything about a run that can be known before any notebook starts, checked before.

``run_all.py`` calls :func:`check_inputs` with the parameters every step will run with
(defaults included). A broken file, or data that cannot give a meaningful model with
these parameters, stops the run in seconds with a message naming the file, the column
or the parameter, before a run folder, an MLflow run, a kernel or a model version exists:

* each input file: readable, its layout (separator, headers, dates) and contract
  (the readers and schemas of :mod:`utils.leads.schema` and :mod:`utils.clv.schema`);
* the leads to learn from: two target classes in the training part and in the time
  holdout, enough of each class for ``cv_folds`` / ``compare_folds``, and a time holdout
  of at least ``min_holdout_leads`` leads (the promotion gate judges on it);
* the CLV data: at least one customer with a full ``feature_window_days + horizon_days``,
  customers who spent in their horizon (the hurdle model needs some), and a test part of
  at least ``min_holdout_customers`` customers.

Notebook 00 applies the same readers and contracts again (it also runs on its own in
JupyterLab). The splits here are the notebooks' own (:mod:`utils.core.splits`,
:func:`utils.clv.features.customer_status`), on the raw rows: cleaning later drops exact
duplicates, so counts are taken after dropping those too.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from utils.clv import schema as clv_schema
from utils.clv.features import customer_status, latest_event, reference_dates
from utils.clv.model import time_folds
from utils.clv.transactions import sources_from_transactions
from utils.core import paths
from utils.core.contracts import ContractReport, DataContractError
from utils.core.io import read_table
from utils.core.splits import time_split
from utils.leads import schema as leads_schema
from utils.pipeline import catalog
from utils.pipeline import params as params_mod
from utils.pipeline.params import ParameterError

TX_FIELDS = {"invoice": "tx_invoice_col", "product": "tx_product_col", "quantity": "tx_quantity_col",
             "timestamp": "tx_timestamp_col", "unit_price": "tx_unit_price_col", "customer": "tx_customer_col",
             "country": "tx_country_col"}
CLV_PATH_PARAMS = {"customers": "clv_customers_path", "web_actions": "clv_web_actions_path",
                   "campaigns": "clv_campaigns_path", "purchases": "clv_purchases_path"}
# 00_data keeps the latest tenth of a user's leads as the new leads when no new_leads_path is given.
NEW_LEADS_SHARE = 0.1
# The hurdle model learns amounts from the customers who spent: it refuses fewer than two.
MIN_SPENDERS = 2


def check_inputs(params: dict[str, Any]) -> list[ContractReport]:
    """Read and check every input the parameters name, and what the steps will make of it.

    ``params``: the merged parameters of every step, defaults included. Raises
    DataContractError (a file) or ParameterError (a parameter); returns the reports of
    recoverable findings (counted warnings), one per input.
    """
    reports = []
    sep = params.get("csv_sep", "auto")
    lead_dates = leads_schema.date_spec(params.get("leads_date_format", ""), params.get("leads_dayfirst", False))
    leads = None
    if params.get("leads_path"):
        source = str(paths.resolve_input(params["leads_path"]))
        leads = leads_schema.read_leads(source, dates=lead_dates, sep=sep, lead_id_col=params.get("lead_id_col", ""))
        reports.append(leads_schema.validate_raw_leads(leads, source))
    if params.get("new_leads_path"):
        source = str(paths.resolve_input(params["new_leads_path"]))
        new_leads = leads_schema.read_leads(source, dates=lead_dates, sep=sep, lead_id_col=params.get("lead_id_col", ""))
        new_leads = new_leads.drop(columns=[leads_schema.LEADS_TARGET], errors="ignore")
        known = leads_schema.leads_levels(leads) if leads is not None else None
        reports.append(leads_schema.validate_raw_leads(new_leads, source, require_target=False, known_levels=known))
    if leads is not None:
        check_lead_training(leads, params, str(paths.resolve_input(params["leads_path"])))
    else:
        check_synthetic_lead_holdout(params)

    sources, clv_file = None, ""
    if params.get("transactions_path"):
        clv_file = str(paths.resolve_input(params["transactions_path"]))
        columns = {field: params.get(name, "") for field, name in TX_FIELDS.items()}
        tx_dates = clv_schema.tx_date_spec(params.get("tx_date_format", ""), params.get("tx_dayfirst", False))
        transactions = clv_schema.read_transactions(clv_file, columns, tx_dates, sep=sep)
        reports.append(clv_schema.validate_transactions(transactions, columns, clv_file))
        customers, web_actions, campaigns, purchases, _ = sources_from_transactions(transactions, columns, clv_file)
        sources = {"customers": customers, "web_actions": web_actions, "campaigns": campaigns, "purchases": purchases}
    elif any(params.get(name) for name in CLV_PATH_PARAMS.values()):
        files = {src: str(paths.resolve_input(params[name])) if params.get(name) else ""
                 for src, name in CLV_PATH_PARAMS.items()}
        clv_dates = clv_schema.clv_date_spec(params.get("clv_date_format", ""), params.get("clv_dayfirst", False))
        sources = clv_schema.read_clv_sources(files, clv_dates, sep=sep)
        reports.append(clv_schema.validate_clv_sources(sources, {k: v or f"<{k}>" for k, v in files.items()}))
        clv_file = files["purchases"]
        if params.get("clv_purchase_lines_path"):
            source = str(paths.resolve_input(params["clv_purchase_lines_path"]))
            clv_schema.check_purchase_lines(read_table(source, sep=sep), sources["purchases"], source)
    if sources is not None:
        check_clv_training(sources, params, clv_file)
    return reports


# --- leads ------------------------------------------------------------------------------------


def check_lead_training(leads: pd.DataFrame, params: dict[str, Any], file: str) -> None:
    """The split 03_lead_model will make of these leads gives a model something to learn and a fair holdout."""
    target = leads_schema.LEADS_TARGET
    labelled = leads
    share_note = ""
    if not params.get("new_leads_path"):
        labelled, _ = _split(leads, NEW_LEADS_SHARE, file, "the latest tenth kept as new leads (no new_leads_path)")
        share_note = " (after the latest tenth is kept as new leads)"
    labelled = labelled.drop_duplicates()  # cleaning drops exact duplicates
    train_share = float(params.get("train_share", 0.8))
    train, holdout = _split(labelled, 1 - train_share, file, f"train_share={train_share}")
    where = f"{len(labelled):,} labelled leads{share_note}, train_share={train_share}"
    for part_name, part in (("training part", train), ("time holdout", holdout)):
        classes = part[target].value_counts()
        if len(classes) < 2:
            raise DataContractError(file, target, f"the {part_name} ({len(part):,} leads from {where}) holds only "
                                                  f"class {classes.index[0]}: "
                                                  + ("nothing to learn" if part is train else "its AUC is undefined")
                                                  + "; give leads of both classes across the period")
    folds = max(int(params.get("cv_folds", 5)), int(params.get("compare_folds", 3)))
    rarest = train[target].value_counts().min()
    if rarest < folds:
        name = "cv_folds" if int(params.get("cv_folds", 5)) >= folds else "compare_folds"
        raise DataContractError(file, target, f"the training part ({len(train):,} leads from {where}) has only "
                                              f"{rarest} lead(s) of its rarer class, fewer than {name}={folds}: "
                                              f"every stratified fold needs one; give more leads or lower {name}")
    _check_min_holdout(len(holdout), params, "min_holdout_leads", "leads",
                       f"{file}: the time holdout of {where} holds {len(holdout):,} leads")


def check_synthetic_lead_holdout(params: dict[str, Any]) -> None:
    """Synthetic leads: the generator makes exactly ``n_leads``, so the holdout size is known from the parameters."""
    n_leads, train_share = int(params.get("n_leads", 0)), float(params.get("train_share", 0.8))
    if not n_leads:
        return
    holdout = n_leads - round(n_leads * train_share)
    _check_min_holdout(holdout, params, "min_holdout_leads", "leads",
                       f"n_leads={n_leads:,} with train_share={train_share} leaves a time holdout of {holdout:,} "
                       f"synthetic leads", parameter="n_leads")


def _split(df: pd.DataFrame, test_share: float, file: str, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return time_split(df, "created_date", test_share)
    except ValueError:
        raise DataContractError(file, None, f"{len(df):,} lead(s) are too few to split ({what}): "
                                            f"one part would be empty") from None


# --- customers --------------------------------------------------------------------------------


def check_clv_training(sources: dict[str, pd.DataFrame], params: dict[str, Any], file: str) -> None:
    """Customers with a full horizon exist, some of them spent in it, and the test part is large enough."""
    window_days, horizon_days = int(params.get("feature_window_days", 7)), int(params.get("horizon_days", 180))
    window, horizon = pd.Timedelta(days=window_days), pd.Timedelta(days=horizon_days)
    purchases = sources["purchases"]
    refs = reference_dates(sources["customers"], purchases)
    as_of = latest_event(*(sources[name] for name in ("customers", "web_actions", "campaigns", "purchases")))
    status = customer_status(refs, as_of, window, horizon)
    train_ids = status.index[status.eq("train")]
    if len(train_ids) == 0:
        first = refs.min()
        longest = max((as_of - first).days - window_days, 0) if pd.notna(first) else 0
        raise ParameterError(
            f"{file}: no customer has a full horizon: the data run from {first:%Y-%m-%d} to {as_of:%Y-%m-%d}, and a "
            f"customer needs feature_window_days + horizon_days = {window_days + horizon_days} days after their "
            f"first date; lower horizon_days (at most {longest} here) or give a longer history")
    ref_of = refs.loc[train_ids]
    target = _horizon_spend(purchases, ref_of, window, horizon)
    customers = pd.DataFrame({"customer_id": ref_of.index, "ref_date": ref_of.to_numpy()})
    customers["spent"] = customers["customer_id"].map(target).fillna(0.0).gt(0).to_numpy()
    test_share = float(params.get("test_share", 0.3))
    try:
        train, test = time_split(customers, "ref_date", test_share, tie_breakers=("customer_id",))
    except ValueError:
        raise DataContractError(file, None, f"{len(customers):,} customer(s) with a full horizon are too few to split "
                                            f"with test_share={test_share}") from None
    spenders = int(train["spent"].sum())
    folds = int(params.get("tuning_folds", 3))
    first_fold = int(train["spent"].to_numpy()[time_folds(len(train), folds)[0][0]].sum()) if len(train) else 0
    if spenders < MIN_SPENDERS or first_fold < MIN_SPENDERS:
        raise DataContractError(
            file, None, f"of the {len(train):,} training customers (full horizon of {horizon_days} days), "
                        f"{spenders} spent anything in their horizon ({first_fold} in the first of the "
                        f"tuning_folds={folds} time folds): the CLV model needs at least {MIN_SPENDERS} in each; "
                        f"give more customers, a longer horizon_days or fewer tuning_folds")
    _check_min_holdout(len(test), params, "min_holdout_customers", "customers",
                       f"{file}: {len(customers):,} customers have a full horizon; the test part "
                       f"(test_share={test_share}) holds {len(test):,}")


def _horizon_spend(purchases: pd.DataFrame, refs: pd.Series, window: pd.Timedelta,
                   horizon: pd.Timedelta) -> pd.Series:
    """customer_id -> net spend in [ref + window, ref + window + horizon), as 02 computes the target."""
    rows = purchases[purchases["customer_id"].isin(refs.index)]
    start = rows["customer_id"].map(refs) + window
    inside = (rows["timestamp"] >= start) & (rows["timestamp"] < start + horizon)
    return rows.loc[inside.to_numpy()].groupby("customer_id")["amount"].sum()


# --- the holdout a promotion is judged on -----------------------------------------------------


def _check_min_holdout(size: int, params: dict[str, Any], name: str, unit: str, what: str,
                       parameter: str | None = None) -> None:
    minimum = params.get(name)
    if minimum is None or size >= int(minimum):
        return
    fix = f"raise {parameter}, lower train_share" if parameter else "give more data"
    raise ParameterError(f"{what}, fewer than {name}={int(minimum):,}: a promotion judged on so few {unit} means "
                         f"nothing; {fix}, or lower {name} if you accept that")


def check_run(resolved: dict[str, dict[str, Any]]) -> None:
    """A run's check: every step's parameters (defaults included) merged, :func:`check_inputs` on them, and what
    was counted printed. Raises DataContractError or ParameterError on anything a notebook would fail on later."""
    merged: dict[str, Any] = {}
    for step in catalog.STEPS:
        merged.update(params_mod.with_defaults(step.notebook, resolved.get(step.name, {})))
    for report in check_inputs(merged):
        print(f"input check: {report.file}: {report.rows:,} rows, {report.n_warnings} counted warning(s)", flush=True)
        for warning in report.warnings:
            print(f"    warning: {warning}", flush=True)
        if report.counts:
            print("    counted: " + ", ".join(f"{key} {count:,}" for key, count in report.counts.items()), flush=True)
