"""Cleaning raw CodePro leads: the original pipeline's stages, stage by stage.

The stages reproduce the original CodePro cleaning exactly (unit tests compare
each one with the golden tables of ``stage_outputs_100.db``):

1. :func:`load_leads` drops the unnamed index column and fills missing
   ``total_leads_droppped`` / ``referred_lead`` with 0;
2. :func:`map_city_tier` turns ``city_mapped`` into ``city_tier`` (76 named cities,
   every other or missing city is tier 3) and drops ``city_mapped``;
3. :func:`map_categorical_levels` keeps the significant levels of platform, UTM
   medium and UTM source and maps every other level to ``"others"``;
4. :func:`map_interactions` drops duplicate rows and sums the 37 interaction flags
   into 5 groups, one row per distinct lead (as the original pivot table did).

:func:`clean_leads` runs them all, keeps the raw city name as ``city`` for the
model, and returns a report of what it changed.

The lead model does not train on the output of :func:`clean_leads`: its first step is
:class:`LeadCleaner`, the same stages row for row (city tier, significant levels,
interaction groups) as a scikit-learn transformer. It learns the significant levels in
``fit``, so on the training rows only (in every CV fold, on the fold's training rows),
and it takes leads in the export's raw schema, so the registered model does too. It
neither drops nor merges rows: duplicates are dropped from the training table beforehand
(:func:`drop_duplicate_leads`, which ignores the lead's id), and a scored lead is never
merged with another.

Which significant levels? By default they are *learned* from the training leads
(:func:`learn_significant_levels`, top 90 % cumulative frequency) and recorded in
the report, and new leads are cleaned with the training leads' levels. The
original CodePro lists were computed on CodePro's full 240,000 leads; the
project also runs on synthetic data and on users' own exports, whose channel
codes need not match, so frozen lists would silently send most of their levels to
"others". An explicit dict (e.g. the CodePro lists) is accepted as well.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.base import BaseEstimator, TransformerMixin

from utils.core.contracts import DataContractError
from utils.leads.schema import INTERACTION_COLUMNS, LEADS_TARGET, duplicated_leads

logger = logging.getLogger(__name__)

RESOURCES_DIR = Path(__file__).resolve().parent / "resources"
CITY_TIERS_FILE = RESOURCES_DIR / "city_tiers.yaml"
INTERACTION_GROUPS_FILE = RESOURCES_DIR / "interaction_groups.yaml"
LEVEL_COLUMNS = ("first_platform_c", "first_utm_medium_c", "first_utm_source_c")
OTHERS = "others"
NULL_TO_ZERO = ("total_leads_droppped", "referred_lead")
# The raw city name, kept next to the tier: the model learns more from it than from the tier.
CITY_COLUMN = "city"
# The original pivot table's index: its order is the sort order of the clean leads.
PIVOT_KEYS = ("created_date", "city_tier", *LEVEL_COLUMNS, "total_leads_droppped", "referred_lead", LEADS_TARGET)
# Keys of the CodePro significant-levels JSON, accepted as aliases of the column names.
_JSON_KEYS = {"list_platform": "first_platform_c", "list_medium": "first_utm_medium_c",
              "list_source": "first_utm_source_c"}


class UnseenLevelWarning(UserWarning):
    """New leads hold levels (or cities) the training leads never had; they are counted, not rejected."""


# --- the mapping facts --------------------------------------------------------------------


def read_city_tiers(path: str | Path = CITY_TIERS_FILE) -> tuple[dict[str, float], float]:
    """(city -> tier, tier of every other city) from the YAML resource."""
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    tiers = {str(city): float(tier) for tier, cities in spec["tiers"].items() for city in cities}
    return tiers, float(spec["default_tier"])


def read_interaction_groups(path: str | Path = INTERACTION_GROUPS_FILE) -> dict[str, str]:
    """interaction column -> group column (e.g. 'chat_clicked' -> 'assistance_interaction')."""
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return {str(column): str(group) for group, columns in spec["groups"].items() for column in columns}


# Cached for the stages; LeadCleaner reads the files itself (a cached function would be pickled
# by reference with the model, and a client without this package could not load it).
load_city_tiers = lru_cache(maxsize=4)(read_city_tiers)
load_interaction_groups = lru_cache(maxsize=4)(read_interaction_groups)


# --- the stages ---------------------------------------------------------------------------


def _require(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    for column in columns:
        if column not in df.columns:
            raise DataContractError(file, column, "missing: needed by lead cleaning")


def load_leads(raw: pd.DataFrame, file: str = "<leads>") -> pd.DataFrame:
    """Stage 1: drop the unnamed index column, fill missing lead counts and referral flags with 0."""
    df = raw.copy()
    first = str(df.columns[0]) if len(df.columns) else ""
    if first.startswith("Unnamed: 0") or first == "":
        df = df.drop(columns=df.columns[0])
    _require(df, NULL_TO_ZERO, file)
    for column in NULL_TO_ZERO:
        df[column] = df[column].fillna(0)
    return df


def map_city_tier(df: pd.DataFrame, file: str = "<leads>") -> pd.DataFrame:
    """Stage 2: ``city_mapped`` -> ``city_tier`` (float; unmapped and missing cities get the default tier)."""
    _require(df, ["city_mapped"], file)
    tiers, default_tier = load_city_tiers()
    out = df.copy()
    out["city_tier"] = out["city_mapped"].map(tiers).fillna(default_tier).astype("float64")
    return out.drop(columns=["city_mapped"])


def learn_significant_levels(
    df: pd.DataFrame, cols: Iterable[str] = LEVEL_COLUMNS, cumulative: float = 0.90
) -> dict[str, list[str]]:
    """The most frequent levels per column that together cover ``cumulative`` of the (non-missing) rows.

    The level that crosses the threshold is kept. Ties in frequency are broken by
    the level's name, so the result does not depend on row order. Learn them on
    training leads only: new leads are then cleaned with the same levels.
    """
    if not 0 < cumulative <= 1:
        raise ValueError(f"cumulative must be in (0, 1], got {cumulative}")
    levels = {}
    for column in cols:
        _require(df, [column], "<training leads>")
        counts = df[column].dropna().astype(str).value_counts()
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        share = counts.cumsum() / max(counts.sum(), 1)
        # Keep every level before the threshold is reached, plus the one that reaches it.
        n_keep = int((share < cumulative - 1e-12).sum()) + 1
        levels[column] = list(counts.index[:n_keep])
    return levels


def normalise_levels(significant_levels: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Column name -> list of levels; the CodePro JSON keys (list_platform ...) are accepted too."""
    out = {_JSON_KEYS.get(key, key): [str(level) for level in levels] for key, levels in significant_levels.items()}
    missing = [column for column in LEVEL_COLUMNS if column not in out]
    if missing:
        raise ValueError(f"significant levels lack column(s) {missing}; got keys {sorted(significant_levels)}")
    return out


def map_categorical_levels(
    df: pd.DataFrame, significant_levels: Mapping[str, Iterable[str]], file: str = "<leads>"
) -> pd.DataFrame:
    """Stage 3: levels outside ``significant_levels`` (missing values included) become ``"others"``.

    Row order is kept (the original concatenated "others" rows first, an artefact
    with no meaning; the golden test compares rows regardless of order).
    """
    levels = normalise_levels(significant_levels)
    _require(df, LEVEL_COLUMNS, file)
    out = df.copy()
    for column in LEVEL_COLUMNS:
        out[column] = out[column].where(out[column].isin(set(levels[column])), OTHERS)
    return out


def map_interactions(df: pd.DataFrame, file: str = "<leads>") -> pd.DataFrame:
    """Stage 4: drop duplicates, sum the 37 interaction flags into 5 ``*_interaction`` counts (int64).

    As in the original (a pivot table over every other column), rows that agree
    on every non-interaction column become one row with summed counts, and the
    result is sorted by those columns (so by ``created_date`` first). Missing
    keys are kept, not silently dropped as the pivot table would.
    """
    groups = load_interaction_groups()
    _require(df, INTERACTION_COLUMNS, file)
    values = df[list(INTERACTION_COLUMNS)].apply(pd.to_numeric, errors="coerce").fillna(0)
    fractional = values.columns[(values % 1 != 0).any()]
    if len(fractional):
        raise DataContractError(file, fractional[0], "interaction counts must be whole numbers")
    deduped = df.drop_duplicates()
    values = values.loc[deduped.index]
    keys = [c for c in PIVOT_KEYS if c in deduped.columns]
    keys += [c for c in deduped.columns if c not in set(keys) | set(INTERACTION_COLUMNS)]
    members: dict[str, list[str]] = {}
    for column, group in groups.items():
        members.setdefault(group, []).append(column)
    sums = pd.DataFrame({group: values[members[group]].sum(axis=1).astype("int64") for group in sorted(members)},
                        index=deduped.index)
    merged = pd.concat([deduped[keys], sums], axis=1)
    out = merged.groupby(keys, sort=True, dropna=False, as_index=False)[list(sums.columns)].sum()
    return out.reset_index(drop=True)


# --- the stages as the model's first step -------------------------------------------------

# What LeadCleaner reads from a raw lead: the city, the channels, the counts and the 37 flags.
RAW_INPUTS = ("city_mapped", *LEVEL_COLUMNS, *NULL_TO_ZERO, *INTERACTION_COLUMNS)
INTERACTION_GROUPS = ("assistance_interaction", "career_interaction", "payment_interaction",
                      "social_interaction", "syllabus_interaction")
# What it gives the model: the original clean columns (no date, no target) and the raw city.
CLEANED_FEATURES = ("city_tier", *LEVEL_COLUMNS, *NULL_TO_ZERO, *INTERACTION_GROUPS, CITY_COLUMN)


class LeadCleaner(TransformerMixin, BaseEstimator):
    """Raw leads (the export's columns) -> the clean model features, one row out per row in.

    ``fit`` learns the significant channel levels (:func:`learn_significant_levels`) unless
    ``significant_levels`` fixes them, and keeps the city tiers and interaction groups as
    fitted attributes, so a pickled model needs no resource file. ``transform`` applies the
    stages of :func:`clean_leads` row by row: city -> tier, other levels -> ``"others"``,
    missing counts -> 0, the 37 flags summed into 5 groups (a flag column that is absent
    counts as empty), the raw city kept as ``city``. A count that is not a number raises.
    """

    def __init__(self, significant_levels: Mapping[str, Iterable[str]] | None = None, cumulative: float = 0.90):
        self.significant_levels = significant_levels
        self.cumulative = cumulative

    def fit(self, X: pd.DataFrame, y: object = None) -> LeadCleaner:
        frame = self._frame(X, "<training leads>")
        self.feature_names_in_ = np.asarray([c for c in RAW_INPUTS if c in frame.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        if self.significant_levels is None:
            self.levels_ = learn_significant_levels(frame, LEVEL_COLUMNS, self.cumulative)
        else:
            self.levels_ = normalise_levels(self.significant_levels)
        self.city_tiers_, self.default_tier_ = read_city_tiers()
        groups = read_interaction_groups()
        self.groups_ = {group: [c for c in INTERACTION_COLUMNS if groups.get(c) == group] for group in INTERACTION_GROUPS}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        frame = self._frame(X, "<leads>")
        out = pd.DataFrame(index=frame.index)
        city = frame["city_mapped"].astype(object).where(frame["city_mapped"].notna(), None)
        out["city_tier"] = city.map(self.city_tiers_).fillna(self.default_tier_).astype("float64")
        for column in LEVEL_COLUMNS:
            levels = frame[column].astype(object)
            out[column] = levels.where(levels.isin(set(self.levels_[column])), OTHERS).astype(object)
        for column in NULL_TO_ZERO:
            out[column] = self._numbers(frame, column).fillna(0.0)
        for group, columns in self.groups_.items():
            present = [c for c in columns if c in frame.columns]
            flags = pd.DataFrame({c: self._numbers(frame, c) for c in present}, index=frame.index)
            out[group] = flags.sum(axis=1, min_count=0).astype("float64") if present else 0.0
        out[CITY_COLUMN] = city
        return out[list(CLEANED_FEATURES)]

    def get_feature_names_out(self, input_features: Iterable[str] | None = None) -> np.ndarray:
        return np.asarray(CLEANED_FEATURES, dtype=object)

    @staticmethod
    def _frame(X: pd.DataFrame, file: str) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("LeadCleaner takes a pandas DataFrame of raw leads (named columns)")
        for column in ("city_mapped", *LEVEL_COLUMNS, *NULL_TO_ZERO):
            if column not in X.columns:
                raise DataContractError(file, column, "missing: the lead model reads it")
        return X

    @staticmethod
    def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            raise DataContractError("<leads>", column, f"{int(bad.sum())} value(s) are not numbers, "
                                                       f"e.g. {frame.loc[bad, column].iloc[0]!r}")
        return values


def drop_duplicate_leads(leads: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Training leads with one copy of each lead (ids ignored: two identical leads with different ids are one)."""
    duplicated = duplicated_leads(leads)
    return leads[~duplicated].reset_index(drop=True), int(duplicated.sum())


# --- the whole pipeline -------------------------------------------------------------------


def _count_outside(series: pd.Series, known: set) -> tuple[int, int]:
    """(rows, distinct levels) of non-missing values not in ``known``."""
    values = series.dropna().astype(str)
    outside = values[~values.isin(known)]
    return len(outside), int(outside.nunique())


def _warn(report: dict, message: str) -> None:
    report["warnings"].append(message)
    warnings.warn(message, UnseenLevelWarning, stacklevel=3)


def clean_leads(
    raw: pd.DataFrame,
    significant_levels: Mapping[str, Iterable[str]] | None = None,
    cumulative: float = 0.90,
    known_levels: Mapping[str, Iterable[str]] | None = None,
    keep_city: bool = True,
    file: str = "<leads>",
) -> tuple[pd.DataFrame, dict]:
    """Run the four stages on raw leads; return the clean frame and a report.

    ``significant_levels=None`` learns them from ``raw`` (pass training leads);
    for new leads pass the training report's ``significant_levels`` and, to count
    levels and cities never seen in training, ``known_levels`` (column -> levels,
    e.g. :func:`utils.validate.leads_levels` of the training leads). Unseen values
    warn (:class:`UnseenLevelWarning`) and are counted; they never stop the run.
    The clean frame holds the 13 columns of the original output (12 without a
    target) plus, with ``keep_city``, the raw city name as ``city``.
    """
    report: dict = {"file": str(file), "rows_in": len(raw), "warnings": []}
    loaded = load_leads(raw, file)
    _require(loaded, ["created_date", "city_mapped", *LEVEL_COLUMNS], file)
    report["nulls_filled_with_zero"] = {c: int(raw[c].isna().sum()) for c in NULL_TO_ZERO if c in raw.columns}
    if significant_levels is None:
        levels, source = learn_significant_levels(loaded, LEVEL_COLUMNS, cumulative), f"learned (cumulative {cumulative})"
    else:
        levels, source = normalise_levels(significant_levels), "given"
    report["significant_levels"] = levels
    report["significant_levels_source"] = source

    tiers, _ = load_city_tiers()
    city = loaded["city_mapped"]
    report["cities_missing"] = int(city.isna().sum())
    report["rows_city_not_in_tier_map"] = _count_outside(city, set(tiers))[0]
    report["levels_mapped_to_others"] = {
        c: int((~loaded[c].isin(set(levels[c]))).sum()) for c in LEVEL_COLUMNS}

    report["unseen_levels"] = {}
    for column, known in (known_levels or {}).items():
        if column not in loaded.columns:
            continue
        rows, distinct = _count_outside(loaded[column], {str(level) for level in known})
        report["unseen_levels"][column] = rows
        if rows:
            _warn(report, f"{file}: column '{column}': {rows} row(s) with {distinct} level(s) unseen in training")
    for column in LEVEL_COLUMNS:
        share = report["levels_mapped_to_others"][column] / max(len(loaded), 1)
        if source == "given" and share > 0.5:
            _warn(report, f"{file}: column '{column}': {share:.0%} of rows fall outside the given significant "
                          f"levels and become '{OTHERS}': do these levels belong to this data?")

    staged = map_categorical_levels(map_city_tier(loaded, file), levels, file)
    if keep_city:
        staged[CITY_COLUMN] = city.astype(object).where(city.notna(), None)
    deduped_rows = len(staged.drop_duplicates())
    clean = map_interactions(staged, file)
    report["duplicates_dropped"] = int(len(staged) - deduped_rows)
    report["rows_merged_same_key"] = int(deduped_rows - len(clean))
    report["rows_out"] = len(clean)
    if LEADS_TARGET in clean.columns:
        report["positive_share"] = float(clean[LEADS_TARGET].mean()) if len(clean) else None
    logger.info("%s: %d raw leads -> %d clean leads", file, report["rows_in"], report["rows_out"])
    return _order_columns(clean), report


CLEAN_COLUMNS = (
    "created_date", "city_tier", *LEVEL_COLUMNS, "total_leads_droppped", "referred_lead", LEADS_TARGET,
    "assistance_interaction", "career_interaction", "payment_interaction", "social_interaction",
    "syllabus_interaction",
)


def _order_columns(clean: pd.DataFrame) -> pd.DataFrame:
    """The original output's column order, extra columns (the raw city) last."""
    first = [c for c in CLEAN_COLUMNS if c in clean.columns]
    return clean[first + [c for c in clean.columns if c not in set(first)]]
