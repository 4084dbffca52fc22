"""Data contracts: the error every input check raises, the report of recoverable findings,
and the column checks the readers and schemas share.

Two kinds of finding:

* a broken contract (missing column, text in a numeric column, an unparsable or
  ambiguous date, a target outside {0, 1}, no rows, an all-empty required column, a
  duplicated header or customer id ...) raises :class:`DataContractError` naming the
  file, the column and the problem (and the parameter that fixes it, if one does);
* a recoverable oddity (levels never seen before, refunds, dates in the future or before
  1990, extra columns, headers matched after trimming and case-folding ...) is counted in
  a :class:`ContractReport` and logged, and the run goes on.

Dates are read by one rule (:func:`as_datetime`): a layout given by a ``*_date_format``
parameter is used as given; otherwise ISO 8601 is read as is, any other layout only when
its reading is certain, and times with a UTC offset become UTC.

The schemas themselves live with their business problem: :mod:`utils.leads.schema`
and :mod:`utils.clv.schema`. Plain pandas rather than pandera: the messages must name
the user's file and say what to fix, and the checks are few enough to read in one sitting.
"""
from __future__ import annotations

import difflib
import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas._libs.tslibs.parsing import guess_datetime_format

from utils.core.errors import DataContractError  # noqa: F401 - raised here, and imported from here by most callers

logger = logging.getLogger(__name__)


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

# Dates before this are placeholders (1900-01-01, 1970-01-01, Excel's day zero) or typos, not events.
PLAUSIBLE_START = pd.Timestamp("1990-01-01")
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
_SHAPES_TRIED = 5  # values of one shape tried when pandas cannot guess a format from the first


@dataclass(frozen=True)
class DateSpec:
    """How a file writes its dates, and the parameters a message should tell the user to set.

    ``date_format`` (strftime, e.g. ``%d/%m/%Y %H:%M``) is used as given; without it, ISO 8601
    is read as is and any other layout only when its one reading is certain: a column whose
    values read differently day-first and month-first is refused, unless ``dayfirst``.
    """

    date_format: str = ""
    dayfirst: bool = False
    format_param: str = "date_format"
    dayfirst_param: str = "dayfirst"


def as_datetime(values: pd.Series, file: str, column: str, spec: DateSpec | None = None) -> pd.Series:
    """The column as datetime64[ns] (times with a UTC offset converted to UTC), or a DataContractError.

    Refused, naming two example values and the parameter to set: a value that is no date,
    a column that reads differently day-first and month-first, a column that mixes
    layouts (``2021-01-05`` beside ``05/01/2021``), and times with an offset beside times
    without one.
    """
    spec = spec or DateSpec()
    if pd.api.types.is_datetime64_any_dtype(values):
        return _naive_utc(values)
    if pd.api.types.is_numeric_dtype(values) and values.notna().any():
        raise DataContractError(file, column, f"holds numbers ({values.dropna().iloc[0]!r}), not dates")
    # Parse each distinct value once: a transaction log repeats its timestamps thousands of times.
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    texts = pd.Index([str(v).strip() for v in distinct], dtype=object)
    present = texts != ""
    parsed = np.full(len(texts), np.datetime64("NaT"), dtype="datetime64[ns]")
    if present.any():
        distinct_parsed, reading = _parse_distinct(pd.Index(texts[present]), file, column, spec)
        parsed[present] = distinct_parsed.to_numpy()
    else:
        reading = None
    out = pd.Series(np.where(codes >= 0, parsed[np.maximum(codes, 0)], np.datetime64("NaT")), index=values.index,
                    dtype="datetime64[ns]")
    if reading:
        # Counted where the frame is validated: the user learns how their dates were read.
        out.attrs[NOTES] = [(f"dates_read.{column}", 1, f"column '{column}': {reading}")]
    return out


def _naive_utc(values: pd.Series) -> pd.Series:
    """Timezone-aware -> UTC wall time without the zone; naive stays as it is."""
    if values.dt.tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[ns]")


def _to_datetime(texts: pd.Index, fmt: str) -> pd.DatetimeIndex:
    parsed = pd.to_datetime(texts, format=fmt, errors="coerce", utc="%z" in fmt or fmt == "ISO8601")
    if parsed.tz is not None:
        parsed = parsed.tz_convert("UTC").tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _iso_or_none(texts: pd.Index) -> pd.DatetimeIndex | None:
    """ISO 8601 texts without offsets, or all with the same one, parsed; None for anything else.

    The common case, cheaply: mixed offsets (a DST change) and other layouts take the slow path.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # mixed offsets: an object index, handled below
            parsed = pd.to_datetime(texts, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    if not isinstance(parsed, pd.DatetimeIndex):
        return None
    if parsed.tz is not None:
        parsed = parsed.tz_convert("UTC").tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _parse_distinct(texts: pd.Index, file: str, column: str, spec: DateSpec) -> tuple[pd.Series, str | None]:
    """Distinct date texts -> timestamps, by the rules of :func:`as_datetime`, and how a non-ISO column was read
    without being told (None when ISO, given, or certain from the text alone)."""
    set_format = f"set {spec.format_param} (e.g. '%d/%m/%Y %H:%M')"
    if spec.date_format:
        parsed = _to_datetime(texts, spec.date_format)
        bad = texts[parsed.isna()]
        if len(bad):
            raise DataContractError(file, column, f"{len(bad)} distinct value(s) do not match "
                                                  f"{spec.format_param}={spec.date_format!r}, e.g. {_examples(bad)}")
        return pd.Series(parsed, index=texts), None
    iso = _iso_or_none(texts)
    if iso is not None:
        return pd.Series(iso, index=texts), None
    offset = texts.str.contains(_OFFSET)
    if offset.any() and not offset.all():
        raise DataContractError(file, column, f"mixes times with a UTC offset and times without one, e.g. "
                                              f"{texts[offset][0]!r} and {texts[~offset][0]!r}: the ones without "
                                              f"cannot be placed in time; export every time with its offset")
    iso = _to_datetime(texts, "ISO8601")
    if iso.notna().all():
        return pd.Series(iso, index=texts), None
    shapes = _shapes(texts)
    month_first, month_layouts = _read_by_shape(texts, shapes, dayfirst=False)
    day_first, day_layouts = _read_by_shape(texts, shapes, dayfirst=True)
    not_dates = texts[month_first.isna().to_numpy() & day_first.isna().to_numpy()]
    if len(not_dates):
        raise DataContractError(file, column, f"{len(not_dates)} distinct value(s) are not dates, e.g. "
                                              f"{_examples(not_dates)}; if they are, {set_format}")
    for layouts in (month_layouts, day_layouts):
        if len(layouts) > 1:
            first, second = list(layouts.values())[:2]
            raise DataContractError(file, column, f"mixes date layouts, e.g. {first!r} and {second!r}: export one "
                                                  f"layout, or {set_format} and convert the rest")
    month_ok, day_ok = month_first.notna().all(), day_first.notna().all()
    if spec.dayfirst:
        if day_ok:
            return day_first, None
        only_month = texts[day_first.isna().to_numpy()]
        raise DataContractError(file, column, f"{spec.dayfirst_param} is set, but {_examples(only_month)} cannot be "
                                              f"read day-first: {set_format} to the layout of the column")
    if month_ok and day_ok:
        differ = texts[(month_first != day_first).to_numpy()]
        if len(differ):
            a = differ[0]
            raise DataContractError(
                file, column,
                f"{len(differ)} distinct date(s) read differently day-first and month-first, e.g. {_examples(differ)} "
                f"({a!r}: {day_first[a]:%d %b %Y} or {month_first[a]:%d %b %Y}?): set {spec.dayfirst_param}=true "
                f"for day-first dates, or {spec.format_param} (e.g. '%m/%d/%Y') for month-first ones")
        return month_first, None
    # Values such as 31/12/2021 (or 12/31/2021) exist: one reading is the only one for the whole column.
    for ok, reading, other, layouts, name in ((month_ok, month_first, day_first, month_layouts, "month-first"),
                                             (day_ok, day_first, month_first, day_layouts, "day-first")):
        if ok:
            proof = texts[other.isna().to_numpy()][0]
            return reading, (f"read {name} ({', '.join(layouts)}): the only reading of values such as {proof!r}; "
                             f"set {spec.format_param} to say so and silence this")
    only_day = texts[month_first.isna().to_numpy()]
    only_month = texts[day_first.isna().to_numpy()]
    raise DataContractError(file, column, f"mixes day-first and month-first dates, e.g. {only_day[0]!r} (only "
                                          f"day-first) and {only_month[0]!r} (only month-first): fix the export, "
                                          f"or {set_format} and convert the rest")


def _read_by_shape(texts: pd.Index, shapes: pd.Index, dayfirst: bool) -> tuple[pd.Series, dict[str, str]]:
    """Every text parsed with the layout pandas guesses for its shape, day or month first.

    The shape is the text with digits and letters masked (``05/01/2021 10:30`` -> ``99/99/9999 99:99``).
    Returns the parsed texts (NaT where no layout fits) and each date layout found, with an example.
    """
    parsed = np.full(len(texts), np.datetime64("NaT"), dtype="datetime64[ns]")
    layouts: dict[str, str] = {}
    for shape in pd.unique(shapes):
        where = np.flatnonzero(shapes == shape)
        members = texts[where]
        fmt = next((f for f in (_layout(t, dayfirst) for t in members[:_SHAPES_TRIED]) if f), None)
        if fmt is None:
            continue
        values = _to_datetime(members, fmt)
        parsed[where] = values.to_numpy()
        if values.notna().any():
            layouts.setdefault(_date_part(fmt), members[0])
    return pd.Series(parsed, index=texts), layouts


_MASK = str.maketrans({**{c: "9" for c in "0123456789"},
                       **{c: "a" for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}})


def _shapes(texts: pd.Index) -> pd.Index:
    return pd.Index([t.translate(_MASK) for t in texts])


def _layout(text: str, dayfirst: bool) -> str | None:
    """pandas' guess of the text's layout, with day and month in the order asked for.

    pandas guesses from the one text (``13/01/2021`` is day-first whatever is asked); the
    order is forced so that every text of a shape is read the same way. A layout that
    starts with the year is always year-month-day.
    """
    with warnings.catch_warnings():  # pandas warns that the guess ignores ``dayfirst``: it is forced below
        warnings.simplefilter("ignore", UserWarning)
        fmt = guess_datetime_format(text, dayfirst=dayfirst)
    if fmt is None or "%d" not in fmt or "%m" not in fmt:
        return fmt
    want_day_first = dayfirst and not fmt.startswith("%Y")
    if (fmt.index("%d") < fmt.index("%m")) != want_day_first:
        fmt = fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
    return fmt


def _date_part(fmt: str) -> str:
    """The date part of a layout (what precedes the time), full and short month names alike."""
    cut = min([fmt.index(t) for t in ("%H", "%I") if t in fmt] or [len(fmt)])
    return fmt[:cut].rstrip(" T").replace("%B", "%b")


def _examples(texts: pd.Index) -> str:
    """Two of the texts, one from the start and one from the middle (so they show two different dates)."""
    picked = [texts[0]] + ([texts[len(texts) // 2]] if len(texts) > 1 else [])
    return " and ".join(repr(t) for t in picked)


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
    """Raise on the first missing column, naming a header that nearly matches it (a typo) if there is one."""
    missing = [c for c in columns if c not in df.columns]
    if not missing:
        return
    present = {normalize_header(c): str(c) for c in df.columns}
    for column in missing:
        near = difflib.get_close_matches(normalize_header(column), list(present), n=1, cutoff=0.8)
        if near:
            raise DataContractError(file, column, f"missing; the file has {present[near[0]]!r}: if that is it, "
                                                  f"rename the header to {column!r}")
    if len(df.columns) == 1:
        header = str(df.columns[0])
        for name, sep in (("semicolon", ";"), ("tab", "\t"), ("pipe", "|"), ("comma", ",")):
            if sep in header:
                raise DataContractError(file, missing[0], f"missing: the file was read as one column "
                                                          f"({header[:60]!r}...); it looks {sep!r}-separated: "
                                                          f"set csv_sep={name}")
    more = f" (and {len(missing) - 1} more: {', '.join(missing[1:6])}{'...' if len(missing) > 6 else ''})" \
        if len(missing) > 1 else ""
    raise DataContractError(file, missing[0], f"missing{more}")


def normalize_header(name: object) -> str:
    """A header as compared across exports: surrounding spaces and case do not count."""
    return str(name).strip().casefold()


def check_duplicate_headers(headers: Iterable[object], file: str) -> None:
    """Refuse a header line that names a column twice, also when the two differ only in case or spaces."""
    seen: dict[str, list[tuple[int, str]]] = {}
    for position, name in enumerate(headers, start=1):
        if str(name).strip():  # an unnamed column (a row index) may come more than once
            seen.setdefault(normalize_header(name), []).append((position, str(name)))
    twice = {key: spots for key, spots in seen.items() if len(spots) > 1}
    if twice:
        spots = next(iter(twice.values()))
        where = " and ".join(f"{name!r} (column {position})" for position, name in spots)
        others = f"; also {', '.join(repr(k) for k in list(twice)[1:4])}" if len(twice) > 1 else ""
        raise DataContractError(file, spots[0][1], f"duplicated header: {where}{others}; a column must be named "
                                                   f"once, or one of the two would be silently ignored")


def match_headers(df: pd.DataFrame, expected: Iterable[str], file: str) -> pd.DataFrame:
    """``df`` with headers that equal an expected column after trimming and case-folding renamed to it.

    Each rename is noted on the frame (see :func:`note`) and counted in the file's report.
    """
    expected = [c for c in dict.fromkeys(expected) if c]
    taken = set(map(str, df.columns))
    by_key: dict[str, list[str]] = {}
    for column in df.columns:
        by_key.setdefault(normalize_header(column), []).append(column)
    renames = {}
    for column in expected:
        if column in taken:
            continue
        candidates = [c for c in by_key.get(normalize_header(column), []) if c not in expected and c not in renames]
        if candidates:
            renames[candidates[0]] = column
    if not renames:
        return df
    out = df.rename(columns=renames)
    shown = ", ".join(f"{old!r} -> {new!r}" for old, new in list(renames.items())[:5])
    note(out, "headers_matched", len(renames), f"{len(renames)} header(s) matched after trimming spaces and "
                                                f"case: {shown}{'...' if len(renames) > 5 else ''}")
    return out


def note(df: pd.DataFrame, key: str, count: int, message: str) -> None:
    """Attach a counted finding to a frame as it is read; the schema's validation reports it."""
    df.attrs.setdefault(NOTES, [])
    df.attrs[NOTES] = [*df.attrs[NOTES], (key, int(count), message)]


NOTES = "lead2value.read_notes"


def set_dates(df: pd.DataFrame, column: str, parsed: pd.Series) -> None:
    """Put parsed dates into ``df[column]``, keeping how they were read among the frame's notes."""
    df[column] = parsed
    for key, count, message in parsed.attrs.get(NOTES, []):
        note(df, key, count, message)


def report_notes(report: ContractReport, df: pd.DataFrame) -> None:
    """Count the findings noted on ``df`` while it was read (header matches, a sniffed separator ...)."""
    for key, count, message in df.attrs.get(NOTES, []):
        report.warn(key, count, message)


def require_rows(df: pd.DataFrame, file: str) -> None:
    if len(df) == 0:
        raise DataContractError(file, None, "no rows (empty file or header only)")


def require_not_all_null(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    for column in columns:
        if column in df.columns and df[column].isna().all():
            raise DataContractError(file, column, "is empty in every row")


def check_kind(values: pd.Series, kind: str, file: str, column: str, spec: DateSpec | None = None) -> pd.Series:
    if kind == "datetime":
        return as_datetime(values, file, column, spec)
    if kind in ("id", "integer"):
        return as_whole_number(values, file, column)
    if kind == "number":
        return as_number(values, file, column)
    return values


def warn_extra_columns(report: ContractReport, df: pd.DataFrame, expected: Iterable[str]) -> None:
    extra = [c for c in df.columns if c not in set(expected)]
    report.warn("extra_columns", len(extra), f"{len(extra)} extra column(s) ignored: {', '.join(map(str, extra[:8]))}")


WRITTEN_AT = "lead2value.written_at"


def warn_implausible_dates(report: ContractReport, stamps: pd.Series, column: str,
                           as_of: pd.Timestamp | None = None, written_at: object = None) -> None:
    """Count dates after the data can exist and before :data:`PLAUSIBLE_START`.

    The upper bound is ``as_of``, else when the file was last written (``written_at``: a
    record cannot describe an event after its file was written; the readers note it on
    the frame under :data:`WRITTEN_AT`), else now. Such dates are often day and month read
    the wrong way round, or typos.
    """
    now = pd.Timestamp.now()
    if as_of is not None:
        bound, what = pd.Timestamp(as_of), "the reference date"
    elif written_at is not None:
        bound, what = min(pd.Timestamp(written_at), now), "the file was last written"
    else:
        bound, what = now, "today"
    future = stamps > bound
    report.warn(f"future_dates.{column}", int(future.sum()),
                f"column '{column}': {int(future.sum())} date(s) after {what} ({bound:%Y-%m-%d}), "
                f"e.g. {stamps[future].iloc[0] if future.any() else ''}")
    early = stamps < PLAUSIBLE_START
    report.warn(f"early_dates.{column}", int(early.sum()),
                f"column '{column}': {int(early.sum())} date(s) before {PLAUSIBLE_START:%Y-%m-%d}, "
                f"e.g. {stamps[early].iloc[0] if early.any() else ''}: placeholders or typos?")
