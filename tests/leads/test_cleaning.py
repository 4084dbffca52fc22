"""Lead cleaning: each stage against the original pipeline's golden tables, plus small cases."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from utils.core.contracts import DataContractError
from utils.leads import cleaning as lc
from utils.leads.schema import INTERACTION_COLUMNS, leads_levels

GOLDEN_TABLES = ("loaded_data_test_case", "city_tier_mapped_test_case",
                 "categorical_variables_mapped_test_case", "interactions_mapped_test_case")


def raw_leads(rows: list[dict]) -> pd.DataFrame:
    """Raw leads in the 45-column schema; unspecified interaction flags are empty."""
    base = {"created_date": pd.Timestamp("2021-07-01 10:00"), "city_mapped": "mumbai",
            "first_platform_c": "Level0", "first_utm_medium_c": "Level0", "first_utm_source_c": "Level0",
            "total_leads_droppped": 1.0, "referred_lead": 0.0, **{c: np.nan for c in INTERACTION_COLUMNS},
            "app_complete_flag": 1}
    return pd.DataFrame([{**base, **row} for row in rows])


# --- golden tables ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden(shared_data):
    codepro = shared_data / "codepro"
    with sqlite3.connect(codepro / "stage_outputs_100.db") as con:
        tables = {name: pd.read_sql(f"select * from {name}", con) for name in GOLDEN_TABLES}
    raw = pd.read_csv(codepro / "leads_test_100.csv")
    levels = json.loads((codepro / "significant_categorical_levels.json").read_text())
    return tables, raw, levels


def assert_matches_golden(ours: pd.DataFrame, expected: pd.DataFrame, ignore_order: bool = False) -> None:
    """Same columns, values and dtypes; the golden (SQLite) table stores dates as text and
    all-empty columns as None, so those are compared as text and as "all missing"."""
    assert list(ours.columns) == list(expected.columns)
    ours = ours.assign(created_date=pd.to_datetime(ours["created_date"]).dt.strftime("%Y-%m-%d %H:%M:%S"))
    empty = [c for c in expected.columns if expected[c].isna().all()]
    for column in empty:
        assert ours[column].isna().all(), f"{column}: golden is all missing, ours is not"
    ours, expected = ours.drop(columns=empty), expected.drop(columns=empty)
    # SQLite gives None where pandas read NaN: the same "missing" for this comparison.
    ours, expected = (f.apply(lambda s: s.astype(object).where(s.notna(), np.nan) if s.dtype == object else s)
                      for f in (ours, expected))
    if ignore_order:
        ours = ours.sort_values(list(ours.columns), kind="stable")
        expected = expected.sort_values(list(expected.columns), kind="stable")
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=True)


@pytest.mark.real_data
def test_stages_match_golden_tables(golden):
    tables, raw, levels = golden
    loaded = lc.load_leads(raw)
    assert_matches_golden(loaded, tables["loaded_data_test_case"])
    tiered = lc.map_city_tier(loaded)
    assert_matches_golden(tiered, tables["city_tier_mapped_test_case"])
    mapped = lc.map_categorical_levels(tiered, levels)
    # The original put "others" rows first (a side effect of pd.concat): rows are compared as a set.
    assert_matches_golden(mapped, tables["categorical_variables_mapped_test_case"], ignore_order=True)
    final = lc.map_interactions(mapped)
    assert_matches_golden(final, tables["interactions_mapped_test_case"])


@pytest.mark.real_data
def test_clean_leads_matches_golden_output_from_contract_dtypes(golden):
    tables, raw, levels = golden
    # What 00_data writes: created_date as datetime64.
    raw = raw.assign(created_date=pd.to_datetime(raw["created_date"]))
    clean, report = lc.clean_leads(raw, significant_levels=levels, keep_city=False)
    assert_matches_golden(clean, tables["interactions_mapped_test_case"])
    assert report["significant_levels_source"] == "given"
    assert report["rows_out"] == len(tables["interactions_mapped_test_case"])


@pytest.mark.real_data
def test_golden_check_would_catch_a_wrong_tier(golden):
    tables, raw, _ = golden
    tiered = lc.map_city_tier(lc.load_leads(raw))
    tiered.loc[tiered.index[0], "city_tier"] = 2.0 if tiered["city_tier"].iloc[0] != 2.0 else 1.0
    with pytest.raises(AssertionError):
        assert_matches_golden(tiered, tables["city_tier_mapped_test_case"])


@pytest.mark.real_data
def test_resources_agree_with_codepro_mapping_files(shared_data):
    codepro = shared_data / "codepro"
    cities = pd.read_csv(codepro / "city_tier_mapping.csv")
    tiers, default_tier = lc.load_city_tiers()
    assert tiers == {c: float(t) for c, t in zip(cities["city_mapped"], cities["city_tier"])}
    assert len(tiers) == 76 and default_tier == 3.0
    interactions = pd.read_csv(codepro / "interaction_mapping.csv", encoding="utf-8-sig")
    assert lc.load_interaction_groups() == dict(zip(interactions["interaction_type"], interactions["interaction_mapping"]))


@pytest.mark.real_data
def test_real_leads_clean_without_surprises(shared_data):
    raw = pd.read_csv(shared_data / "codepro" / "leads_labelled_25k.csv")
    clean, report = lc.clean_leads(raw)
    assert report["duplicates_dropped"] == int(raw.drop(columns=raw.columns[0]).duplicated().sum())
    assert report["rows_out"] == len(clean) == report["rows_in"] - report["duplicates_dropped"] - report["rows_merged_same_key"]
    assert clean["created_date"].is_monotonic_increasing
    assert set(clean["city_tier"]) <= {1.0, 2.0, 3.0}
    assert clean.isna().drop(columns=["city"]).sum().sum() == 0


# --- small cases --------------------------------------------------------------------------


def test_load_drops_index_column_and_fills_counts():
    raw = raw_leads([{"total_leads_droppped": np.nan, "referred_lead": np.nan}, {}])
    raw.insert(0, "Unnamed: 0", [7, 8])
    loaded = lc.load_leads(raw)
    assert "Unnamed: 0" not in loaded.columns
    assert loaded["total_leads_droppped"].tolist() == [0.0, 1.0]
    assert loaded["referred_lead"].tolist() == [0.0, 0.0]


def test_load_names_the_missing_column():
    with pytest.raises(DataContractError, match="'referred_lead'"):
        lc.load_leads(raw_leads([{}]).drop(columns=["referred_lead"]), file="leads.csv")


def test_city_tier_defaults_to_three_for_unmapped_and_missing_cities():
    tiered = lc.map_city_tier(raw_leads([{"city_mapped": "mumbai"}, {"city_mapped": "agra"},
                                         {"city_mapped": "nowhere"}, {"city_mapped": None}]))
    assert tiered["city_tier"].tolist() == [1.0, 2.0, 3.0, 3.0]
    assert tiered["city_tier"].dtype == "float64" and "city_mapped" not in tiered.columns


def test_learn_significant_levels_keeps_the_level_that_crosses_the_threshold():
    df = pd.DataFrame({"c": ["a"] * 6 + ["b"] * 3 + ["c"]})
    assert lc.learn_significant_levels(df, ["c"], 0.5) == {"c": ["a"]}
    assert lc.learn_significant_levels(df, ["c"], 0.6) == {"c": ["a"]}
    assert lc.learn_significant_levels(df, ["c"], 0.61) == {"c": ["a", "b"]}
    assert lc.learn_significant_levels(df, ["c"], 0.9) == {"c": ["a", "b"]}
    assert lc.learn_significant_levels(df, ["c"], 1.0) == {"c": ["a", "b", "c"]}


def test_learn_significant_levels_is_independent_of_row_order_and_rejects_bad_share():
    df = pd.DataFrame({"c": ["y", "x", "y", "x", "z"]})
    assert lc.learn_significant_levels(df, ["c"], 0.5) == lc.learn_significant_levels(df.iloc[::-1], ["c"], 0.5) == {"c": ["x", "y"]}
    with pytest.raises(ValueError, match="cumulative"):
        lc.learn_significant_levels(df, ["c"], 0)


def test_categorical_levels_accept_codepro_json_keys_and_map_missing_to_others():
    raw = raw_leads([{"first_platform_c": "Level0"}, {"first_platform_c": "Level9"}, {"first_platform_c": None}])
    mapped = lc.map_categorical_levels(raw, {"list_platform": ["Level0"], "list_medium": ["Level0"], "list_source": ["Level0"]})
    assert mapped["first_platform_c"].tolist() == ["Level0", "others", "others"]
    with pytest.raises(ValueError, match="first_utm_source_c"):
        lc.map_categorical_levels(raw, {"list_platform": ["Level0"], "list_medium": ["Level0"]})


def test_interactions_sum_per_group_and_drop_duplicates():
    raw = raw_leads([
        {"created_date": pd.Timestamp("2021-07-02"), "chat_clicked": 1.0, "whatsapp_chat_click": 2.0, "syllabus": 1.0},
        {"created_date": pd.Timestamp("2021-07-01")},
        {"created_date": pd.Timestamp("2021-07-01")},  # exact duplicate
    ])
    out = lc.map_interactions(lc.map_city_tier(raw))
    assert len(out) == 2
    assert out["created_date"].is_monotonic_increasing  # the pivot table sorted by its keys
    assert out[["assistance_interaction", "syllabus_interaction", "career_interaction"]].iloc[1].tolist() == [3, 1, 0]
    assert (out.filter(like="_interaction").dtypes == "int64").all()


def test_interactions_reject_fractional_counts():
    with pytest.raises(DataContractError, match="'chat_clicked'"):
        lc.map_interactions(lc.map_city_tier(raw_leads([{"chat_clicked": 0.5}])), file="leads.csv")


def test_clean_leads_learns_levels_and_reports_what_it_did():
    raw = raw_leads([{"first_utm_source_c": "Level1", "city_mapped": "pune"}] * 1
                    + [{"first_utm_source_c": "Level2", "created_date": pd.Timestamp("2021-07-03"), "city_mapped": None}] * 9
                    + [{"created_date": pd.Timestamp("2021-07-05"), "total_leads_droppped": np.nan}])
    clean, report = lc.clean_leads(raw, cumulative=0.8)
    assert report["significant_levels"]["first_utm_source_c"] == ["Level2"]
    assert report["levels_mapped_to_others"]["first_utm_source_c"] == 2
    assert report["duplicates_dropped"] == 8
    assert report["cities_missing"] == 9 and report["nulls_filled_with_zero"]["total_leads_droppped"] == 1
    assert list(clean.columns[:13]) == list(lc.CLEAN_COLUMNS) and clean.columns[-1] == "city"
    assert clean["city"].iloc[[0, 2]].tolist() == ["pune", "mumbai"] and pd.isna(clean["city"].iloc[1])
    json.dumps(report)  # the report is written as JSON


def test_new_leads_with_unseen_levels_warn_and_are_counted_not_rejected():
    train = raw_leads([{"first_platform_c": "Level0"}, {"first_platform_c": "Level1", "created_date": pd.Timestamp("2021-07-02")}])
    _, train_report = lc.clean_leads(train, cumulative=1.0)
    new = raw_leads([{"first_platform_c": "Level7", "city_mapped": "atlantis"}, {}]).drop(columns=["app_complete_flag"])
    with pytest.warns(lc.UnseenLevelWarning, match="unseen in training"):
        clean, report = lc.clean_leads(new, significant_levels=train_report["significant_levels"],
                                       known_levels=leads_levels(train))
    assert report["unseen_levels"] == {"city_mapped": 1, "first_platform_c": 1, "first_utm_medium_c": 0, "first_utm_source_c": 0}
    assert dict(zip(clean["city"], clean["first_platform_c"])) == {"atlantis": "others", "mumbai": "Level0"}
    assert "app_complete_flag" not in clean.columns and len(clean) == 2


# --- the cleaning step of the model ---------------------------------------------------------------


@pytest.mark.real_data
def test_cleaning_step_gives_the_stages_output_row_for_row(golden):
    """LeadCleaner is the golden-tested stages without the de-duplication: the same values, one row per lead."""
    tables, raw, levels = golden
    cleaner = lc.LeadCleaner(levels).fit(raw)
    ours = cleaner.transform(raw)
    assert len(ours) == len(raw) and list(ours.columns) == list(lc.CLEANED_FEATURES)
    staged = lc.map_categorical_levels(lc.map_city_tier(lc.load_leads(raw)), levels)
    for column in ("city_tier", *lc.LEVEL_COLUMNS, *lc.NULL_TO_ZERO):
        pd.testing.assert_series_equal(ours[column].reset_index(drop=True), staged[column].reset_index(drop=True),
                                       check_dtype=False)
    # Grouped as the original pivot table does, the rows give its golden interaction counts.
    final = tables["interactions_mapped_test_case"]
    groups = [c for c in final.columns if c.endswith("_interaction")]
    assert ours[groups].sum().to_dict() == pytest.approx(final[groups].sum().to_dict())


def test_cleaning_step_learns_levels_in_fit_and_applies_them_to_new_rows():
    train = raw_leads([{"first_platform_c": "Level0"}] * 8 + [{"first_platform_c": "Level1"}] * 2)
    cleaner = lc.LeadCleaner(cumulative=0.8).fit(train)
    assert cleaner.levels_["first_platform_c"] == ["Level0"]
    new = raw_leads([{"first_platform_c": "Level1"}, {"first_platform_c": "LevelNew", "city_mapped": None},
                     {"city_mapped": "atlantis", "total_leads_droppped": np.nan, "chat_clicked": 1.0,
                      "call_us_button_clicked": 2.0, "syllabus": 1.0}])
    out = cleaner.transform(new)
    assert out["first_platform_c"].tolist() == ["others", "others", "Level0"]
    assert out["city_tier"].tolist() == [1.0, 3.0, 3.0] and out["city"].tolist() == ["mumbai", None, "atlantis"]
    assert out["total_leads_droppped"].tolist() == [1.0, 1.0, 0.0]
    assert out.loc[2, "assistance_interaction"] == 3.0 and out.loc[2, "syllabus_interaction"] == 1.0
    assert list(cleaner.feature_names_in_) == list(lc.RAW_INPUTS)


def test_cleaning_step_treats_absent_interaction_flags_as_empty_and_checks_numbers():
    cleaner = lc.LeadCleaner().fit(raw_leads([{}] * 3))
    lean = raw_leads([{}]).drop(columns=list(INTERACTION_COLUMNS))
    assert cleaner.transform(lean)[list(lc.INTERACTION_GROUPS)].sum().sum() == 0
    with pytest.raises(DataContractError, match="'total_leads_droppped': 1 value"):
        cleaner.transform(raw_leads([{"total_leads_droppped": "two"}]))
    with pytest.raises(DataContractError, match="'first_utm_source_c': missing"):
        cleaner.transform(raw_leads([{}]).drop(columns="first_utm_source_c"))
    with pytest.raises(TypeError, match="DataFrame"):
        cleaner.transform(raw_leads([{}]).to_numpy())


def test_training_duplicates_are_dropped_whatever_their_ids():
    leads = raw_leads([{}, {}, {"city_mapped": "pune"}]).assign(lead_id=[1, 2, 3])
    kept, dropped = lc.drop_duplicate_leads(leads)
    assert dropped == 1 and kept["lead_id"].tolist() == [1, 3]
