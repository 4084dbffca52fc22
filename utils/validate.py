"""Data contracts: every check on input data, and the error they raise.

Two kinds of finding:

* a broken contract (missing column, text in a numeric column, an unparsable date,
  a target outside {0, 1}, no rows, an all-empty required column, duplicated customer
  ids ...) raises :class:`DataContractError` naming the file, the column and the problem;
* a recoverable oddity (levels never seen before, refunds, dates in the future, extra
  columns ...) is counted in a :class:`ContractReport` and logged, and the run goes on.

Plain pandas rather than pandera: the messages must name the user's file and say what
to fix, and the checks are few enough to read in one sitting.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

logger = logging.getLogger(__name__)


class DataContractError(ValueError):
    """Input data breaks its contract. The message names the file, the column and the problem."""

    def __init__(self, file: str, column: str | None, problem: str):
        self.file = str(file)
        self.column = column
        self.problem = problem
        where = f"column '{column}': " if column else ""
        super().__init__(f"{self.file}: {where}{problem}")


# --- the schemas ------------------------------------------------------------------------------

LEADS_TARGET = "app_complete_flag"
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


# --- the report -------------------------------------------------------------------------------


@dataclass
class ContractReport:
    """Recoverable findings: one counted warning per kind, e.g. counts['unseen_levels.city_mapped'] = 12."""

    file: str
    rows: int = 0
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def warn(self, key: str, count: int, message: str) -> None:
        """Count ``count`` occurrences of a recoverable issue; nothing is recorded for zero."""
        if not count:
            return
        self.counts[key] = self.counts.get(key, 0) + int(count)
        text = f"{self.file}: {message}"
        self.warnings.append(text)
        logger.info(text)

    def merge(self, other: ContractReport) -> ContractReport:
        """One report for several files: warnings appended, counts prefixed by nothing, summed."""
        merged = ContractReport(f"{self.file}; {other.file}", self.rows + other.rows,
                                self.warnings + other.warnings, dict(self.counts))
        for key, value in other.counts.items():
            merged.counts[key] = merged.counts.get(key, 0) + value
        return merged

    @property
    def n_warnings(self) -> int:
        return len(self.warnings)

    def to_dict(self) -> dict:
        return {"file": self.file, "rows": self.rows, "warnings": list(self.warnings), "counts": dict(self.counts)}

    def __str__(self) -> str:
        head = f"{self.file}: {self.rows:,} rows, {self.n_warnings} warning(s)"
        return "\n".join([head, *(f"  - {w}" for w in self.warnings)])


# --- column checks shared with the readers ----------------------------------------------------


def as_datetime(values: pd.Series, file: str, column: str) -> pd.Series:
    """The column as datetime64[ns]; raises on any value that is present but not a date."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize(None).astype("datetime64[ns]") if values.dt.tz else values.astype("datetime64[ns]")
    if pd.api.types.is_numeric_dtype(values) and values.notna().any():
        raise DataContractError(file, column, f"holds numbers ({values.dropna().iloc[0]!r}), not dates")
    try:
        # Fast path for the usual "YYYY-MM-DD HH:MM:SS"; mixed formats fall through.
        parsed = pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna() & (values.astype(str).str.strip() != "")
    if bad.any():
        raise DataContractError(file, column, f"{int(bad.sum())} value(s) are not dates, e.g. {values[bad].iloc[0]!r}")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def as_number(values: pd.Series, file: str, column: str) -> pd.Series:
    """The column as float64; raises on text that is not a number (an empty cell is fine)."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    text = values.astype("string").str.strip()
    parsed = pd.to_numeric(text.mask(text == ""), errors="coerce")
    bad = parsed.isna() & values.notna() & (text != "")
    if bad.any():
        raise DataContractError(file, column, f"{int(bad.sum())} value(s) are not numbers, e.g. {values[bad].iloc[0]!r}")
    return parsed.astype("float64")


def as_whole_number(values: pd.Series, file: str, column: str) -> pd.Series:
    """A numeric column whose present values must all be whole numbers (ids, counts)."""
    parsed = as_number(values, file, column)
    fractional = parsed.notna() & (parsed % 1 != 0)
    if fractional.any():
        raise DataContractError(file, column, f"{int(fractional.sum())} value(s) are not whole numbers, "
                                              f"e.g. {values[fractional].iloc[0]!r}")
    return parsed


def require_columns(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:6])}{'...' if len(missing) > 6 else ''})" \
            if len(missing) > 1 else ""
        raise DataContractError(file, missing[0], f"missing{more}")


def require_rows(df: pd.DataFrame, file: str) -> None:
    if len(df) == 0:
        raise DataContractError(file, None, "no rows (empty file or header only)")


def require_not_all_null(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    for column in columns:
        if column in df.columns and df[column].isna().all():
            raise DataContractError(file, column, "is empty in every row")


def _check_kind(values: pd.Series, kind: str, file: str, column: str) -> pd.Series:
    if kind == "datetime":
        return as_datetime(values, file, column)
    if kind in ("id", "integer"):
        return as_whole_number(values, file, column)
    if kind == "number":
        return as_number(values, file, column)
    return values


def _warn_extra_columns(report: ContractReport, df: pd.DataFrame, expected: Iterable[str]) -> None:
    extra = [c for c in df.columns if c not in set(expected)]
    report.warn("extra_columns", len(extra), f"{len(extra)} extra column(s) ignored: {', '.join(map(str, extra[:8]))}")


def _warn_future(report: ContractReport, stamps: pd.Series, column: str, as_of: pd.Timestamp | None) -> None:
    as_of = pd.Timestamp.now() if as_of is None else pd.Timestamp(as_of)
    future = int((stamps > as_of).sum())
    report.warn(f"future_dates.{column}", future, f"column '{column}': {future} date(s) after {as_of:%Y-%m-%d}")


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
    "others" / tier 3).
    """
    report = ContractReport(str(file), rows=len(df))
    require_rows(df, file)
    require_columns(df, LEADS_FEATURE_COLUMNS + ((LEADS_TARGET,) if require_target else ()), file)
    require_not_all_null(df, LEADS_NON_EMPTY, file)
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
    _warn_extra_columns(report, df, LEADS_COLUMNS)
    _warn_future(report, created, "created_date", as_of)
    duplicates = int(df.duplicated().sum())
    report.warn("duplicate_rows", duplicates, f"{duplicates} exact duplicate row(s) (cleaning drops them)")
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


def leads_levels(df: pd.DataFrame) -> dict[str, set]:
    """The categorical levels of a leads frame, to flag unseen ones in new leads."""
    return {c: set(df[c].dropna().unique()) for c in LEADS_CATEGORICAL}


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
    if name not in CLV_MAY_BE_EMPTY:
        require_rows(df, file)
    require_columns(df, schema, file)
    checked = pd.DataFrame({c: _check_kind(df[c], kind, file, c) for c, kind in schema.items()})
    for column in CLV_NOT_NULL[name]:
        missing = int(checked[column].isna().sum())
        if missing:
            raise DataContractError(file, column, f"{missing} row(s) have no value")
    _warn_extra_columns(report, df, (*schema, *CLV_OPTIONAL.get(name, ())))
    for column, kind in schema.items():
        if kind == "datetime":
            _warn_future(report, checked[column], f"{name}.{column}", as_of)
    return checked


def _warn_clv_values(report: ContractReport, sources: Mapping[str, pd.DataFrame],
                     checked: Mapping[str, pd.DataFrame], files: Mapping[str, str]) -> None:
    from utils import gdp  # gdp loads plotly's gapminder table: only when CLV data is checked

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
    stamps = as_datetime(df[col["timestamp"]], file, col["timestamp"])
    if stamps.isna().any():
        raise DataContractError(file, col["timestamp"], f"{int(stamps.isna().sum())} line(s) have no timestamp")
    unknown = int((customer.isna() | (customer == 0)).sum())
    report.warn("unknown_customer_lines", unknown, f"{unknown} line(s) without a customer id (0 or empty): excluded")
    returns = int((quantity < 0).sum())
    report.warn("return_lines", returns, f"{returns} line(s) with negative quantity (returns)")
    free = int((price <= 0).sum())
    report.warn("non_positive_price_lines", free, f"{free} line(s) with a unit price of zero or less")
    _warn_future(report, stamps, col["timestamp"], as_of)
    return report
