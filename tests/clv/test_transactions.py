"""Invoice lines -> the four CLV sources."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.clv.schema import PURCHASE_LINES_SCHEMA, check_purchase_lines
from utils.clv.transactions import (
    CAMPAIGN_COLUMNS,
    CDNOW_COLUMNS,
    WEB_ACTION_COLUMNS,
    cdnow_transactions,
    purchase_lines_from_transactions,
    sources_from_transactions,
    transaction_sources,
)
from utils.core.contracts import DataContractError

COLUMNS = {"invoice": "Inv", "product": "Sku", "quantity": "Qty", "timestamp": "When",
           "unit_price": "Price", "customer": "Cust", "country": "Land"}


def lines(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "Inv": [1, 1, 1, 2, 3, 4, 5, 6],
        "Sku": ["A", "B", "A", "C", "A", "B", "A", "A"],
        "Qty": [2, 1, 3, 10, 1, 5, 1, -2],
        "When": ["12/1/2010 8:26", "12/1/2010 8:26", "12/1/2010 8:26", "12/3/2010 10:00",
                 "12/2/2010 09:00", "12/5/2010 12:00", "12/6/2010 12:00", "12/13/2010 12:00"],
        "Price": [1.5, 10.0, 1.5, 0.5, 99.0, 2.0, 7.0, 1.5],
        "Cust": [17.0, 17.0, 17.0, 17.0, 0.0, np.nan, 23.0, 17.0],
        "Land": ["EIRE", "EIRE", "EIRE", "EIRE", "USA", "USA", "RSA", "France"],
    })
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_lines_become_one_purchase_per_invoice_with_net_amounts():
    _, _, _, purchases, _ = sources_from_transactions(lines(), COLUMNS, "shop.csv")
    first = purchases.set_index("order_id").loc["1"]
    assert first["amount"] == pytest.approx(2 * 1.5 + 10.0 + 3 * 1.5)
    assert first["n_items"] == 6
    assert first["n_products"] == 2
    assert first["timestamp"] == pd.Timestamp("2010-12-01 08:26")
    # A return (negative quantity) is a negative purchase: revenue stays net.
    assert purchases.set_index("order_id").loc["6", "amount"] == pytest.approx(-3.0)
    assert purchases["customer_id"].dtype == "int64"
    assert purchases["timestamp"].dtype == "datetime64[ns]"


def test_unknown_customers_are_excluded_and_counted():
    customers, _, _, purchases, report = sources_from_transactions(lines(), COLUMNS, "shop.csv")
    assert sorted(customers["customer_id"]) == [17, 23]
    assert set(purchases["order_id"]) == {"1", "2", "5", "6"}
    assert report["lines_unknown_customer"] == 2
    assert report["invoices_unknown_customer"] == 2
    assert report["lines"] == 8


def test_customers_sign_up_at_first_purchase_in_their_main_country():
    customers, _, _, _, report = sources_from_transactions(lines(), COLUMNS, "shop.csv")
    one = customers.set_index("customer_id").loc[17]
    assert one["signup_date"] == pd.Timestamp("2010-12-01 08:26")
    assert one["country"] == "EIRE"  # 4 lines in EIRE outweigh 1 in France
    assert pd.isna(one["age"]) and pd.isna(one["gender"])
    assert report["customers_several_countries"] == 1
    assert list(customers.columns) == ["customer_id", "signup_date", "age", "gender", "country"]


def test_web_actions_and_campaigns_come_back_empty_with_their_columns():
    _, web, campaigns, _, _ = sources_from_transactions(lines(), COLUMNS)
    assert list(web.columns) == list(WEB_ACTION_COLUMNS) and web.empty
    assert list(campaigns.columns) == list(CAMPAIGN_COLUMNS) and campaigns.empty
    assert web["timestamp"].dtype == "datetime64[ns]"


def test_datetime_timestamps_are_taken_as_they_are():
    frame = lines(When=pd.to_datetime(lines()["When"], format="%m/%d/%Y %H:%M"))
    _, _, _, purchases, _ = sources_from_transactions(frame, COLUMNS)
    assert purchases["timestamp"].min() == pd.Timestamp("2010-12-01 08:26")


def test_missing_mapped_column_names_file_and_column():
    with pytest.raises(DataContractError, match=r"shop\.csv: column 'Qty': missing"):
        sources_from_transactions(lines().drop(columns="Qty"), COLUMNS, "shop.csv")


def test_unmapped_field_is_a_clear_error():
    partial = {k: v for k, v in COLUMNS.items() if k != "unit_price"}
    with pytest.raises(DataContractError, match="unit_price"):
        sources_from_transactions(lines(), partial, "shop.csv")


def test_text_in_a_number_column_is_a_clear_error():
    bad = lines(Price=["1.5", "x", 1.5, 0.5, 99, 2, 7, 1.5])
    with pytest.raises(DataContractError, match=r"column 'Price': 1 value\(s\) are not numbers"):
        sources_from_transactions(bad, COLUMNS, "shop.csv")


def test_unreadable_timestamp_is_a_clear_error():
    bad = lines(When=["not a date", *lines()["When"][1:]])
    with pytest.raises(DataContractError, match=r"column 'When'"):
        sources_from_transactions(bad, COLUMNS, "shop.csv")


def test_fractional_customer_ids_are_rejected():
    bad = lines(Cust=[17.5] * 8)
    with pytest.raises(DataContractError, match="whole numbers"):
        sources_from_transactions(bad, COLUMNS, "shop.csv")


# --- the fifth source: purchase lines; CDNOW through the same route ----------------------------


def test_purchase_lines_keep_products_and_add_up_to_their_purchase():
    sources, report = transaction_sources(lines(), COLUMNS, "shop.csv")
    pl, purchases = sources["purchase_lines"], sources["purchases"]
    assert list(pl.columns) == list(PURCHASE_LINES_SCHEMA)
    assert len(pl) == 6 and report["purchase_lines"] == 6 and report["return_lines"] == 1 and report["products"] == 3
    assert set(pl["customer_id"]) == {17, 23}  # unknown customers (0, missing) are dropped, as in purchases
    amounts = (pl["quantity"] * pl["unit_price"]).groupby([pl["customer_id"], pl["order_id"]]).sum()
    expected = purchases.set_index(["customer_id", "order_id"])["amount"]
    np.testing.assert_allclose(amounts.sort_index().to_numpy(), expected.sort_index().to_numpy())
    check_purchase_lines(pl, purchases)  # every line in a purchase, at its time


def test_every_line_carries_its_invoices_first_timestamp():
    frame = lines(When=["2010-12-01 08:26", "2010-12-01 08:29", "2010-12-01 08:27", "2010-12-03 10:00",
                        "2010-12-02 09:00", "2010-12-05 12:00", "2010-12-06 12:00", "2010-12-07 12:00"])
    sources, _ = transaction_sources(frame, COLUMNS)
    first = sources["purchase_lines"].query("order_id == '1'")["timestamp"]
    assert (first == pd.Timestamp("2010-12-01 08:26")).all()
    check_purchase_lines(sources["purchase_lines"], sources["purchases"])


def test_purchase_lines_share_the_adapters_errors():
    with pytest.raises(DataContractError, match="Qty"):
        purchase_lines_from_transactions(lines().drop(columns="Qty"), COLUMNS, "shop.csv")
    with pytest.raises(DataContractError, match="Price"):
        purchase_lines_from_transactions(lines(Price=["x"] * 8), COLUMNS, "shop.csv")


@pytest.fixture(scope="module")
def cdnow():
    try:
        return cdnow_transactions()
    except FileNotFoundError as error:
        pytest.skip(str(error))


def test_cdnow_becomes_invoice_lines_of_one_product(cdnow):
    assert len(cdnow) == 69_659 and cdnow["customer_id"].nunique() == 23_570
    assert (cdnow["product"] == "CD").all() and cdnow["country"].isna().all()
    assert cdnow["date"].min() == pd.Timestamp("1997-01-01") and cdnow["date"].max() == pd.Timestamp("1998-06-30")
    sources, report = transaction_sources(cdnow, CDNOW_COLUMNS, "CDNOW_master.txt")
    assert report["customers"] == 23_570 and report["lines_unknown_customer"] == 0
    dollars = (sources["purchase_lines"]["quantity"] * sources["purchase_lines"]["unit_price"]).sum()
    assert dollars == pytest.approx(sources["purchases"]["amount"].sum())


def test_cdnow_file_errors_are_named(tmp_path):
    bad = tmp_path / "cdnow.txt"
    bad.write_text("customer_id date number_of_cds dollar_value\n00001 19970101 0 11.77\n")
    with pytest.raises(DataContractError, match="number_of_cds"):
        cdnow_transactions(bad)
    bad.write_text("customer_id date number_of_cds dollar_value\n00001 1997x101 1 11.77\n")
    with pytest.raises(DataContractError, match="date"):
        cdnow_transactions(bad)
