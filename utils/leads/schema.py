"""The raw CodePro leads: their columns, how a file is read into the contract's dtypes,
and the checks a leads file must pass.

The export has 45 columns (44 without the target): when and through which channel a
lead came, its city, how many times it dropped its details (``total_leads_droppped``,
the source's spelling), whether it was referred, and 37 website interaction flags.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from utils.core.contracts import (
    WRITTEN_AT,
    ContractReport,
    DataContractError,
    DateSpec,
    as_datetime,
    as_number,
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

LEADS_TARGET = "app_complete_flag"
# The key every lead keeps from the file it came from to the scored table; never a model input.
LEAD_ID = "lead_id"
LEAD_ID_SOURCE = "lead_id_source"  # frame.attrs key: where read_leads took the ids from
# The unnamed first column of a CRM export (a row index), as pandas names it or a parquet writer left it.
UNNAMED_INDEX = ("Unnamed: 0", "", "index")
LEADS_CATEGORICAL = ("city_mapped", "first_platform_c", "first_utm_medium_c", "first_utm_source_c")
INTERACTION_COLUMNS = (
    "1_on_1_industry_mentorship", "call_us_button_clicked", "career_assistance", "career_coach",
    "career_impact", "careers", "chat_clicked", "companies", "download_button_clicked",
    "download_syllabus", "emi_partner_click", "emi_plans_clicked", "fee_component_click",
    "hiring_partners", "homepage_upgrad_support_number_clicked", "industry_projects_case_studies",
    "live_chat_button_clicked", "payment_amount_toggle_mover", "placement_support",
    "placement_support_banner_tab_clicked", "program_structure", "programme_curriculum",
    "programme_faculty", "request_callback_on_instant_customer_support_cta_clicked",
    "shorts_entry_click", "social_referral_click", "specialisation_tab_clicked", "specializations",
    "specilization_click", "syllabus", "syllabus_expand", "syllabus_submodule_expand",
    "tab_career_assistance", "tab_job_opportunities", "tab_student_support", "view_programs_page",
    "whatsapp_chat_click",
)
# The raw CodePro export, in its order (the misspelt "droppped" is the source's name).
LEADS_FEATURE_COLUMNS = (
    "created_date", *LEADS_CATEGORICAL, "total_leads_droppped", "referred_lead", *INTERACTION_COLUMNS,
)
LEADS_COLUMNS = (*LEADS_FEATURE_COLUMNS, LEADS_TARGET)
LEADS_NUMERIC = ("total_leads_droppped", "referred_lead", *INTERACTION_COLUMNS)
# Empty everywhere means a broken export; the interaction flags are legitimately almost all empty.
LEADS_NON_EMPTY = ("created_date", "first_platform_c", "first_utm_medium_c", "first_utm_source_c",
                   "total_leads_droppped", "referred_lead")
# Leads to learn from also need a city (the model's input); new leads without one are scored as tier 3.
LEADS_NON_EMPTY_TRAINING = (*LEADS_NON_EMPTY, "city_mapped")


def date_spec(date_format: str = "", dayfirst: bool = False) -> DateSpec:
    """How the leads files write ``created_date``, from the 00_data parameters of that name."""
    return DateSpec(date_format, dayfirst, "leads_date_format", "leads_dayfirst")


# --- reading ----------------------------------------------------------------------------------


def read_leads(path: str | Path, created_before: str | pd.Timestamp | None = None, dates: DateSpec | None = None,
               sep: str = "auto", lead_id_col: str | None = None) -> pd.DataFrame:
    """Raw CodePro leads (CSV with its unnamed index column, or parquet) in the contract's dtypes.

    ``created_before`` (a date): rows created on or after it, or without a date, are dropped
    right after the file is read, before any other column is parsed; nothing of theirs
    but ``created_date`` is ever looked at. ``dates`` says how ``created_date`` is written
    (:func:`date_spec`), ``sep`` the CSV separator (see :func:`utils.core.io.read_table`).
    Headers that differ from the contract's only in case or surrounding spaces are matched
    and counted.

    ``lead_id_col``: None drops the unnamed index column; a string (``""`` for the default
    choice) gives every row its key as a first column ``lead_id`` (see :func:`with_lead_ids`),
    and ``attrs[LEAD_ID_SOURCE]`` says where it came from.
    """
    dates = dates or date_spec()
    frame = read_table(path, sep)
    id_source = ""
    if lead_id_col is not None and len(frame.columns) > 1:  # one column: a wrong separator, said by the contract
        frame, id_source = with_lead_ids(frame, str(path), lead_id_col)
    first = str(frame.columns[0]) if len(frame.columns) else ""
    if first.startswith("Unnamed: 0") or first in UNNAMED_INDEX:
        frame = frame.drop(columns=frame.columns[0])
    frame = match_headers(frame, LEADS_COLUMNS, str(path))
    if created_before is not None:
        if "created_date" not in frame.columns:
            raise DataContractError(str(path), "created_date", "missing: needed to keep rows created before a date")
        created = as_datetime(frame["created_date"], str(path), "created_date", dates)
        frame = frame.loc[(created < pd.Timestamp(created_before)).to_numpy()].reset_index(drop=True)
    leads = coerce_leads(frame, str(path), dates)
    if id_source:
        leads.attrs[LEAD_ID_SOURCE] = id_source
    return leads


def coerce_leads(frame: pd.DataFrame, file: str, dates: DateSpec | None = None) -> pd.DataFrame:
    """created_date -> datetime64[ns], flags -> float64, levels -> object, target -> int64 (when complete)."""
    out = frame.copy()
    if "created_date" in out.columns:
        set_dates(out, "created_date", as_datetime(out["created_date"], file, "created_date", dates or date_spec()))
    for column in LEADS_NUMERIC:
        if column in out.columns:
            out[column] = as_number(out[column], file, column)
    for column in LEADS_CATEGORICAL:
        if column in out.columns:
            # An all-empty column is read as float; levels are text.
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    if LEADS_TARGET in out.columns:
        target = as_number(out[LEADS_TARGET], file, LEADS_TARGET)
        complete = target.notna().all() and (target % 1 == 0).all()
        out[LEADS_TARGET] = target.astype("int64") if complete else target
    return out


def with_lead_ids(frame: pd.DataFrame, file: str, lead_id_col: str = "") -> tuple[pd.DataFrame, str]:
    """``frame`` with its key as the first column ``lead_id``, and where the key came from.

    The key is ``lead_id_col`` when given (renamed ``lead_id``), else a ``lead_id`` column,
    else the unnamed first column CRM exports carry, else the 1-based row number in the
    file. A named key must be complete and unique (a scored row must trace back to one
    record); an unnamed index that repeats (two exports pasted together) gives way to the
    row number, and the source says so.
    """
    if LEAD_ID in frame.columns and lead_id_col not in ("", LEAD_ID):
        raise DataContractError(file, LEAD_ID, f"present, but lead_id_col names '{lead_id_col}': rename one of them")
    named = lead_id_col or (LEAD_ID if LEAD_ID in frame.columns else "")
    if named:
        if named not in frame.columns:
            raise DataContractError(file, named, "missing: lead_id_col names it as the leads' key")
        if named in LEADS_COLUMNS:
            raise DataContractError(file, named, "cannot be the key: it is a model input (or the target)")
        ids = frame[named]
        if ids.isna().any():
            raise DataContractError(file, named, f"{int(ids.isna().sum())} row(s) have no id: every lead needs its key")
        repeated = ids[ids.duplicated()]
        if len(repeated):
            raise DataContractError(file, named, f"{len(repeated)} repeated id(s), e.g. {repeated.iloc[0]!r}: "
                                                 f"the key must be unique")
        source = f"column '{named}'"
        rest = frame.drop(columns=[named])
    else:
        first = str(frame.columns[0]) if len(frame.columns) else None
        unnamed = first is not None and (first.startswith("Unnamed: 0") or first in UNNAMED_INDEX)
        rest = frame.drop(columns=frame.columns[0]) if unnamed else frame
        ids = frame.iloc[:, 0] if unnamed else None
        if ids is not None and ids.notna().all() and ids.is_unique:
            source = "the unnamed first column"
        else:
            ids = pd.Series(range(1, len(frame) + 1), index=frame.index, dtype="int64")
            source = "row number in the file (1 = first data row)" + (
                "; the unnamed first column repeats or lacks values" if unnamed else "")
    out = rest.copy()
    out.insert(0, LEAD_ID, ids.to_numpy())
    return out, source


def duplicated_leads(frame: pd.DataFrame) -> pd.Series:
    """True for every lead identical to an earlier one on all columns but its id (the first copy is False)."""
    columns = [c for c in frame.columns if c != LEAD_ID]
    return frame.duplicated(subset=columns, keep="first") if columns else pd.Series(False, index=frame.index)


# --- CodePro leads ----------------------------------------------------------------------------


def validate_raw_leads(
    df: pd.DataFrame,
    file: str,
    require_target: bool = True,
    known_levels: Mapping[str, Iterable[str]] | None = None,
    as_of: pd.Timestamp | None = None,
) -> ContractReport:
    """Check a raw CodePro leads frame (45 columns, or 44 without the target).

    ``known_levels`` maps a categorical column to the levels seen in training: new
    leads with other levels are counted, not rejected (cleaning maps them to
    "others" / tier 3). Leads with a target (``require_target``) are leads to learn
    from: they need both classes and a city in some row.
    """
    report = ContractReport(str(file), rows=len(df))
    report_notes(report, df)
    require_rows(df, file)
    require_columns(df, LEADS_FEATURE_COLUMNS + ((LEADS_TARGET,) if require_target else ()), file)
    require_not_all_null(df, LEADS_NON_EMPTY_TRAINING if require_target else LEADS_NON_EMPTY, file)
    created = as_datetime(df["created_date"], file, "created_date")
    if created.isna().any():
        raise DataContractError(file, "created_date", f"{int(created.isna().sum())} row(s) have no date")
    numbers = {c: as_number(df[c], file, c) for c in LEADS_NUMERIC}
    negative = int((numbers["total_leads_droppped"] < 0).sum())
    if negative:
        raise DataContractError(file, "total_leads_droppped", f"{negative} negative count(s)")
    if LEADS_TARGET in df.columns:
        _check_target(df[LEADS_TARGET], file, required=require_target)
    odd_referred = int((~numbers["referred_lead"].isin([0.0, 1.0]) & numbers["referred_lead"].notna()).sum())
    report.warn("referred_lead_not_binary", odd_referred, f"column 'referred_lead': {odd_referred} value(s) not 0/1")
    report.warn("no_city", int(df["city_mapped"].isna().all()) * len(df), "column 'city_mapped': empty in every row")
    warn_extra_columns(report, df, (LEAD_ID, *LEADS_COLUMNS))
    warn_implausible_dates(report, created, "created_date", as_of, df.attrs.get(WRITTEN_AT))
    duplicates = int(duplicated_leads(df).sum())
    report.warn("duplicate_rows", duplicates,
                f"{duplicates} lead(s) identical to an earlier one but for the id (training keeps one copy; "
                f"scoring scores and flags each)")
    for column, levels in (known_levels or {}).items():
        values = df[column].dropna()
        unseen = values[~values.isin(set(levels))]
        report.warn(f"unseen_levels.{column}", len(unseen),
                    f"column '{column}': {len(unseen)} row(s) with {unseen.nunique()} level(s) unseen in training")
    return report


def _check_target(values: pd.Series, file: str, required: bool) -> None:
    target = as_number(values, file, LEADS_TARGET)
    if target.isna().all() and not required:
        return
    if target.isna().any():
        raise DataContractError(file, LEADS_TARGET, f"{int(target.isna().sum())} row(s) have no target")
    outside = ~target.isin([0.0, 1.0])
    if outside.any():
        raise DataContractError(file, LEADS_TARGET, f"{int(outside.sum())} value(s) outside {{0, 1}}, "
                                                    f"e.g. {values[outside].iloc[0]!r}")
    if required and target.nunique() < 2:
        raise DataContractError(file, LEADS_TARGET, f"holds one class only (every row is {target.iloc[0]:.0f}): "
                                                    f"a model cannot learn from it")


def leads_levels(df: pd.DataFrame) -> dict[str, set]:
    """The categorical levels of a leads frame, to flag unseen ones in new leads."""
    return {c: set(df[c].dropna().unique()) for c in LEADS_CATEGORICAL}
