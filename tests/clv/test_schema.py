"""The CLV sources and transaction logs: readers and checks."""
import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_contract_error
from utils.clv.schema import (
    PURCHASE_LINES_SCHEMA,
    check_purchase_lines,
    clv_date_spec,
    empty_purchase_lines,
    read_clv_sources,
    read_transactions,
    tx_date_spec,
    validate_clv_sources,
    validate_transactions,
)
from utils.core.contracts import DataContractError


def test_read_clv_sources_and_empty_optional_sources(tmp_path):
    pd.DataFrame({"customer_id": [1, 2], "signup_date": ["2021-01-01", "2021-01-02"], "age": [30.0, np.nan],
                  "gender": ["f", None], "country": ["EIRE", "USA"]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"customer_id": [1], "order_id": [5], "timestamp": ["2021-01-03 10:00"], "amount": ["9.5"],
                  "n_items": [1]}).to_csv(tmp_path / "p.csv", index=False)
    sources = read_clv_sources({"customers": tmp_path / "c.csv", "purchases": tmp_path / "p.csv",
                                     "web_actions": "", "campaigns": None})
    customers, purchases = sources["customers"], sources["purchases"]
    assert customers["customer_id"].dtype == "int64" and str(customers["age"].dtype) == "Int64"
    assert customers["signup_date"].dtype == "datetime64[ns]" and purchases["amount"].dtype == "float64"
    assert purchases["order_id"].iloc[0] == 5 or purchases["order_id"].iloc[0] == "5"
    assert len(sources["web_actions"]) == 0 and sources["campaigns"]["sent_at"].dtype == "datetime64[ns]"
    with pytest.raises(DataContractError, match="customers"):
        read_clv_sources({"purchases": tmp_path / "p.csv"})


FILES = {"customers": "customers.csv", "web_actions": "web.csv", "campaigns": "campaigns.csv",
         "purchases": "purchases.csv"}


def clv(**frames):
    sources = {
        "customers": pd.DataFrame({"customer_id": [1, 2, 3],
                                   "signup_date": pd.to_datetime(["2021-01-01", "2021-01-02", None]),
                                   "age": pd.array([30, None, 50], dtype="Int64"),
                                   "gender": ["female", "male", None], "country": ["United Kingdom", "EIRE", "USA"]}),
        "web_actions": pd.DataFrame({"customer_id": [1, 1], "timestamp": pd.to_datetime(["2021-01-01", "2021-01-02"]),
                                     "page": ["product", "cart"], "action": ["view_product", "add_to_cart"]}),
        "campaigns": pd.DataFrame({"customer_id": [2], "campaign_id": ["email-w001"], "channel": ["email"],
                                   "sent_at": pd.to_datetime(["2021-01-05"])}),
        "purchases": pd.DataFrame({"customer_id": [1, 2], "order_id": ["O1", "O2"],
                                   "timestamp": pd.to_datetime(["2021-01-03", "2021-01-04"]),
                                   "amount": [10.5, 20.0], "n_items": [1, 2]}),
    }
    sources.update(frames)
    return sources


def test_valid_clv_sources_pass():
    report = validate_clv_sources(clv(), FILES, as_of=pd.Timestamp("2030-01-01"))
    assert report.rows == 3 and report.counts == {}, report.warnings


def test_clv_web_actions_and_campaigns_may_be_empty():
    sources = clv(web_actions=clv()["web_actions"].iloc[:0], campaigns=clv()["campaigns"].iloc[:0])
    assert validate_clv_sources(sources, FILES).counts.get("unknown_customers.web_actions") is None


def test_clv_duplicate_customer_ids_raise():
    customers = clv()["customers"].assign(customer_id=[1, 2, 2])
    error = assert_contract_error("customer_id", validate_clv_sources, clv(customers=customers), FILES)
    assert error.file == "customers.csv" and "duplicated" in str(error)


def test_clv_empty_customers_or_purchases_raise():
    assert_contract_error(None, validate_clv_sources, clv(customers=clv()["customers"].iloc[:0]), FILES)
    assert_contract_error(None, validate_clv_sources, clv(purchases=clv()["purchases"].iloc[:0]), FILES)


def test_clv_missing_column_and_missing_source_raise():
    assert_contract_error("amount", validate_clv_sources, clv(purchases=clv()["purchases"].drop(columns="amount")), FILES)
    sources = clv()
    del sources["campaigns"]
    assert_contract_error(None, validate_clv_sources, sources, FILES)


def test_clv_text_amount_bad_timestamp_and_fractional_id_raise():
    assert_contract_error("amount", validate_clv_sources,
                          clv(purchases=clv()["purchases"].assign(amount=["10", "ten"])), FILES)
    assert_contract_error("timestamp", validate_clv_sources,
                          clv(web_actions=clv()["web_actions"].assign(timestamp=["2021-01-01", "soon"])), FILES)
    assert_contract_error("customer_id", validate_clv_sources,
                          clv(purchases=clv()["purchases"].assign(customer_id=[1.5, 2])), FILES)


def test_clv_missing_amount_raises():
    assert_contract_error("amount", validate_clv_sources,
                          clv(purchases=clv()["purchases"].assign(amount=[10.0, None])), FILES)


def test_clv_recoverable_issues_are_counted():
    purchases = pd.DataFrame({"customer_id": [1, 1, 9], "order_id": ["O1", "R1", "O9"],
                              "timestamp": pd.to_datetime(["2021-01-03", "2021-01-09", "2031-01-01"]),
                              "amount": [10.0, -4.0, 3.0], "n_items": [2, -1, 1], "n_products": [2, 1, 1],
                              "coupon": [None, None, "X"]})
    customers = clv()["customers"].assign(country=["Unspecified", "Lithuania", "RSA"])
    campaigns = clv()["campaigns"].assign(channel=["carrier pigeon"])
    report = validate_clv_sources(clv(purchases=purchases, customers=customers, campaigns=campaigns), FILES,
                                  as_of=pd.Timestamp("2030-01-01"))
    assert report.counts == {
        "extra_columns": 1, "future_dates.purchases.timestamp": 1, "unknown_customers.purchases": 1,
        "refunds": 1, "unseen_levels.channel": 1, "countries_unmatched": 1, "countries_without_gdp": 1,
    }


# --- transactions -----------------------------------------------------------------------------


COLUMNS = {"invoice": "InvoiceNo", "product": "StockCode", "quantity": "Quantity", "timestamp": "InvoiceDate",
           "unit_price": "UnitPrice", "customer": "CustomerID", "country": "Country"}


def transactions(**overrides):
    frame = pd.DataFrame({"InvoiceNo": ["536365", "536365", "536366"], "StockCode": ["A", "B", "A"],
                          "Quantity": [6, 2, -1], "InvoiceDate": ["12/1/2010 8:26", "12/1/2010 8:26", "12/13/2010 8:28"],
                          "UnitPrice": [2.55, 3.39, 1.85], "CustomerID": [17850.0, 17850.0, 0.0],
                          "Country": ["United Kingdom"] * 3, "Description": ["x", "y", "z"]})
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_transactions_valid_with_counted_warnings():
    report = validate_transactions(transactions(), COLUMNS, "tx.parquet", as_of=pd.Timestamp("2030-01-01"))
    assert report.counts == {"unknown_customer_lines": 1, "return_lines": 1}


def test_transactions_missing_mapped_column_names_the_users_column():
    error = assert_contract_error("UnitPrice", validate_transactions, transactions().drop(columns="UnitPrice"),
                                  COLUMNS, "tx.parquet")
    assert "unit_price" in str(error)


def test_transactions_unmapped_field_raises():
    columns = {k: v for k, v in COLUMNS.items() if k != "country"}
    assert_contract_error("country", validate_transactions, transactions(), columns, "tx.parquet")


def test_transactions_bad_values_raise():
    assert_contract_error("Quantity", validate_transactions, transactions(Quantity=["6", "two", "1"]), COLUMNS, "tx")
    assert_contract_error("InvoiceDate", validate_transactions, transactions(InvoiceDate=["12/1/2010", "?", None]),
                          COLUMNS, "tx")
    assert_contract_error(None, validate_transactions, transactions().iloc[:0], COLUMNS, "tx")


# --- helpers ----------------------------------------------------------------------------------


def test_clv_headers_are_matched_and_dates_read_with_the_clv_parameters(tmp_path):
    pd.DataFrame({" Customer_ID": [1, 2], "signup_date": ["05/01/2021", "03/04/2021"], "age": [30, 40],
                  "gender": ["f", "m"], "country": ["EIRE", "USA"]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"customer_id": [1], "order_id": [5], "timestamp": ["13/01/2021 10:00"], "amount": [9.5],
                  "n_items": [1]}).to_csv(tmp_path / "p.csv", index=False)
    files = {"customers": tmp_path / "c.csv", "purchases": tmp_path / "p.csv"}
    with pytest.raises(DataContractError, match="column 'signup_date'.*clv_dayfirst=true"):
        read_clv_sources(files)
    sources = read_clv_sources(files, clv_date_spec("", dayfirst=True))
    assert sources["customers"]["signup_date"].tolist() == [pd.Timestamp("2021-01-05"), pd.Timestamp("2021-04-03")]
    report = validate_clv_sources(sources, {k: str(v) for k, v in files.items()}, as_of=pd.Timestamp("2030-01-01"))
    assert report.counts["headers_matched"] == 1


def test_purchases_without_a_positive_amount_are_refused():
    refunds = clv()["purchases"].assign(amount=[-10.5, 0.0])
    error = assert_contract_error("amount", validate_clv_sources, clv(purchases=refunds), FILES)
    assert "no purchase with a positive amount" in str(error)


def test_transactions_read_with_uk_dates_need_tx_date_format(tmp_path):
    path = tmp_path / "tx.csv"
    transactions(InvoiceDate=["01/12/2010 08:26", "01/12/2010 08:26", "03/12/2010 08:28"]).to_csv(path, index=False)
    with pytest.raises(DataContractError, match="column 'InvoiceDate'.*tx_dayfirst=true"):
        read_transactions(path, COLUMNS)
    frame = read_transactions(path, COLUMNS, tx_date_spec("%d/%m/%Y %H:%M"))
    assert frame["InvoiceDate"].tolist()[2] == pd.Timestamp("2010-12-03 08:28")
    report = validate_transactions(frame, COLUMNS, str(path), as_of=pd.Timestamp("2030-01-01"))
    assert report.counts == {"unknown_customer_lines": 1, "return_lines": 1}


def test_transactions_user_columns_are_matched_after_case_folding(tmp_path):
    path = tmp_path / "tx.csv"
    transactions().rename(columns={"CustomerID": "customerid "}).to_csv(path, index=False)
    frame = read_transactions(path, COLUMNS)
    assert "CustomerID" in frame.columns
    assert validate_transactions(frame, COLUMNS, str(path), as_of=pd.Timestamp("2030-01-01")).counts["headers_matched"] == 1


def test_transactions_without_customers_or_spend_are_refused():
    error = assert_contract_error("CustomerID", validate_transactions, transactions(CustomerID=[None, 0.0, None]),
                                  COLUMNS, "tx")
    assert "no line has a customer id" in str(error)
    error = assert_contract_error("Quantity", validate_transactions, transactions(Quantity=[-1, -2, -1]), COLUMNS, "tx")
    assert "positive amount" in str(error)


def test_uk_exported_retail_dates_read_as_the_original(shared_data, tmp_path):
    """The real Online Retail log, its dates written day-first as a UK spreadsheet would: same timestamps back."""
    original = pd.read_parquet(shared_data / "clv" / "online_retail_2010_2011.parquet")
    original["InvoiceDate"] = pd.to_datetime(original["InvoiceDate"], format="ISO8601")
    uk = original.assign(InvoiceDate=original["InvoiceDate"].dt.strftime("%d/%m/%Y %H:%M"))
    uk.to_csv(tmp_path / "retail_uk.csv", index=False)
    frame = read_transactions(tmp_path / "retail_uk.csv", COLUMNS)
    assert (frame["InvoiceDate"] == original["InvoiceDate"].dt.floor("min")).all()
    report = validate_transactions(frame, COLUMNS, "retail_uk.csv")
    assert report.counts["dates_read.InvoiceDate"] == 1 and "future_dates.InvoiceDate" not in report.counts
# --- purchase lines ---------------------------------------------------------------------------


def purchase_pair():
    purchases = pd.DataFrame({"customer_id": [1, 1], "order_id": ["a", "b"],
                              "timestamp": pd.to_datetime(["2021-01-01 10:00", "2021-01-05 12:00"]),
                              "amount": [12.0, 5.0], "n_items": [3, 1]})
    lines = pd.DataFrame({"customer_id": [1, 1, 1], "order_id": ["a", "a", "b"],
                          "timestamp": ["2021-01-01 10:00", "2021-01-01 10:00", "2021-01-05 12:00"],
                          "product": ["P1", 22423, "P1"], "quantity": ["2", 1, 1], "unit_price": [1.0, 10.0, 5.0]})
    return purchases, lines


def test_purchase_lines_are_typed_and_checked_against_their_purchases():
    purchases, lines = purchase_pair()
    checked = check_purchase_lines(lines, purchases, "lines.csv")
    assert list(checked.columns) == list(PURCHASE_LINES_SCHEMA)
    assert checked["quantity"].dtype == "float64" and checked["timestamp"].dtype == "datetime64[ns]"
    assert checked["product"].tolist() == ["P1", "22423", "P1"]  # product codes are text
    assert empty_purchase_lines().empty and list(empty_purchase_lines().columns) == list(PURCHASE_LINES_SCHEMA)
    check_purchase_lines(empty_purchase_lines(), purchases)


def test_purchase_line_problems_name_file_column_and_count():
    purchases, lines = purchase_pair()
    with pytest.raises(DataContractError, match="lines.csv: column 'product': missing"):
        check_purchase_lines(lines.drop(columns="product"), purchases, "lines.csv")
    with pytest.raises(DataContractError, match="column 'quantity'.*not numbers"):
        check_purchase_lines(lines.assign(quantity="many"), purchases, "lines.csv")
    with pytest.raises(DataContractError, match="column 'unit_price': 1 line"):
        check_purchase_lines(lines.assign(unit_price=[1.0, None, 5.0]), purchases, "lines.csv")
    with pytest.raises(DataContractError, match="1 line.*belong to no purchase"):
        check_purchase_lines(lines.assign(order_id=["a", "a", "zz"]), purchases, "lines.csv")
    with pytest.raises(DataContractError, match="column 'timestamp': 1 line.*another time"):
        check_purchase_lines(lines.assign(timestamp=["2021-01-01 10:00", "2021-01-02", "2021-01-05 12:00"]),
                             purchases, "lines.csv")
