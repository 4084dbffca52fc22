import numpy as np
import pandas as pd
import pytest

from utils.clv import gdp


@pytest.mark.parametrize("name, iso3", [
    ("EIRE", "IRL"), ("RSA", "ZAF"), ("USA", "USA"), ("United Kingdom", "GBR"), ("united  kingdom ", "GBR"),
    ("Ireland", "IRL"), ("Germany", "DEU"), ("Korea, Rep.", "KOR"), ("Korea, Dem. Rep.", "PRK"),
    ("Hong Kong", "HKG"), ("Czech Republic", "CZE"), ("Lithuania", "LTU"), ("FRA", "FRA"),
])
def test_country_to_iso3_knows_export_spellings(name, iso3):
    assert gdp.country_to_iso3(name) == iso3


@pytest.mark.parametrize("name", ["Unspecified", "European Community", "Channel Islands", "Atlantis", "", None, np.nan])
def test_names_that_are_no_country_get_no_code(name):
    assert gdp.country_to_iso3(name) is None


def test_gdp_table_is_latest_gapminder_year_one_row_per_code():
    table = gdp.gdp_table()
    assert list(table.columns) == ["iso3", "country", "gdp_per_capita", "year"]
    assert len(table) == 142 and table["iso3"].is_unique
    assert (table["year"] == 2007).all() and (table["gdp_per_capita"] > 0).all()
    table.loc[0, "gdp_per_capita"] = -1.0  # a copy: the cached table stays intact
    assert (gdp.gdp_table()["gdp_per_capita"] > 0).all()


def test_gdp_per_capita_lookup():
    assert 30_000 < gdp.gdp_per_capita("GBR") < 40_000
    assert gdp.gdp_per_capita("LTU") is None and gdp.gdp_per_capita(None) is None


def test_attach_gdp_counts_every_row_without_gdp():
    customers = pd.DataFrame({"country": ["EIRE", "EIRE", "Unspecified", "Lithuania", None, "USA"]})
    out, report = gdp.attach_gdp(customers)
    assert len(out) == 6 and list(out["iso3"][:2]) == ["IRL", "IRL"]
    assert out["gdp_per_capita"].notna().sum() == 3
    assert report == {"rows": 6, "missing_country_rows": 1, "unmatched_rows": 1,
                      "unmatched_countries": {"Unspecified": 1}, "without_gdp_rows": 1,
                      "without_gdp_countries": {"Lithuania": 1}}
    assert "iso3" not in customers.columns


def test_real_retail_countries_all_resolve_or_are_counted(shared_data):
    path = shared_data / "clv" / "online_retail_2010_2011.parquet"
    if not path.exists():
        pytest.skip(f"{path} absent")
    countries = pd.read_parquet(path, columns=["Country"])["Country"].drop_duplicates().rename("country")
    out, report = gdp.attach_gdp(countries.to_frame())
    assert report["rows"] == len(countries) == 38
    assert set(report["unmatched_countries"]) == {"Unspecified", "European Community", "Channel Islands"}
    assert out.loc[out["country"] == "EIRE", "iso3"].item() == "IRL"
