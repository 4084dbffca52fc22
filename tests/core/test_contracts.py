"""The contract error, the report of recoverable findings, and the shared column checks."""
import pandas as pd
import pytest

from tests.helpers import assert_contract_error
from utils.core.contracts import (
    ContractReport,
    DataContractError,
    DateSpec,
    as_datetime,
    as_number,
    as_whole_number,
    check_duplicate_headers,
    check_kind,
    match_headers,
    normalize_header,
    note,
    report_notes,
    require_columns,
    require_not_all_null,
    require_rows,
    set_dates,
    warn_extra_columns,
    warn_implausible_dates,
)

LEADS_SPEC = DateSpec("", False, "leads_date_format", "leads_dayfirst")


def dates(values, spec=None):
    return as_datetime(pd.Series(values, dtype=object), "leads.csv", "created_date", spec).tolist()


def test_as_datetime_and_as_number_convert_or_raise():
    assert as_datetime(pd.Series(["2021-07-01 01:02:03", None]), "f", "d").dtype == "datetime64[ns]"
    assert as_number(pd.Series(["1.5", "", None]), "f", "x").isna().sum() == 2
    assert_contract_error("d", as_datetime, pd.Series([1.0, 2.0]), "f", "d")


def test_iso_dates_blanks_and_surrounding_spaces_are_read():
    assert dates([" 2021-01-05", None, "", "2021-01-06 10:00"]) == [
        pd.Timestamp("2021-01-05"), pd.NaT, pd.NaT, pd.Timestamp("2021-01-06 10:00")]


def test_dates_that_read_both_ways_are_refused_naming_column_examples_and_parameters():
    with pytest.raises(DataContractError) as caught:
        dates(["05/01/2021", "03/04/2021", "01/01/2021"], LEADS_SPEC)
    message = str(caught.value)
    assert caught.value.column == "created_date"
    assert "'05/01/2021' and '03/04/2021'" in message
    assert "leads_dayfirst=true" in message and "leads_date_format" in message
    assert "05 Jan 2021 or 01 May 2021" in message


def test_dayfirst_or_a_format_resolves_the_ambiguity():
    day_first = DateSpec("", True, "leads_date_format", "leads_dayfirst")
    assert dates(["05/01/2021", "03/04/2021"], day_first) == [pd.Timestamp("2021-01-05"), pd.Timestamp("2021-04-03")]
    month_first = DateSpec("%m/%d/%Y", False)
    assert dates(["05/01/2021", "03/04/2021"], month_first) == [pd.Timestamp("2021-05-01"), pd.Timestamp("2021-03-04")]


def test_the_one_possible_reading_is_taken_without_a_parameter():
    # 13/04 can only be day-first, 12/31 only month-first: the whole column reads one way.
    assert dates(["05/01/2021", "13/04/2021"]) == [pd.Timestamp("2021-01-05"), pd.Timestamp("2021-04-13")]
    assert dates(["05/01/2021", "12/31/2021"]) == [pd.Timestamp("2021-05-01"), pd.Timestamp("2021-12-31")]
    assert dates(["12/1/2010 8:26", "12/13/2010 10:00"]) == [pd.Timestamp("2010-12-01 08:26"),
                                                            pd.Timestamp("2010-12-13 10:00")]
    assert dates(["5-Jan-2021", "13-May-2021"]) == [pd.Timestamp("2021-01-05"), pd.Timestamp("2021-05-13")]


def test_day_first_and_month_first_in_one_column_are_refused():
    with pytest.raises(DataContractError, match="mixes day-first and month-first dates, e.g. '13/01/2021'"):
        dates(["13/01/2021", "12/31/2021"])


def test_mixed_layouts_are_refused():
    with pytest.raises(DataContractError, match="mixes date layouts, e.g. '2021-01-05' and '05/01/2021'"):
        dates(["2021-01-05", "05/01/2021"])


def test_dayfirst_with_month_first_only_values_is_refused():
    with pytest.raises(DataContractError, match="leads_dayfirst is set, but '12/31/2021'"):
        dates(["12/31/2021", "01/02/2021"], DateSpec("", True, "leads_date_format", "leads_dayfirst"))


def test_values_that_do_not_match_the_given_format_are_named():
    with pytest.raises(DataContractError, match=r"do not match leads_date_format='%d/%m/%Y', e.g. '2021-04-03'"):
        dates(["05/01/2021", "2021-04-03"], DateSpec("%d/%m/%Y", False, "leads_date_format"))


def test_text_that_is_no_date_is_refused():
    with pytest.raises(DataContractError, match="1 distinct value\\(s\\) are not dates, e.g. 'soon'"):
        dates(["soon", "2021-01-01"])


def test_offsets_become_utc_also_across_a_dst_change():
    assert dates(["2021-03-27 10:00:00+00:00", "2021-03-28 10:00:00+01:00"]) == [
        pd.Timestamp("2021-03-27 10:00"), pd.Timestamp("2021-03-28 09:00")]
    aware = pd.Series(pd.to_datetime(["2021-06-01 12:00"]).tz_localize("Europe/London"))
    assert as_datetime(aware, "f", "d").tolist() == [pd.Timestamp("2021-06-01 11:00")]


def test_times_with_and_without_an_offset_are_refused():
    with pytest.raises(DataContractError, match="mixes times with a UTC offset and times without one"):
        dates(["2021-03-27 10:00:00", "2021-03-28 10:00:00+01:00"])


def test_report_merge_and_text():
    first, second = ContractReport("a.csv", rows=2), ContractReport("b.csv", rows=3)
    first.warn("refunds", 2, "2 refunds")
    second.warn("refunds", 1, "1 refund")
    second.warn("nothing", 0, "not recorded")
    merged = first.merge(second)
    assert merged.rows == 5 and merged.counts == {"refunds": 3} and merged.n_warnings == 2
    assert "a.csv: 2 refunds" in str(merged) and merged.to_dict()["counts"] == {"refunds": 3}


def test_contract_error_names_file_column_and_problem():
    error = DataContractError("leads.csv", "city_mapped", "missing")
    assert str(error) == "leads.csv: column 'city_mapped': missing" and error.column == "city_mapped"
    assert str(DataContractError("x.csv", None, "empty file")) == "x.csv: empty file"


def test_whole_numbers_and_required_columns_rows_values():
    assert as_whole_number(pd.Series(["1", "2", None]), "f", "id").tolist()[:2] == [1.0, 2.0]
    with pytest.raises(DataContractError, match="not whole numbers"):
        as_whole_number(pd.Series([1.5]), "f", "id")
    frame = pd.DataFrame({"a": [None, None], "b": [1, 2]})
    with pytest.raises(DataContractError, match="column 'c': missing"):
        require_columns(frame, ["a", "c"], "f")
    with pytest.raises(DataContractError, match="no rows"):
        require_rows(frame.iloc[:0], "f")
    with pytest.raises(DataContractError, match="column 'a': is empty in every row"):
        require_not_all_null(frame, ["b", "a"], "f")


def test_a_missing_column_names_the_near_miss_header():
    frame = pd.DataFrame({"created_dte": [1], "city_mapped": [2]})
    with pytest.raises(DataContractError, match="column 'created_date': missing; the file has 'created_dte'"):
        require_columns(frame, ["created_date", "city_mapped"], "f")


def test_a_file_read_as_one_column_says_which_separator_it_looks_like():
    frame = pd.DataFrame({"created_date;city_mapped": ["2021-01-01;pune"]})
    with pytest.raises(DataContractError, match="looks ';'-separated: set csv_sep=semicolon"):
        require_columns(frame, ["created_date", "city_mapped"], "f")


def test_headers_differing_in_case_or_spaces_are_matched_and_counted():
    frame = pd.DataFrame({" Created_Date ": [1], "CITY_MAPPED": [2], "other": [3]})
    matched = match_headers(frame, ["created_date", "city_mapped"], "f")
    assert list(matched.columns) == ["created_date", "city_mapped", "other"]
    report = ContractReport("f")
    report_notes(report, matched)
    assert report.counts == {"headers_matched": 2}
    assert "' Created_Date ' -> 'created_date'" in report.warnings[0]
    untouched = pd.DataFrame({"created_date": [1]})
    assert match_headers(untouched, ["created_date"], "f") is untouched


def test_duplicated_headers_are_refused_naming_both():
    with pytest.raises(DataContractError, match=r"duplicated header: 'city_mapped' \(column 2\) and 'city_mapped' "
                                                r"\(column 4\)"):
        check_duplicate_headers(["", "city_mapped", "a", "city_mapped"], "f")
    with pytest.raises(DataContractError, match="'City' \\(column 1\\) and ' city' \\(column 2\\)"):
        check_duplicate_headers(["City", " city"], "f")
    check_duplicate_headers(["", "", "a"], "f")  # unnamed index columns are not names
    assert normalize_header("  Created_DATE ") == "created_date"


def test_notes_travel_with_the_frame_into_its_report():
    frame = pd.DataFrame({"a": [1, 2]})
    note(frame, "separator_sniffed", 1, "read as semicolon-separated")
    report = ContractReport("f")
    report_notes(report, frame[["a"]].copy())
    assert report.counts == {"separator_sniffed": 1}


def test_extra_columns_and_implausible_dates_are_counted():
    report = ContractReport("f")
    warn_extra_columns(report, pd.DataFrame({"a": [1], "x": [2]}), ["a"])
    stamps = pd.Series(pd.to_datetime(["1900-01-01", "2020-01-01", "2030-01-01"]))
    warn_implausible_dates(report, stamps, "d", pd.Timestamp("2025-01-01"))
    assert report.counts == {"extra_columns": 1, "future_dates.d": 1, "early_dates.d": 1}


def test_dates_after_the_file_was_written_are_counted():
    report = ContractReport("f")
    stamps = pd.Series(pd.to_datetime(["2021-01-01", "2021-06-01", "2021-07-01"]))
    warn_implausible_dates(report, stamps, "d", written_at="2021-05-31T12:00:00")
    assert report.counts == {"future_dates.d": 2}
    assert "after the file was last written (2021-05-31)" in report.warnings[0]


def test_check_kind_passes_the_date_spec():
    parsed = check_kind(pd.Series(["05/01/2021"]), "datetime", "f", "d", DateSpec("%d/%m/%Y"))
    assert parsed.tolist() == [pd.Timestamp("2021-01-05")]


def test_a_layout_read_without_being_told_is_noted_for_the_report():
    frame = pd.DataFrame({"d": ["05/01/2021", "13/04/2021"]})
    set_dates(frame, "d", as_datetime(frame["d"], "f", "d", DateSpec("", False, "tx_date_format")))
    report = ContractReport("f")
    report_notes(report, frame)
    assert report.counts == {"dates_read.d": 1}
    assert "read day-first (%d/%m/%Y): the only reading of values such as '13/04/2021'; set tx_date_format" in \
        report.warnings[0]
    told = pd.DataFrame({"d": ["05/01/2021"]})
    set_dates(told, "d", as_datetime(told["d"], "f", "d", DateSpec("%d/%m/%Y")))
    assert "lead2value.read_notes" not in told.attrs
