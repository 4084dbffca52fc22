"""Data contracts: the error every input check raises, the report of recoverable findings,
and the column checks the readers and schemas share.

Two kinds of finding:

* a broken contract (missing column, text in a numeric column, an unparsable date,
  a target outside {0, 1}, no rows, an all-empty required column, duplicated customer
  ids ...) raises :class:`DataContractError` naming the file, the column and the problem;
* a recoverable oddity (levels never seen before, refunds, dates in the future, extra
  columns ...) is counted in a :class:`ContractReport` and logged, and the run goes on.

The schemas themselves live with their business problem: :mod:`utils.leads.schema`
and :mod:`utils.clv.schema`. Plain pandas rather than pandera: the messages must name
the user's file and say what to fix, and the checks are few enough to read in one sitting.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
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


def check_kind(values: pd.Series, kind: str, file: str, column: str) -> pd.Series:
    if kind == "datetime":
        return as_datetime(values, file, column)
    if kind in ("id", "integer"):
        return as_whole_number(values, file, column)
    if kind == "number":
        return as_number(values, file, column)
    return values


def warn_extra_columns(report: ContractReport, df: pd.DataFrame, expected: Iterable[str]) -> None:
    extra = [c for c in df.columns if c not in set(expected)]
    report.warn("extra_columns", len(extra), f"{len(extra)} extra column(s) ignored: {', '.join(map(str, extra[:8]))}")


def warn_future(report: ContractReport, stamps: pd.Series, column: str, as_of: pd.Timestamp | None) -> None:
    as_of = pd.Timestamp.now() if as_of is None else pd.Timestamp(as_of)
    future = int((stamps > as_of).sum())
    report.warn(f"future_dates.{column}", future, f"column '{column}': {future} date(s) after {as_of:%Y-%m-%d}")
