"""What the scoring job reads: new leads with ids under the raw-leads contract, customers as the CLV
model's feature table built with the model's recipe."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_contract_error
from utils.clv.basket import BASKET_COLUMN
from utils.clv.features import build_clv_dataset, feature_columns
from utils.clv.synth import generate_clv
from utils.core.contracts import DataContractError
from utils.leads.schema import LEAD_ID, LEADS_FEATURE_COLUMNS
from utils.leads.synth import generate_new_leads
from utils.scoring import inputs

FOUR = ("customers", "web_actions", "campaigns", "purchases")


@pytest.fixture(scope="module")
def clv_sources() -> dict[str, pd.DataFrame]:
    return generate_clv(300, 4)


def test_new_leads_keep_their_ids_and_lose_a_target(tmp_path):
    leads = generate_new_leads(40, 1).assign(app_complete_flag=1)
    leads.to_csv(tmp_path / "new.csv")  # an export: the unnamed index first
    read = inputs.read_new_leads(str(tmp_path / "new.csv"))
    assert list(read.frame.columns) == [LEAD_ID, *LEADS_FEATURE_COLUMNS]
    assert read.frame[LEAD_ID].tolist() == list(range(40)) and read.id_source == "the unnamed first column"
    assert read.dropped_target and read.report.rows == 40
    leads.drop(columns="app_complete_flag").to_csv(tmp_path / "plain.csv", index=False)
    plain = inputs.read_new_leads(str(tmp_path / "plain.csv"))
    assert plain.frame[LEAD_ID].tolist() == list(range(1, 41)) and not plain.dropped_target


def test_a_missing_column_names_the_file_and_the_column(tmp_path):
    generate_new_leads(10, 1).drop(columns="first_utm_medium_c").to_csv(tmp_path / "new.csv")
    error = assert_contract_error("first_utm_medium_c", inputs.read_new_leads, str(tmp_path / "new.csv"))
    assert str(tmp_path / "new.csv") in str(error)


def test_customer_features_follow_the_recipe_and_score_every_complete_window(clv_sources):
    recipe = {"feature_window_days": 14, "horizon_days": 60}
    train, score, _ = build_clv_dataset(*(clv_sources[k] for k in FOUR), feature_window_days=14, horizon_days=60,
                                        purchase_lines=clv_sources["purchase_lines"])
    columns = feature_columns(train)
    features, summary = inputs.customer_features(clv_sources, recipe, columns, "<files>")
    assert len(features) == len(train) + len(score) == summary["scored"]
    assert features["customer_id"].is_unique and "clv_target" not in features
    assert summary["feature_window_days"] == 14 and summary["level_counts_filled_with_zero"] == []
    expected = pd.concat([train.drop(columns="clv_target"), score]).sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(features[columns], expected[columns])


def test_an_absent_level_count_is_zero_but_another_missing_feature_stops(clv_sources):
    recipe = {"feature_window_days": 7, "horizon_days": 30}
    features, summary = inputs.customer_features(clv_sources, recipe, ["window_revenue", "web_never_seen"], "f.csv")
    assert (features["web_never_seen"] == 0).all() and summary["level_counts_filled_with_zero"] == ["web_never_seen"]
    assert_contract_error("loyalty_score", inputs.customer_features, clv_sources, recipe, ["loyalty_score"], "f.csv")
    with pytest.raises(DataContractError, match="not recorded with the model"):
        inputs.customer_features(clv_sources, {}, ["window_revenue"], "f.csv")


def test_customer_sources_from_files_or_transactions(tmp_path, clv_sources):
    for name, frame in clv_sources.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    sources, report = inputs.read_customer_sources({"customers": str(tmp_path / "customers.csv"),
                                                    "purchases": str(tmp_path / "purchases.csv")})
    assert len(sources["customers"]) == 300 and sources["web_actions"].empty and report.rows == 300
    lines = pd.DataFrame({"InvoiceNo": ["1", "1", "2"], "StockCode": ["a", "b", "a"], "Quantity": [1, 2, 1],
                          "InvoiceDate": ["2011-01-01 10:00", "2011-01-01 10:00", "2011-02-01 09:00"],
                          "UnitPrice": [2.0, 3.0, 2.0], "CustomerID": [7, 7, 0], "Country": ["EIRE"] * 3})
    lines.to_csv(tmp_path / "lines.csv", index=False)
    columns = {"invoice": "InvoiceNo", "product": "StockCode", "quantity": "Quantity", "timestamp": "InvoiceDate",
               "unit_price": "UnitPrice", "customer": "CustomerID", "country": "Country"}
    sources, report = inputs.read_customer_sources(transactions=str(tmp_path / "lines.csv"), tx_columns=columns)
    assert sources["customers"]["customer_id"].tolist() == [7] and report.counts["unknown_customer_lines"] == 1
    assert np.isclose(sources["purchases"]["amount"].sum(), 8.0)


def test_a_basket_model_without_purchase_lines_is_refused_naming_the_column(clv_sources):
    recipe = {"feature_window_days": 7, "horizon_days": 30}
    without_lines = {k: clv_sources[k] for k in FOUR}
    error = assert_contract_error(BASKET_COLUMN, inputs.customer_features, without_lines, recipe,
                                  ["window_revenue", BASKET_COLUMN], "f.csv")
    assert "--purchase-lines" in str(error)
    features, _ = inputs.customer_features(clv_sources, recipe, ["window_revenue", BASKET_COLUMN], "f.csv")
    assert features[BASKET_COLUMN].str.len().gt(2).any()  # baskets built from the lines


def test_purchase_lines_file_is_read_and_checked_against_the_purchases(tmp_path, clv_sources):
    for name, frame in clv_sources.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    files = {"customers": str(tmp_path / "customers.csv"), "purchases": str(tmp_path / "purchases.csv"),
             "purchase_lines": str(tmp_path / "purchase_lines.csv")}
    sources, _ = inputs.read_customer_sources(files)
    assert len(sources["purchase_lines"]) == len(clv_sources["purchase_lines"])
    orphan = clv_sources["purchase_lines"].assign(order_id="no-such-order")
    orphan.to_csv(tmp_path / "purchase_lines.csv", index=False)
    assert_contract_error("order_id", inputs.read_customer_sources, files)


def test_day_first_leads_are_read_with_the_reading_parameters(tmp_path):
    leads = generate_new_leads(12, 2)
    leads["created_date"] = [f"0{1 + i % 9}/0{1 + i % 3}/2022 10:00" for i in range(12)]  # day and month <= 12
    leads.to_csv(tmp_path / "new.csv", sep=";")
    with pytest.raises(DataContractError, match="leads_dayfirst"):
        inputs.read_new_leads(str(tmp_path / "new.csv"))
    read = inputs.read_new_leads(str(tmp_path / "new.csv"), reading={"leads_dayfirst": True})
    assert read.frame["created_date"].iloc[4] == pd.Timestamp("2022-02-05 10:00")
    assert read.id_source == "the unnamed first column"
