"""CLV data set: one reference date per customer, features from the window only, honest exclusions."""
from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

from utils.clv import features as features_module
from utils.clv.features import TARGET, build_clv_dataset, feature_columns
from utils.core.contracts import DataContractError

T0 = pd.Timestamp("2021-01-01")
DAY = pd.Timedelta(days=1)


@pytest.fixture
def fake_gdp(monkeypatch):
    """A two-country GDP table, so these tests check our logic and not gapminder's contents."""
    fake = types.SimpleNamespace()
    fake.country_to_iso3 = {"Ireland": "IRL", "EIRE": "IRL", "Narnia": "NAR"}.get
    fake.gdp_table = lambda: pd.DataFrame({"iso3": ["IRL"], "country": ["Ireland"],
                                           "gdp_per_capita": [40_000.0], "year": [2007]})
    monkeypatch.setattr(features_module, "gdp", fake)
    return fake


def sources():
    """Customer 1: signed up at T0. 2: no signup, first purchase T0+2d. 3: signed up late (no horizon yet)."""
    customers = pd.DataFrame({
        "customer_id": [1, 2, 3, 4],
        "signup_date": [T0, pd.NaT, T0 + 95 * DAY, pd.NaT],
        "age": [30, 41, None, 25],
        "gender": ["F", "M", None, "F"],
        "country": ["EIRE", "Narnia", "Atlantis", None],
    })
    web = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2],
        "timestamp": [T0 - DAY, T0, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 3 * DAY],
        "page": ["home", "home", "cart", "shop", "home"],
        "action": ["view", "view", "add_to_cart", "checkout", "view"],
    })
    campaigns = pd.DataFrame({
        "customer_id": [1, 1, 2],
        "campaign_id": ["c1", "c2", "c1"],
        "channel": ["email", "sms", "email"],
        "sent_at": [T0 + DAY, T0 + 3 * DAY, T0 + 20 * DAY],
    })
    purchases = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2, 2, 3],
        "order_id": ["a", "b", "c", "d", "e", "f", "g"],
        "timestamp": [T0 + DAY, T0 + 5 * DAY, T0 + 10 * DAY, T0 + 50 * DAY,
                      T0 + 2 * DAY, T0 + 30 * DAY, T0 + 100 * DAY],
        "amount": [10.0, 30.0, 100.0, -20.0, 5.0, 7.0, 9.0],
        "n_items": [1, 3, 10, 2, 1, 1, 1],
    })
    return customers, web, campaigns, purchases


def build(*frames, window=7, horizon=30, as_of=T0 + 110 * DAY):
    return build_clv_dataset(*(frames or sources()), feature_window_days=window, horizon_days=horizon, as_of=as_of)


def row(df, customer_id):
    return df.set_index("customer_id").loc[customer_id]


def test_a_purchase_after_the_window_cannot_reach_any_feature(fake_gdp):
    customers, web, campaigns, purchases = sources()
    train, _, _ = build(customers, web, campaigns, purchases)
    # Plant a huge purchase, a web action and a campaign right at the end of customer 1's window.
    planted = pd.concat([purchases, pd.DataFrame({"customer_id": [1], "order_id": ["x"], "timestamp": [T0 + 7 * DAY],
                                                  "amount": [1e6], "n_items": [999]})])
    web2 = pd.concat([web, pd.DataFrame({"customer_id": [1], "timestamp": [T0 + 7 * DAY],
                                         "page": ["new"], "action": ["view"]})])
    camp2 = pd.concat([campaigns, pd.DataFrame({"customer_id": [1], "campaign_id": ["c9"], "channel": ["push"],
                                                "sent_at": [T0 + 7 * DAY]})])
    planted_train, _, _ = build(customers, web2, camp2, planted)
    features = feature_columns(train)
    pd.testing.assert_frame_equal(train[features], planted_train[features])
    assert row(planted_train, 1)[TARGET] == pytest.approx(row(train, 1)[TARGET] + 1e6)


def test_features_come_from_the_window_only(fake_gdp):
    train, _, _ = build()
    one = row(train, 1)
    assert one["window_revenue"] == 40.0 and one["window_orders"] == 2 and one["window_items"] == 4
    assert one["window_mean_basket"] == 20.0
    # The web action the day before signup is outside [ref, ref + window).
    assert one["web_actions"] == 3 and one["web_pages"] == 3
    assert one["web_add_to_cart"] == 1 and one["web_checkout"] == 1 and one["web_view"] == 1
    assert one["campaigns"] == 2 and one["campaigns_email"] == 1 and one["campaigns_sms"] == 1
    assert one["campaigns_push"] == 0
    assert one["days_to_first_purchase"] == 1.0
    assert one["age"] == 30 and one["gender_f"] == 1


def test_reference_is_signup_else_first_purchase(fake_gdp):
    train, _, _ = build()
    assert row(train, 1)["ref_date"] == T0
    assert row(train, 2)["ref_date"] == T0 + 2 * DAY
    # Customer 2's window [T0+2d, T0+9d) holds their first purchase and web action, not the campaign.
    assert row(train, 2)["window_revenue"] == 5.0 and row(train, 2)["campaigns"] == 0


def test_target_is_net_revenue_in_the_horizon_only(fake_gdp):
    train, _, _ = build()
    assert row(train, 1)[TARGET] == pytest.approx(100.0)  # day 10; the refund on day 50 is past T0+37d
    assert row(train, 2)[TARGET] == pytest.approx(7.0)  # day 30 is within [T0+9d, T0+39d)
    longer, _, _ = build(horizon=50)
    assert row(longer, 1)[TARGET] == pytest.approx(100.0 - 20.0)  # now the refund counts: net revenue


def test_customers_without_a_full_horizon_are_scored_not_trained_and_counted(fake_gdp):
    train, score, report = build()
    assert sorted(train["customer_id"]) == [1, 2]
    assert list(score["customer_id"]) == [3]
    assert TARGET not in score.columns
    assert feature_columns(score) == feature_columns(train)
    assert report["train_rows"] == 2 and report["score_rows"] == 1
    assert report["excluded_no_reference_date"] == 1  # customer 4: no signup, no purchase
    assert report["excluded_from_training"] == 2
    json.dumps(report)  # 02 writes it as clv_feature_report.json


def test_window_not_yet_complete_goes_nowhere_but_is_counted(fake_gdp):
    train, score, report = build(as_of=T0 + 100 * DAY)  # customer 3's window ends at T0+102d
    assert 3 not in set(train["customer_id"]) | set(score["customer_id"])
    assert report["excluded_window_incomplete"] == 1


def test_as_of_defaults_to_the_latest_event(fake_gdp):
    _, _, report = build(as_of=None)
    assert pd.Timestamp(report["as_of"]) == T0 + 100 * DAY


def test_unmatched_countries_are_kept_with_missing_gdp_and_counted(fake_gdp):
    train, score, report = build()
    assert row(train, 1)["gdp_per_capita"] == 40_000.0 and row(train, 1)["iso3"] == "IRL"
    assert np.isnan(row(train, 2)["gdp_per_capita"])  # Narnia: matched, but no GDP known
    assert np.isnan(row(score, 3)["gdp_per_capita"])  # Atlantis: no ISO code at all
    assert report["countries_unmatched"] == {"Atlantis": 1}
    assert report["countries_without_gdp"] == {"Narnia": 1}


def test_missing_column_is_a_clear_error(fake_gdp):
    customers, web, campaigns, purchases = sources()
    with pytest.raises(DataContractError, match=r"clv_purchases: column 'amount': missing"):
        build(customers, web, campaigns, purchases.drop(columns="amount"))


def test_unreadable_timestamps_are_a_clear_error(fake_gdp):
    customers, web, campaigns, purchases = sources()
    web["timestamp"] = web["timestamp"].astype(str).str.replace("2021", "year ")
    with pytest.raises(DataContractError, match=r"clv_web_actions: column 'timestamp'"):
        build(customers, web, campaigns, purchases)


def test_duplicate_customers_are_rejected(fake_gdp):
    customers, web, campaigns, purchases = sources()
    with pytest.raises(DataContractError, match="duplicated"):
        build(pd.concat([customers, customers.head(1)]), web, campaigns, purchases)


def test_window_and_horizon_must_be_positive(fake_gdp):
    with pytest.raises(ValueError, match="must be > 0"):
        build(window=0)


def test_works_with_the_real_gdp_table():
    customers, web, campaigns, purchases = sources()
    train, _, report = build(customers, web, campaigns, purchases)
    assert row(train, 1)["iso3"] == "IRL" and row(train, 1)["gdp_per_capita"] > 0
    assert "Narnia" in report["countries_unmatched"]
