"""CLV data set: one reference date per customer, features from the window only, honest exclusions."""
from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

from utils.clv import features as features_module
from utils.clv.basket import BASKET_COLUMN
from utils.clv.features import TARGET, btyd_history, build_clv_dataset, feature_columns
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


# --- the window's purchases to BG/NBD, timing, basket; the training history ---------------------


def lines_of(purchases: pd.DataFrame) -> pd.DataFrame:
    """One line per purchase (product named after the order), at the purchase's time."""
    return pd.DataFrame({"customer_id": purchases["customer_id"], "order_id": purchases["order_id"],
                         "timestamp": purchases["timestamp"], "product": "P-" + purchases["order_id"],
                         "quantity": purchases["n_items"].astype(float),
                         "unit_price": purchases["amount"] / purchases["n_items"]})


def test_btyd_timing_and_basket_columns_come_from_the_window(fake_gdp):
    customers, web, campaigns, purchases = sources()
    train, _, _ = build(customers, web, campaigns, purchases)
    assert train[BASKET_COLUMN].eq("{}").all() and np.isnan(row(train, 1)["basket_lines"])  # no lines: unknown
    train, _, report = build_clv_dataset(customers, web, campaigns, purchases, feature_window_days=7,
                                         horizon_days=30, as_of=T0 + 110 * DAY, purchase_lines=lines_of(purchases))
    one = row(train, 1)
    # Customer 1 bought on days 1 and 5 of its 7-day window (orders a and b), then on day 10 (c).
    assert one["btyd_frequency"] == 1 and one["btyd_recency"] == 4 and one["btyd_T"] == 6
    assert one["btyd_monetary_all"] == pytest.approx(20.0) and one["btyd_monetary_repeat"] == pytest.approx(30.0)
    assert one["timing_span_days"] == 4 and one["basket_lines"] == 2
    assert json.loads(one[BASKET_COLUMN]) == {"P-a": 10.0, "P-b": 30.0}
    assert BASKET_COLUMN not in feature_columns(train) and "btyd_frequency" in feature_columns(train)
    assert report["purchase_lines"] == len(purchases) and report["data_start"] == str(T0 - DAY)


def test_lines_after_the_window_never_reach_a_feature(fake_gdp):
    customers, web, campaigns, purchases = sources()
    lines = lines_of(purchases)
    base, _, _ = build_clv_dataset(customers, web, campaigns, purchases, 7, 30, T0 + 110 * DAY, purchase_lines=lines)
    late = purchases["timestamp"] >= purchases["customer_id"].map({1: T0 + 7 * DAY, 2: T0 + 9 * DAY, 3: T0})
    changed_p = purchases.copy()
    changed_p.loc[late, "amount"] = 1e6
    changed_l = lines.copy()
    changed_l.loc[late.to_numpy(), ["product", "quantity", "unit_price"]] = ["NEW", 1.0, 1e6]
    after, _, _ = build_clv_dataset(customers, web, campaigns, changed_p, 7, 30, T0 + 110 * DAY,
                                    purchase_lines=changed_l)
    features = [c for c in base.columns if c != TARGET]
    pd.testing.assert_frame_equal(base[features], after[features])
    assert not np.allclose(base[TARGET], after[TARGET])  # the target did see them


def test_lines_must_belong_to_purchases(fake_gdp):
    customers, web, campaigns, purchases = sources()
    lines = lines_of(purchases).assign(order_id="nowhere")
    with pytest.raises(DataContractError, match="clv_purchase_lines.*belong to no purchase"):
        build_clv_dataset(customers, web, campaigns, purchases, 7, 30, T0 + 110 * DAY, purchase_lines=lines)


def test_history_summarises_window_and_horizon_of_the_training_customers(fake_gdp):
    customers, web, campaigns, purchases = sources()
    train, _, _ = build(customers, web, campaigns, purchases)
    history = btyd_history(train, purchases, 7, 30).set_index("customer_id")
    assert set(history.index) == set(train["customer_id"])
    # Customer 1 over 37 days: purchase days 1, 5, 10 (day 50 is a refund, beyond the period anyway).
    assert history.loc[1, "btyd_frequency"] == 2 and history.loc[1, "btyd_recency"] == 9
    assert history.loc[1, "btyd_T"] == 36
    with pytest.raises(DataContractError, match="clv_purchases: column 'amount'"):
        btyd_history(train, purchases.drop(columns="amount"), 7, 30)
