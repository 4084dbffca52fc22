"""The contract error, the report of recoverable findings, and the shared column checks."""
import pandas as pd
import pytest

from tests.helpers import assert_contract_error
from utils.core.contracts import (
    ContractReport,
    DataContractError,
    as_datetime,
    as_number,
    as_whole_number,
    require_columns,
    require_not_all_null,
    require_rows,
    warn_extra_columns,
    warn_future,
)


def test_as_datetime_and_as_number_convert_or_raise():
    assert as_datetime(pd.Series(["2021-07-01 01:02:03", None]), "f", "d").dtype == "datetime64[ns]"
    assert as_number(pd.Series(["1.5", "", None]), "f", "x").isna().sum() == 2
    assert_contract_error("d", as_datetime, pd.Series([1.0, 2.0]), "f", "d")


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


def test_extra_columns_and_future_dates_are_counted():
    report = ContractReport("f")
    warn_extra_columns(report, pd.DataFrame({"a": [1], "x": [2]}), ["a"])
    warn_future(report, pd.Series(pd.to_datetime(["2020-01-01", "2030-01-01"])), "d", pd.Timestamp("2025-01-01"))
    assert report.counts == {"extra_columns": 1, "future_dates.d": 1}
