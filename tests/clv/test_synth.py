
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from utils.clv import synth as sc
from utils.clv.features import TARGET, build_clv_dataset
from utils.clv.metrics import spearman
from utils.clv.schema import CLV_SCHEMAS, PURCHASE_LINES_SCHEMA, check_purchase_lines, validate_clv_sources

START, END = pd.Timestamp("2021-01-01"), pd.Timestamp("2022-12-31")
DTYPES = {"id": "int64", "datetime": "datetime64[ns]", "number": "float64", "integer": "int64", "text": "object"}


@pytest.fixture(scope="module")
def sources():
    return sc.generate_clv(5_000, 42)


def later_spend(sources, early_days=sc.SIGNAL_DAYS, horizon_days=180):
    """Net spend in [signup + early_days, + horizon_days) of customers whose whole horizon is observed."""
    customers, purchases = sources["customers"], sources["purchases"]
    signup = purchases["customer_id"].map(customers.set_index("customer_id")["signup_date"])
    offset = (purchases["timestamp"] - signup).dt.days
    in_horizon = (offset >= early_days) & (offset < early_days + horizon_days)
    spend = purchases[in_horizon].groupby("customer_id")["amount"].sum()
    complete = customers[customers["signup_date"] + pd.Timedelta(days=early_days + horizon_days) <= END]
    return complete.set_index("customer_id").assign(spend=lambda d: d.index.map(spend).fillna(0.0))


def test_keys_columns_and_dtypes_follow_the_contract(sources):
    assert list(sources) == ["customers", "web_actions", "campaigns", "purchases", "purchase_lines"]
    for name, schema in {**CLV_SCHEMAS, "purchase_lines": PURCHASE_LINES_SCHEMA}.items():
        frame = sources[name]
        assert list(frame.columns) == list(schema), name
        for column, kind in schema.items():
            expected = "Int64" if (name, column) == ("customers", "age") else DTYPES[kind]
            assert str(frame[column].dtype) == expected, (name, column)
    assert validate_clv_sources(sources, {}, as_of=pd.Timestamp("2030-01-01")).counts.keys() <= {
        "refunds", "countries_unmatched", "countries_without_gdp"}


def test_same_seed_same_data_other_seed_other_data():
    first, second, other = sc.generate_clv(300, 1), sc.generate_clv(300, 1), sc.generate_clv(300, 2)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])
    assert not first["purchases"].equals(other["purchases"])


def test_ids_and_times_are_consistent(sources):
    customers = sources["customers"]
    assert customers["customer_id"].is_unique and len(customers) == 5_000
    known = set(customers["customer_id"])
    for name, column in (("web_actions", "timestamp"), ("campaigns", "sent_at"), ("purchases", "timestamp")):
        frame = sources[name]
        assert frame["customer_id"].isin(known).all(), name
        assert frame[column].between(START, END + pd.Timedelta(days=1)).all(), name
        signup = frame["customer_id"].map(customers.set_index("customer_id")["signup_date"])
        assert (frame[column] >= signup).all(), name
    assert sources["purchases"]["order_id"].is_unique
    assert set(sources["campaigns"]["channel"]) == set(sc.CHANNELS)


def test_countries_are_spelt_as_exports_spell_them(sources):
    countries = set(sources["customers"]["country"])
    assert {"United Kingdom", "EIRE", "RSA", "USA", "Unspecified"} <= countries
    assert "Ireland" not in countries and "United States" not in countries
    assert abs(sum(sc.country_shares().values()) - 1) < 1e-9


def test_most_customers_spend_nothing_after_their_first_weeks(sources):
    spend = later_spend(sources)["spend"]
    assert len(spend) > 3_000
    assert 0.5 <= (spend <= 0).mean() <= 0.68


def test_spend_is_heavy_tailed_with_some_refunds(sources):
    amount = sources["purchases"]["amount"]
    refunds = (amount < 0).mean()
    assert 0.01 < refunds < 0.08
    assert sources["purchases"].loc[amount < 0, "order_id"].str.startswith("R").all()
    positive = amount[amount > 0]
    assert positive.mean() > 1.2 * positive.median() and positive.quantile(0.99) > 5 * positive.median()


def test_spend_follows_early_behaviour_and_gdp(sources):
    spend = later_spend(sources)
    web = sources["web_actions"]
    signup = web["customer_id"].map(sources["customers"].set_index("customer_id")["signup_date"])
    early = web[(web["timestamp"] - signup) < pd.Timedelta(days=14)]
    key = early[early["action"].isin(sc.KEY_ACTIONS)].groupby("customer_id").size()
    spend["key_actions"] = spend.index.map(key).fillna(0)
    assert spearmanr(spend["key_actions"], spend["spend"])[0] > 0.15
    from utils.clv import gdp

    with_gdp, _ = gdp.attach_gdp(spend.reset_index())
    rich = with_gdp["gdp_per_capita"] > with_gdp["gdp_per_capita"].median()
    poor = with_gdp["gdp_per_capita"] < 10_000
    assert with_gdp.loc[rich, "spend"].mean() > with_gdp.loc[poor, "spend"].mean()


def test_early_sms_campaigns_lift_later_spend():
    # The channel effects are small next to engagement: a big sample shows them.
    sources = sc.generate_clv(30_000, 9)
    spend = later_spend(sources)
    campaigns = sources["campaigns"]
    signup = campaigns["customer_id"].map(sources["customers"].set_index("customer_id")["signup_date"])
    early = campaigns[(campaigns["sent_at"] - signup) < pd.Timedelta(days=sc.SIGNAL_DAYS)]
    got = early.groupby(["customer_id", "channel"]).size().unstack(fill_value=0)
    got = got.reindex(spend.index, fill_value=0)
    buys = spend["spend"] > 0
    sms_rate = buys[got["sms"] > 0].mean() - buys[got["sms"] == 0].mean()
    social_rate = buys[got["social"] > 0].mean() - buys[got["social"] == 0].mean()
    assert sms_rate > social_rate


def test_full_scale_shop_has_every_customer():
    sources = sc.generate_clv(50_000, 0)  # bench/bench_generators.py times it
    assert len(sources["customers"]) == 50_000 and sources["customers"]["customer_id"].is_unique


def test_bad_arguments():
    with pytest.raises(ValueError):
        sc.generate_clv(0, 1)
    for bad in ({"late_share": 1.5}, {"signal_days": 0}, {"n_products": 2}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            sc.generate_clv(10, 1, **bad)
    one = sc.generate_clv(1, 1)
    assert len(one["customers"]) == 1 and np.issubdtype(one["purchases"]["amount"].dtype, np.floating)


def test_lines_add_up_to_their_purchases_and_share_their_time(sources):
    lines = check_purchase_lines(sources["purchase_lines"], sources["purchases"])  # raises if a line strays
    amounts = (lines["quantity"] * lines["unit_price"]).groupby([lines["customer_id"], lines["order_id"]]).sum()
    expected = sources["purchases"].set_index(["customer_id", "order_id"])["amount"]
    assert len(amounts) == len(expected)
    np.testing.assert_allclose(amounts.sort_index().to_numpy(), expected.sort_index().to_numpy(), atol=0.011)
    refunds = lines["order_id"].str.startswith("R")
    assert (lines.loc[refunds, "quantity"] < 0).all() and (lines.loc[~refunds, "quantity"] > 0).all()


def _window_rank_power(late_share: float, seed: int) -> float:
    """Spearman of 28-day window revenue with the next 180 days' revenue (training customers)."""
    sources = sc.generate_clv(6_000, seed, signal_days=14, late_share=late_share)
    train, _, _ = build_clv_dataset(*(sources[k] for k in ("customers", "web_actions", "campaigns", "purchases")),
                                    feature_window_days=28, horizon_days=180)
    return spearman(train[TARGET], train["window_revenue"])


def test_value_revealed_late_is_what_the_window_cannot_see():
    """All value early vs all value late, on three seeds: the window ranks the future clearly
    better when nothing is revealed late. The generator no longer grades its own homework."""
    gaps = [_window_rank_power(0.0, seed) - _window_rank_power(1.0, seed) for seed in (1, 2, 3)]
    assert min(gaps) > 0.03, gaps


def test_signal_period_is_the_generators_own_not_the_feature_window():
    sources = sc.generate_clv(3_000, 2, signal_days=5)
    purchases = sources["purchases"].merge(sources["customers"][["customer_id", "signup_date"]])
    offset = (purchases["timestamp"] - purchases["signup_date"]) / pd.Timedelta(days=1)
    first = offset.groupby(purchases["customer_id"]).min()
    # First orders of first buyers come within the generator's 5 days, whatever window features use.
    assert (first < 5).mean() > 0.6
    web = sources["web_actions"].merge(sources["customers"][["customer_id", "signup_date"]])
    web_offset = (web["timestamp"] - web["signup_date"]) / pd.Timedelta(days=1)
    assert ((web_offset >= 5) & (web_offset < 6)).mean() < ((web_offset >= 0) & (web_offset < 1)).mean() / 3


def test_what_customers_buy_hints_at_their_late_value(sources):
    """Staples (the first third of the catalogue) are bought more by customers who spend later,
    though they are priced like the rest: a product-level signal has something to find."""
    lines, spend = sources["purchase_lines"], later_spend(sources)["spend"]
    staple = lines["product"].str[1:].astype(int) < sc.N_PRODUCTS // 3
    share = staple.groupby(lines["customer_id"]).mean().reindex(spend.index).dropna()
    assert spearmanr(share, spend.loc[share.index])[0] > 0.1
    price = lines["unit_price"].groupby(staple).median()
    assert 0.5 < price[True] / price[False] < 2
