"""CLV models: time split, honest tuning, the hurdle estimator, MLflow round trip, real data."""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.helpers import scratch_mlflow_store
from sklearn.base import clone

from utils.core import registry, tracking
from utils.core.serving import unwrap
from utils.clv.features import TARGET, build_clv_dataset, feature_columns
from utils.clv.metrics import normalized_gini, spearman
from utils.clv.model import (
    SEARCH_SPACE,
    HurdleCLV,
    baseline_predictions,
    make_random_forest,
    plot_importance,
    time_folds,
    time_split,
    tune_hurdle,
)


def customers_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Who comes back is told by web activity, which first-window revenue does not show."""
    rng = np.random.default_rng(seed)
    web = rng.poisson(3, n).astype(float)
    revenue = rng.lognormal(3, 1, n)
    comes_back = rng.random(n) < 1 / (1 + np.exp(-(web - 3)))
    target = np.where(comes_back, revenue * rng.lognormal(0.5, 0.5, n), 0.0)
    return pd.DataFrame({
        "customer_id": np.arange(n), "ref_date": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.permutation(n), "h"),
        "web_actions": web, "window_revenue": revenue, "noise": rng.normal(size=n), TARGET: target,
    })


FEATURES = ["web_actions", "window_revenue", "noise"]


def test_time_split_keeps_the_latest_customers_for_test():
    df = customers_frame(100)
    train, test = time_split(df, test_share=0.3)
    assert len(train) == 70 and len(test) == 30
    assert train["ref_date"].max() <= test["ref_date"].min()
    with pytest.raises(ValueError, match="test_share"):
        time_split(df, test_share=1.0)


def test_time_split_breaks_date_ties_by_customer_id_not_row_order():
    df = pd.DataFrame({"customer_id": [5, 3, 9, 1], "ref_date": pd.Timestamp("2021-01-01")})
    train, test = time_split(df.sample(frac=1, random_state=1), test_share=0.5)
    assert list(train["customer_id"]) == [1, 3] and list(test["customer_id"]) == [5, 9]


def test_time_folds_always_check_on_later_rows():
    folds = time_folds(100, n_splits=3)
    assert len(folds) == 3
    for fit, check in folds:
        assert fit.max() < check.min() and len(check) > 0


def test_hurdle_finds_what_the_naive_rule_misses():
    df = customers_frame(1500)
    train, test = time_split(df)
    model = HurdleCLV(n_estimators_clf=100, random_state=0).fit(train[FEATURES], train[TARGET])
    predicted = model.predict(test[FEATURES])
    naive = baseline_predictions(test[FEATURES], train[TARGET])["naive"]
    assert (predicted >= 0).all()
    assert normalized_gini(test[TARGET], predicted) > normalized_gini(test[TARGET], naive) + 0.05
    assert spearman(test[TARGET], predicted) > spearman(test[TARGET], naive) + 0.05


def test_hurdle_is_a_proper_sklearn_estimator():
    df = customers_frame(300)
    model = HurdleCLV(n_estimators_clf=20, n_estimators_reg=20, random_state=3)
    assert clone(model).get_params() == model.get_params()
    model.fit(df[FEATURES], df[TARGET])
    parts = model.predict_parts(df[FEATURES])
    np.testing.assert_allclose(parts["p_spend"] * parts["spend_if_any"], model.predict(df[FEATURES]))
    assert parts["p_spend"].between(0, 1).all() and model.smearing_ >= 1.0
    # Extra columns (ids, the target) are ignored; a missing feature is a clear error.
    np.testing.assert_allclose(model.predict(df), model.predict(df[FEATURES]))
    with pytest.raises(ValueError, match="missing feature columns"):
        model.predict(df[["web_actions", "noise"]])
    assert set(model.importance_table()["feature"]) == set(FEATURES)


def test_hurdle_rejects_targets_it_cannot_learn_from():
    df = customers_frame(50)
    with pytest.raises(ValueError, match="fewer than 2 customers spent"):
        HurdleCLV().fit(df[FEATURES], np.zeros(50))
    with pytest.raises(ValueError, match="base_feature"):
        HurdleCLV(base_feature="nope").fit(df[FEATURES], df[TARGET])
    with pytest.raises(TypeError, match="DataFrame"):
        HurdleCLV().fit(df[FEATURES].to_numpy(), df[TARGET])


def test_hurdle_copes_when_every_customer_spends():
    df = customers_frame(200)
    model = HurdleCLV(n_estimators_clf=10).fit(df[FEATURES], df["window_revenue"])
    assert model.predict_parts(df[FEATURES])["p_spend"].min() > 0.99


def test_tuning_is_deterministic_and_stays_in_its_search_space():
    df = customers_frame(400)
    best, table = tune_hurdle(df[FEATURES], df[TARGET], n_trials=4, random_state=7)
    again, _ = tune_hurdle(df[FEATURES], df[TARGET], n_trials=4, random_state=7)
    assert best == again and len(table) == 4
    for key, values in SEARCH_SPACE.items():
        assert best[key] in values or best[key] == HurdleCLV().get_params()[key]
    best_row = table.loc[table["cv_score"].idxmax()]
    assert best_row["cv_score"] == pytest.approx(min(best_row["cv_gini_gain"], best_row["cv_spearman_gain"]))


def test_random_forest_baseline_handles_missing_values():
    df = customers_frame(100)
    df.loc[::3, "noise"] = np.nan
    forest = make_random_forest(n_estimators=10, random_state=0).fit(df[FEATURES], df[TARGET])
    assert np.isfinite(forest.predict(df[FEATURES])).all()


def test_champion_is_scored_on_the_same_test_set_or_not_at_all():
    df = customers_frame(300)
    champion = HurdleCLV(n_estimators_clf=10).fit(df[FEATURES], df[TARGET])
    predict = lambda model, X: model.predict(X)
    score = registry.champion_score(champion, df, df[TARGET], normalized_gini, predict)
    assert score == pytest.approx(normalized_gini(df[TARGET], champion.predict(df[FEATURES])))
    # A champion trained on features this data set lacks cannot be compared.
    assert registry.champion_score(champion, df[["web_actions", "noise"]], df[TARGET], normalized_gini, predict) is None


def test_importance_plot_has_labelled_axes():
    df = customers_frame(200)
    model = HurdleCLV(n_estimators_clf=10, n_estimators_reg=10).fit(df[FEATURES], df[TARGET])
    forest = make_random_forest(n_estimators=5, random_state=0).fit(df[FEATURES], df[TARGET])
    ax = plot_importance(model, forest).axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert {t.get_text() for t in ax.get_yticklabels()} == set(FEATURES)
    assert len(ax.get_legend().get_texts()) == 3


@pytest.fixture
def local_mlflow(tmp_path):
    with scratch_mlflow_store(tmp_path, "clv-test"):
        yield


def test_logged_hurdle_loads_back_as_pyfunc(local_mlflow):
    df = customers_frame(200)
    model = HurdleCLV(n_estimators_clf=10, n_estimators_reg=10).fit(df[FEATURES], df[TARGET])
    with mlflow.start_run():
        uri = tracking.log_model(model, df[FEATURES], "predicted_clv")
    loaded = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(loaded.predict(df[FEATURES])["predicted_clv"], model.predict(df[FEATURES]))
    assert isinstance(unwrap(mlflow.sklearn.load_model(uri)), HurdleCLV)


def _chain(data: pd.DataFrame, n_trials: int, rf_trees: int, seed: int = 42) -> tuple[dict, dict]:
    """Time split, honest tuning, naive / rf / hurdle on the test part: (gini, spearman) by model."""
    train, test = time_split(data, test_share=0.3)
    features = feature_columns(data)
    X, y, actual = train[features], train[TARGET].to_numpy(), test[TARGET].to_numpy()
    best, _ = tune_hurdle(X, y, n_trials=n_trials, random_state=seed)
    predictions = {
        "naive": baseline_predictions(test[features], y)["naive"],
        "rf": make_random_forest(rf_trees, random_state=seed).fit(X, y).predict(test[features]),
        "hurdle": HurdleCLV(random_state=seed, **best).fit(X, y).predict(test[features]),
    }
    gini = {name: normalized_gini(actual, p) for name, p in predictions.items()}
    rank = {name: spearman(actual, p) for name, p in predictions.items()}
    return gini, rank


def test_hurdle_beats_rf_and_naive_on_the_synthetic_shop():
    from utils.clv.synth import generate_clv

    sources = generate_clv(n_customers=4000, random_seed=42)
    data, _, _ = build_clv_dataset(sources["customers"], sources["web_actions"], sources["campaigns"],
                                   sources["purchases"], feature_window_days=28, horizon_days=180)
    gini, rank = _chain(data, n_trials=8, rf_trees=100)
    assert gini["hurdle"] > max(gini["rf"], gini["naive"]), gini
    assert rank["hurdle"] > max(rank["rf"], rank["naive"]), rank


REAL_COLUMNS = {"invoice": "InvoiceNo", "product": "StockCode", "quantity": "Quantity", "timestamp": "InvoiceDate",
                "unit_price": "UnitPrice", "customer": "CustomerID", "country": "Country"}


@pytest.mark.real_data
@pytest.mark.slow
def test_hurdle_beats_rf_and_naive_on_real_transactions(shared_data):
    """The whole chain on UCI Online Retail: 7-day window, 180-day horizon, latest 30% of customers test."""
    from utils.clv.transactions import sources_from_transactions

    tx = pd.read_parquet(shared_data / "clv" / "online_retail_2010_2011.parquet")
    customers, web, campaigns, purchases, _ = sources_from_transactions(tx, REAL_COLUMNS, "online_retail.parquet")
    data, _, report = build_clv_dataset(customers, web, campaigns, purchases, feature_window_days=7, horizon_days=180)
    assert report["train_rows"] == 2748
    gini, rank = _chain(data, n_trials=20, rf_trees=300)
    assert gini["hurdle"] > gini["rf"] and gini["hurdle"] > gini["naive"], gini
    assert rank["hurdle"] > rank["rf"] and rank["hurdle"] > rank["naive"], rank


def test_forest_predictions_are_bit_identical_whatever_the_thread_order():
    df = customers_frame(400)
    forest = make_random_forest(n_estimators=40, random_state=0).fit(df[FEATURES], df[TARGET])
    first = forest.predict(df[FEATURES])
    assert all(np.array_equal(first, forest.predict(df[FEATURES])) for _ in range(5))
    assert forest.named_steps["forest"].n_jobs == -1, "fitting still uses every core"
