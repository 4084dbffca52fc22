"""GDP per capita by country, from the gapminder table that ships with plotly (no download).

Customer files spell countries the way their source system does ("EIRE", "RSA",
"USA", "United Kingdom"), so names go through :func:`country_to_iso3` first. gapminder
covers 142 countries; a country with an ISO code but no gapminder row gets no GDP,
and a name that is not a country ("Unspecified", "European Community") gets no code:
both are counted by :func:`attach_gdp`, never dropped.
"""
from __future__ import annotations

import math
from functools import lru_cache

import pandas as pd
import plotly.express as px

# Spellings seen in exports -> ISO 3166 alpha-3. None: a name that is no single country.
ALIASES: dict[str, str | None] = {
    "eire": "IRL", "rsa": "ZAF", "usa": "USA", "us": "USA", "united states of america": "USA",
    "uk": "GBR", "great britain": "GBR", "england": "GBR", "scotland": "GBR", "wales": "GBR",
    "northern ireland": "GBR", "korea": "KOR", "south korea": "KOR", "hong kong": "HKG",
    "czechia": "CZE", "slovakia": "SVK", "russia": "RUS", "russian federation": "RUS",
    "the netherlands": "NLD", "holland": "NLD", "uae": "ARE", "united arab emirates": "ARE",
    "lithuania": "LTU", "latvia": "LVA", "estonia": "EST", "cyprus": "CYP", "malta": "MLT",
    "luxembourg": "LUX", "ukraine": "UKR", "belarus": "BLR", "moldova": "MDA", "qatar": "QAT",
    "brunei": "BRN", "macau": "MAC", "viet nam": "VNM", "ivory coast": "CIV", "eswatini": "SWZ",
    "channel islands": None, "european community": None, "european union": None,
    "unspecified": None, "unknown": None, "other": None, "n/a": None, "": None,
}


@lru_cache(maxsize=1)
def _gapminder_latest() -> pd.DataFrame:
    data = px.data.gapminder()
    latest = data.loc[data.groupby("country")["year"].idxmax()]
    iso3 = latest["iso_alpha"].astype(str).to_numpy().copy()
    # gapminder codes North Korea as KOR, South Korea's code: one code, one country.
    iso3[latest["country"].to_numpy() == "Korea, Dem. Rep."] = "PRK"
    table = pd.DataFrame({
        "iso3": iso3,
        "country": latest["country"].astype(str).to_numpy(),
        "gdp_per_capita": latest["gdpPercap"].astype("float64").to_numpy(),
        "year": latest["year"].astype("int64").to_numpy(),
    })
    return table.sort_values("iso3", kind="stable").reset_index(drop=True)


def gdp_table() -> pd.DataFrame:
    """iso3, country (gapminder's spelling), gdp_per_capita (US$, inflation-adjusted), year: latest year per country."""
    return _gapminder_latest().copy()


@lru_cache(maxsize=4096)
def country_to_iso3(name: str | None) -> str | None:
    """ISO alpha-3 code of a country name as an export spells it; None when it names no country."""
    if name is None or (isinstance(name, float) and math.isnan(name)):
        return None
    key = " ".join(str(name).split()).casefold()
    if key in ALIASES:
        return ALIASES[key]
    table = _gapminder_latest()
    by_name = dict(zip(table["country"].str.casefold(), table["iso3"]))
    if key in by_name:
        return by_name[key]
    # gapminder writes "Korea, Rep." / "Hong Kong, China": try the part before the comma.
    by_head = {c.split(",")[0]: iso for c, iso in by_name.items()}
    if key in by_head and key not in ("korea", "congo"):
        return by_head[key]
    code = str(name).strip().upper()
    return code if code in set(table["iso3"]) else None


def gdp_per_capita(iso3: str | None) -> float | None:
    """Latest gapminder GDP per capita of a country code, or None."""
    if iso3 is None:
        return None
    table = _gapminder_latest().set_index("iso3")["gdp_per_capita"]
    return float(table[iso3]) if iso3 in table.index else None


def attach_gdp(df: pd.DataFrame, country_column: str = "country") -> tuple[pd.DataFrame, dict]:
    """Add ``iso3`` and ``gdp_per_capita`` columns, and count the rows that get none.

    Returns the frame (a copy) and {rows, unmatched_rows, unmatched_countries,
    without_gdp_rows, without_gdp_countries, missing_country_rows}; the *_countries
    entries map each name to its number of rows.
    """
    out = df.copy()
    names = out[country_column]
    distinct = pd.Series(names.dropna().unique())
    codes = dict(zip(distinct, distinct.map(country_to_iso3)))
    out["iso3"] = names.map(codes).astype(object)
    gdp = _gapminder_latest().set_index("iso3")["gdp_per_capita"]
    out["gdp_per_capita"] = out["iso3"].map(gdp).astype("float64")
    has_name = names.notna()
    unmatched = names[has_name & out["iso3"].isna()].value_counts()
    no_gdp = names[out["iso3"].notna() & out["gdp_per_capita"].isna()].value_counts()
    report = {
        "rows": len(out),
        "missing_country_rows": int((~has_name).sum()),
        "unmatched_rows": int(unmatched.sum()),
        "unmatched_countries": {str(k): int(v) for k, v in unmatched.items()},
        "without_gdp_rows": int(no_gdp.sum()),
        "without_gdp_countries": {str(k): int(v) for k, v in no_gdp.items()},
    }
    return out, report
