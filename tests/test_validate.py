import numpy as np
import pandas as pd
import pytest

from utils.validate import (
    INTERACTION_COLUMNS,
    LEADS_COLUMNS,
    ContractReport,
    DataContractError,
    as_datetime,
    as_number,
    leads_levels,
    validate_clv_sources,
    validate_raw_leads,
    validate_transactions,
)

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


def assert_contract_error(match_column, fn, *args, **kwargs):
    with pytest.raises(DataContractError) as caught:
        fn(*args, **kwargs)
    assert caught.value.column == match_column, str(caught.value)
    return caught.value


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
                          "Quantity": [6, 2, -1], "InvoiceDate": ["12/1/2010 8:26", "12/1/2010 8:26", "12/1/2010 8:28"],
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
