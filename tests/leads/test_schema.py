"""The raw CodePro leads: reading a file into the contract's dtypes, and the checks a leads file must pass."""
import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_contract_error
from utils.core.contracts import DataContractError
from utils.core.io import write_parquet
from utils.leads.schema import (
    INTERACTION_COLUMNS,
    LEAD_ID,
    LEADS_COLUMNS,
    date_spec,
    duplicated_leads,
    leads_levels,
    read_leads,
    validate_raw_leads,
    with_lead_ids,
)


def raw_leads_csv(path, n=6, city=("mumbai", None, "ncr")):
    """A CSV shaped like the real export: an unnamed index column, dates as text."""
    frame = pd.DataFrame({
        "created_date": [f"2021-07-0{i + 1} 10:00:0{i}" for i in range(n)],
        "city_mapped": [city[i % len(city)] for i in range(n)],
        "first_platform_c": ["Level0"] * n, "first_utm_medium_c": ["Level2"] * n, "first_utm_source_c": ["Level7"] * n,
        "total_leads_droppped": [1.0, 2.0, np.nan, 1.0, 1.0, 3.0][:n], "referred_lead": [0.0, 1.0, np.nan, 0, 0, 0][:n],
        **{c: [np.nan] * n for c in INTERACTION_COLUMNS},
        "app_complete_flag": [0, 1] * (n // 2),
    })
    frame.loc[0, "download_button_clicked"] = 3.0
    frame.to_csv(path)  # index written as the unnamed first column
    return path


def test_read_leads_csv_gives_contract_dtypes(tmp_path):
    leads = read_leads(raw_leads_csv(tmp_path / "leads.csv"))
    assert list(leads.columns) == list(LEADS_COLUMNS)
    assert leads["created_date"].dtype == "datetime64[ns]"
    assert leads["total_leads_droppped"].dtype == "float64" and leads["1_on_1_industry_mentorship"].dtype == "float64"
    assert leads["app_complete_flag"].dtype == "int64" and leads["city_mapped"].dtype == object
    assert leads["city_mapped"].isna().sum() == 2 and leads["download_button_clicked"].iloc[0] == 3.0


def test_read_leads_parquet_round_trip(tmp_path):
    leads = read_leads(raw_leads_csv(tmp_path / "leads.csv"))
    write_parquet(leads, tmp_path / "leads.parquet")
    pd.testing.assert_frame_equal(read_leads(tmp_path / "leads.parquet"), leads)


def test_all_empty_city_column_is_read_as_text(tmp_path):
    leads = read_leads(raw_leads_csv(tmp_path / "leads.csv", city=(None,)))
    assert leads["city_mapped"].dtype == object and leads["city_mapped"].isna().all()


def test_read_leads_text_in_numeric_column_raises(tmp_path):
    path = raw_leads_csv(tmp_path / "leads.csv")
    text = path.read_text().splitlines()
    text[1] = text[1].replace(",1.0,0.0,", ",one,0.0,", 1)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataContractError, match="column 'total_leads_droppped'.*'one'"):
        read_leads(path)


def test_read_leads_created_before_drops_later_rows_before_parsing_them(tmp_path):
    path = raw_leads_csv(tmp_path / "leads.csv")
    text = path.read_text().splitlines()
    text[-1] = text[-1].replace(",3.0,0.0,", ",three,0.0,", 1)  # the last lead, created 2021-07-06
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataContractError, match="'three'"):
        read_leads(path)
    early = read_leads(path, created_before="2021-07-06")
    assert len(early) == 5 and early["created_date"].max() < pd.Timestamp("2021-07-06")
    assert early["total_leads_droppped"].dtype == "float64"
    full = read_leads(raw_leads_csv(tmp_path / "clean.csv"))
    pd.testing.assert_frame_equal(early, full.iloc[:5])
    assert len(read_leads(path, created_before="2021-07-01")) == 0


def test_header_only_file_reads_empty_and_fails_validation(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("," + ",".join(LEADS_COLUMNS) + "\n")
    leads = read_leads(path)
    assert len(leads) == 0
    with pytest.raises(DataContractError, match="no rows"):
        validate_raw_leads(leads, str(path))


def test_real_leads_file_reads_and_validates(shared_data):
    path = shared_data / "codepro" / "leads_labelled_25k.csv"
    if not path.exists():
        pytest.skip(f"{path} absent")
    leads = read_leads(path)
    assert leads.shape == (24_991, 45) and list(leads.columns) == list(LEADS_COLUMNS)
    report = validate_raw_leads(leads, str(path))
    assert report.counts.get("duplicate_rows") == 8


FILE = "leads.csv"


def leads(n=4, **overrides):
    """A tiny raw leads frame in the contract's schema."""
    frame = pd.DataFrame({
        "created_date": pd.date_range("2021-07-01", periods=n, freq="D"),
        "city_mapped": (["mumbai", "pune", None, "ncr"] * n)[:n],
        "first_platform_c": ["Level0"] * n,
        "first_utm_medium_c": ["Level2"] * n,
        "first_utm_source_c": (["Level0", "Level2"] * n)[:n],
        "total_leads_droppped": [1.0] * n,
        "referred_lead": [0.0] * n,
        **{c: [np.nan] * n for c in INTERACTION_COLUMNS},
        "app_complete_flag": ([0, 1] * n)[:n],
    })
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_valid_leads_pass_without_warnings():
    report = validate_raw_leads(leads(), FILE, as_of=pd.Timestamp("2030-01-01"))
    assert report.rows == 4 and report.warnings == [] and report.counts == {}


def test_missing_column_names_file_and_column():
    error = assert_contract_error("first_utm_source_c", validate_raw_leads,
                                  leads().drop(columns="first_utm_source_c"), FILE)
    assert str(error).startswith("leads.csv: column 'first_utm_source_c': missing")


def test_text_in_numeric_column_raises():
    error = assert_contract_error("total_leads_droppped", validate_raw_leads,
                                  leads(total_leads_droppped=["1", "2", "three", None]), FILE)
    assert "'three'" in str(error)


def test_numbers_as_text_are_accepted():
    validate_raw_leads(leads(total_leads_droppped=["1", "2.0", " 3 ", None]), FILE)


def test_unparsable_date_raises():
    dates = ["2021-07-01 10:00:00", "2021-07-02 10:00:00", "yesterday", "2021-07-04 10:00:00"]
    assert_contract_error("created_date", validate_raw_leads, leads(created_date=dates), FILE)


def test_missing_date_raises():
    dates = ["2021-07-01 10:00:00", None, "2021-07-03 10:00:00", "2021-07-04 10:00:00"]
    assert_contract_error("created_date", validate_raw_leads, leads(created_date=dates), FILE)


@pytest.mark.parametrize("target", [[0, 1, 2, 1], [0, 1, np.nan, 1], [0, 1, -1, 0], ["0", "1", "yes", "0"]])
def test_target_outside_0_1_or_missing_raises(target):
    assert_contract_error("app_complete_flag", validate_raw_leads, leads(app_complete_flag=target), FILE)


def test_target_not_required_for_new_leads():
    new = leads().drop(columns="app_complete_flag")
    assert validate_raw_leads(new, FILE, require_target=False).rows == 4
    assert_contract_error("app_complete_flag", validate_raw_leads, new, FILE, require_target=True)


def test_header_only_raises():
    error = assert_contract_error(None, validate_raw_leads, leads().iloc[:0], FILE)
    assert "no rows" in str(error)


def test_all_null_required_column_raises():
    assert_contract_error("first_platform_c", validate_raw_leads, leads(first_platform_c=[None] * 4), FILE)


def test_negative_leads_dropped_raises():
    assert_contract_error("total_leads_droppped", validate_raw_leads, leads(total_leads_droppped=[1, -2, 1, 1]), FILE)


def test_recoverable_issues_are_counted_not_raised():
    frame = pd.concat([leads(), leads().iloc[:1]], ignore_index=True)
    frame["utm_campaign"] = "x"
    frame.loc[1, "created_date"] = pd.Timestamp("2031-01-01")
    frame.loc[2, "city_mapped"] = "atlantis"
    known = {"city_mapped": {"mumbai", "pune", "ncr"}}
    report = validate_raw_leads(frame, FILE, known_levels=known, as_of=pd.Timestamp("2030-01-01"))
    assert report.counts == {"extra_columns": 1, "future_dates.created_date": 1, "duplicate_rows": 1,
                             "unseen_levels.city_mapped": 1}
    assert len(report.warnings) == 4 and all(w.startswith("leads.csv: ") for w in report.warnings)


def test_leads_levels_lists_categorical_levels():
    levels = leads_levels(leads())
    assert levels["city_mapped"] == {"mumbai", "pune", "ncr"} and levels["first_platform_c"] == {"Level0"}


def test_leads_column_order_is_the_raw_export():
    assert len(LEADS_COLUMNS) == 45 and LEADS_COLUMNS[0] == "created_date"
    assert LEADS_COLUMNS[7] == "1_on_1_industry_mentorship" and LEADS_COLUMNS[-2] == "whatsapp_chat_click"


# --- CLV --------------------------------------------------------------------------------------


def test_headers_differing_only_in_case_or_spaces_are_matched_and_counted(tmp_path):
    path = raw_leads_csv(tmp_path / "leads.csv")
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace("created_date", " Created_Date ").replace("city_mapped", "CITY_MAPPED")
    path.write_text("\n".join(lines) + "\n")
    leads = read_leads(path)
    assert list(leads.columns) == list(LEADS_COLUMNS)
    report = validate_raw_leads(leads, str(path), as_of=pd.Timestamp("2030-01-01"))
    assert report.counts["headers_matched"] == 2


def test_a_semicolon_export_is_sniffed(tmp_path):
    path = raw_leads_csv(tmp_path / "leads.csv")
    frame = pd.read_csv(path)
    frame.to_csv(path, sep=";", index=False)
    leads = read_leads(path)
    assert list(leads.columns) == list(LEADS_COLUMNS)
    assert validate_raw_leads(leads, str(path), as_of=pd.Timestamp("2030-01-01")).counts["separator_sniffed"] == 1


def test_day_first_dates_need_a_parameter_and_are_read_with_it(tmp_path):
    path = raw_leads_csv(tmp_path / "leads.csv")
    frame = pd.read_csv(path, index_col=0)
    frame["created_date"] = [f"0{i + 1}/0{(i % 3) + 1}/2021 10:00" for i in range(len(frame))]
    frame.to_csv(path)
    with pytest.raises(DataContractError, match="column 'created_date'.*set leads_dayfirst=true"):
        read_leads(path)
    leads = read_leads(path, dates=date_spec("", dayfirst=True))
    assert leads["created_date"].iloc[1] == pd.Timestamp("2021-02-02 10:00")
    assert read_leads(path, dates=date_spec("%d/%m/%Y %H:%M"))["created_date"].iloc[3] == pd.Timestamp("2021-01-04 10:00")


def test_training_leads_need_a_city_and_both_classes(tmp_path):
    leads = read_leads(raw_leads_csv(tmp_path / "leads.csv", city=(None,)))
    assert_contract_error("city_mapped", validate_raw_leads, leads, "leads.csv")
    new = leads.drop(columns="app_complete_flag")
    assert validate_raw_leads(new, "new.csv", require_target=False).counts["no_city"] == len(new)
    one_class = read_leads(raw_leads_csv(tmp_path / "one.csv")).assign(app_complete_flag=0)
    error = assert_contract_error("app_complete_flag", validate_raw_leads, one_class, "one.csv")
    assert "one class only" in str(error)


def test_dates_after_the_file_was_written_are_counted(tmp_path):
    path = raw_leads_csv(tmp_path / "leads.csv")
    frame = pd.read_csv(path, index_col=0)
    frame.loc[0, "created_date"] = "2099-01-01 00:00:00"
    frame.loc[1, "created_date"] = "1970-01-01 00:00:00"
    frame.to_csv(path)
    report = validate_raw_leads(read_leads(path), str(path))
    assert report.counts["future_dates.created_date"] == 1 and report.counts["early_dates.created_date"] == 1


# --- the lead's key ------------------------------------------------------------------------------


def test_read_leads_keeps_the_unnamed_index_of_an_export_as_the_id(tmp_path):
    leads = read_leads(raw_leads_csv(tmp_path / "leads.csv"), lead_id_col="")
    assert list(leads.columns) == [LEAD_ID, *LEADS_COLUMNS] and list(leads[LEAD_ID]) == [0, 1, 2, 3, 4, 5]
    assert list(read_leads(tmp_path / "leads.csv").columns) == list(LEADS_COLUMNS)  # no id asked: as before


def test_key_choice_named_column_then_lead_id_then_unnamed_then_row_number():
    base = leads().head(3)
    named, source = with_lead_ids(base.assign(crm_key=["a", "b", "c"]), FILE, "crm_key")
    assert list(named[LEAD_ID]) == ["a", "b", "c"] and "crm_key" not in named and source == "column 'crm_key'"
    own, source = with_lead_ids(base.assign(lead_id=[10, 11, 12]), FILE)
    assert list(own[LEAD_ID]) == [10, 11, 12] and source == "column 'lead_id'"
    unnamed, source = with_lead_ids(base.set_axis(base.index, axis=0).reset_index(names="Unnamed: 0"), FILE)
    assert list(unnamed[LEAD_ID]) == [0, 1, 2] and "Unnamed: 0" not in unnamed and source == "the unnamed first column"
    numbered, source = with_lead_ids(base, FILE)
    assert list(numbered[LEAD_ID]) == [1, 2, 3] and source.startswith("row number")
    assert numbered.columns[0] == LEAD_ID and list(numbered.columns[1:]) == list(base.columns)


def test_a_repeating_unnamed_index_gives_way_to_the_row_number():
    pasted = leads().head(4).reset_index(drop=True)
    pasted.insert(0, "Unnamed: 0", [0, 1, 0, 1])  # two exports pasted together
    ids, source = with_lead_ids(pasted, FILE)
    assert list(ids[LEAD_ID]) == [1, 2, 3, 4] and "repeats" in source


@pytest.mark.parametrize(("frame_ids", "problem"), [([1, 1, 2], "repeated"), ([1, None, 2], "no id")])
def test_a_named_key_must_be_complete_and_unique(frame_ids, problem):
    frame = leads().head(3).assign(lead_id=frame_ids)
    assert problem in str(assert_contract_error(LEAD_ID, with_lead_ids, frame, FILE))


def test_a_key_column_that_is_absent_or_a_model_input_is_refused():
    assert_contract_error("crm_key", with_lead_ids, leads().head(2), FILE, "crm_key")
    assert_contract_error("city_mapped", with_lead_ids, leads().head(2), FILE, "city_mapped")
    assert_contract_error(LEAD_ID, with_lead_ids, leads().head(2).assign(lead_id=[1, 2], k=[3, 4]), FILE, "k")


def test_duplicates_ignore_the_id():
    frame = pd.concat([leads().head(2)] * 2, ignore_index=True).assign(lead_id=[1, 2, 3, 4])
    assert duplicated_leads(frame).tolist() == [False, False, True, True]
    assert validate_raw_leads(frame, FILE).counts.get("duplicate_rows") == 2
    assert "extra_columns" not in validate_raw_leads(frame, FILE).counts  # the id is no stray column
