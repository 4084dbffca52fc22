"""CLV models: time split, honest tuning, the hurdle estimator, MLflow round trip, real data."""
from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from tests.helpers import scratch_mlflow_store
from utils.clv import synth
from utils.clv.basket import BASKET_COLUMN
from utils.clv.features import TARGET, build_clv_dataset, feature_columns
from utils.clv.metrics import normalized_gini, paired_bootstrap, spearman
from utils.clv.model import (
    ENRICHED_DEFAULTS,
    ENRICHED_SPACE,
    SEARCH_SPACE,
    HurdleCLV,
    NaiveCLV,
    ProductSignalRegressor,
    TweedieCLV,
    baseline_predictions,
    burn_in_cv,
    inner_hurdle,
    make_enriched_hurdle,
    make_random_forest,
    plot_importance,
    predict_own_columns,
    select_by_time_cv,
    time_folds,
    time_split,
    tune_enriched_hurdle,
    tune_hurdle,
)
from utils.core import registry, tracking
from utils.core.serving import unwrap


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
    # Not a bare '>' inside the noise: the whole paired-bootstrap interval of the gain lies above 0.05.
    for metric in (normalized_gini, spearman):
        assert paired_bootstrap(test[TARGET], predicted, naive, metric, n_boot=300)["low"] > 0.05


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


def test_a_forest_on_half_size_samples_is_lighter_and_refuses_shares_outside_zero_one():
    df = customers_frame(800)
    full, half = (make_random_forest(10, random_state=0, max_samples=share).fit(df[FEATURES], df[TARGET])
                  for share in (None, 0.5))
    nodes = [np.mean([tree.tree_.node_count for tree in forest.named_steps["forest"].estimators_]) for forest in (full, half)]
    assert nodes[1] < 0.7 * nodes[0]
    for share in (0, 1.5, -0.2):
        with pytest.raises(ValueError, match="max_samples"):
            make_random_forest(10, max_samples=share)


def test_the_forest_is_the_classic_regression_forest_a_third_of_the_features_and_leaves_of_five():
    df = customers_frame(600)
    forest = make_random_forest(10, random_state=0).fit(df[FEATURES], df[TARGET]).named_steps["forest"]
    assert {tree.max_features_ for tree in forest.estimators_} == {max(1, int(len(FEATURES) / 3))}
    trees = [tree.tree_ for tree in forest.estimators_]
    assert min(t.n_node_samples[t.children_left == -1].min() for t in trees) >= 5  # every leaf: 5 customers or more
    bagged = make_random_forest(10, random_state=0, max_features=1.0, min_samples_leaf=1).fit(df[FEATURES], df[TARGET])
    assert {tree.max_features_ for tree in bagged.named_steps["forest"].estimators_} == {len(FEATURES)}
    assert min(t.tree_.n_node_samples[t.tree_.children_left == -1].min() for t in bagged.named_steps["forest"].estimators_) < 5
    for bad in ({"max_features": 0}, {"max_features": 1.5}, {"min_samples_leaf": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_random_forest(10, **bad)


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


def test_forest_predictions_are_bit_identical_whatever_the_thread_order():
    df = customers_frame(400)
    forest = make_random_forest(n_estimators=40, random_state=0).fit(df[FEATURES], df[TARGET])
    first = forest.predict(df[FEATURES])
    assert all(np.array_equal(first, forest.predict(df[FEATURES])) for _ in range(5))
    assert forest.named_steps["forest"].n_jobs == -1, "fitting still uses every core"


# --- the product signal and the other candidates ----------------------------------------------


def basket_frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Who comes back is told only by what they bought: buyers of the 'refill' products return."""
    rng = np.random.default_rng(seed)
    df = customers_frame(n, seed).drop(columns=TARGET)
    refill = rng.random(n) < 0.4
    products = np.where(refill, rng.integers(0, 5, n), rng.integers(5, 40, n))
    other = rng.integers(40, 80, n)
    df[BASKET_COLUMN] = [json.dumps({f"R{p}": 10.0, f"X{o}": 5.0}) for p, o in zip(products, other)]
    comes_back = rng.random(n) < np.where(refill, 0.8, 0.2)
    df[TARGET] = np.where(comes_back, df["window_revenue"] * rng.lognormal(0.5, 0.5, n), 0.0)
    return df


ENRICHED = [*FEATURES, BASKET_COLUMN]


def test_product_signal_finds_what_no_numeric_feature_shows():
    train, test = time_split(basket_frame())
    with_signal = make_enriched_hurdle(random_state=0).fit(train[ENRICHED], train[TARGET])
    without = HurdleCLV(**{k: v for k, v in ENRICHED_DEFAULTS.items() if k != "smoothing"}, random_state=0)
    without.fit(train[FEATURES], train[TARGET])
    gain = paired_bootstrap(test[TARGET], with_signal.predict(test[ENRICHED]), without.predict(test[FEATURES]),
                            normalized_gini, n_boot=300)
    assert gain["low"] > 0.05, gain
    assert list(with_signal.feature_names_in_) == ENRICHED
    assert inner_hurdle(with_signal) is with_signal.estimator_ and inner_hurdle(NaiveCLV()) is None


def test_product_signal_regressor_is_a_proper_estimator_with_clear_errors():
    df = basket_frame(300)
    model = make_enriched_hurdle({"n_estimators_clf": 10, "n_estimators_reg": 10}, random_state=1)
    assert clone(model).get_params()["smoothing"] == model.get_params()["smoothing"]
    model.fit(df[ENRICHED], df[TARGET])
    # Row order and extra columns change nothing; a missing column is named.
    shuffled = df.sample(frac=1, random_state=0)
    np.testing.assert_allclose(model.predict(shuffled), model.predict(df[ENRICHED]).reshape(-1)[shuffled.index])
    with pytest.raises(ValueError, match="missing feature columns"):
        model.predict(df[FEATURES])
    with pytest.raises(ValueError, match=f"no column '{BASKET_COLUMN}'"):
        clone(model).fit(df[FEATURES], df[TARGET])
    with pytest.raises(ValueError, match="no column 'nope'"):
        ProductSignalRegressor(HurdleCLV(), base_feature="nope").fit(df[ENRICHED], df[TARGET])
    with pytest.raises(TypeError, match="DataFrame"):
        clone(model).fit(df[ENRICHED].to_numpy(), df[TARGET])


def test_tweedie_learns_from_the_other_features():
    df = customers_frame(1500, seed=2)
    glm_only = TweedieCLV(n_estimators=0).fit(df[FEATURES], df[TARGET])
    boosted = TweedieCLV(n_estimators=200).fit(df[FEATURES], df[TARGET])
    assert spearman(df[TARGET], boosted.predict(df[FEATURES])) > spearman(df[TARGET], glm_only.predict(df[FEATURES])) + 0.1
    assert (boosted.predict(df[FEATURES]) > 0).all()
    assert boosted.predict(df[FEATURES]).mean() == pytest.approx(df[TARGET].mean(), rel=0.3)
    clone(boosted)


def test_tweedie_and_naive_reject_bad_inputs():
    df = customers_frame(50)
    with pytest.raises(TypeError):
        TweedieCLV().fit(df[FEATURES].to_numpy(), df[TARGET])
    with pytest.raises(ValueError, match="base_feature"):
        TweedieCLV().fit(df[["web_actions", "noise"]], df[TARGET])
    with pytest.raises(ValueError, match="spent"):
        TweedieCLV().fit(df[FEATURES], np.zeros(50))
    with pytest.raises(ValueError, match="missing"):
        TweedieCLV(n_estimators=5).fit(df[FEATURES], df[TARGET]).predict(df[["window_revenue"]])
    with pytest.raises(ValueError, match="window_revenue"):
        NaiveCLV().fit(df[["noise"]])
    naive = NaiveCLV().fit(df)
    assert list(naive.feature_names_in_) == ["window_revenue"]
    assert naive.predict(df.assign(window_revenue=np.nan)).sum() == 0


def test_selection_picks_the_model_that_ranks_better_by_a_clear_margin():
    df = customers_frame(1500, seed=5)
    candidates = {"naive": NaiveCLV(), "hurdle": HurdleCLV(n_estimators_clf=100, random_state=0)}
    progress = []
    best, table = select_by_time_cv(candidates, df, df[TARGET], 3, {"naive": ["window_revenue"], "hurdle": FEATURES},
                                    progress=progress.append)
    assert best == "hurdle" and len(progress) == 2
    row = table.set_index("model").loc["hurdle"]
    assert row["cv_gini_gain"] > 0.05 and row["cv_spearman_gain"] > 0.05
    assert table.set_index("model").loc["naive", "cv_score"] == 0.0
    with pytest.raises(ValueError, match="window_revenue"):
        select_by_time_cv(candidates, df[["web_actions"]], df[TARGET])


class _Recording(NaiveCLV):
    """The naive rule, noting which thread fitted it; ``thread_safe = False`` like BTYDRegressor."""

    thread_safe = False
    threads: list = []

    def fit(self, X, y=None):
        import threading

        _Recording.threads.append(threading.current_thread().name)
        return super().fit(X, y)


def test_selection_side_by_side_gives_the_table_of_one_thread_and_runs_the_unsafe_alone(monkeypatch):
    df = customers_frame(1500, seed=5)
    candidates = {"naive": NaiveCLV(), "hurdle": HurdleCLV(n_estimators_clf=60, random_state=0),
                  "unsafe": _Recording(), "forest": make_random_forest(20, random_state=0, max_samples=0.5),
                  "hurdle_b": HurdleCLV(n_estimators_clf=30, num_leaves=7, random_state=1)}
    columns = {name: FEATURES for name in candidates} | {"naive": ["window_revenue"], "unsafe": ["window_revenue"]}
    monkeypatch.setenv("LEAD2VALUE_WORKERS", "1")
    _, alone = select_by_time_cv(candidates, df, df[TARGET], 3, columns)
    monkeypatch.setenv("LEAD2VALUE_WORKERS", "2")
    _Recording.threads.clear()
    progress = []
    _, side_by_side = select_by_time_cv(candidates, df, df[TARGET], 3, columns, progress=progress.append)
    pd.testing.assert_frame_equal(alone.drop(columns="seconds"), side_by_side.drop(columns="seconds"), check_exact=True)
    assert list(side_by_side["model"]) == list(candidates)
    assert [line.split(":")[0].strip() for line in progress] == list(candidates), "progress in the candidates' order"
    assert set(_Recording.threads) == {"MainThread"}, "a model that is not thread-safe runs alone, in the caller"


def test_burn_in_side_by_side_gives_the_table_of_one_thread(monkeypatch):
    model = HurdleCLV(n_estimators_clf=30, random_state=0)
    df = censored_frame(1200)
    args = (df[FEATURES], df[TARGET], df["ref_date"], pd.Timestamp("2021-01-01"), [0, 40, 60])
    monkeypatch.setenv("LEAD2VALUE_WORKERS", "1")
    alone = burn_in_cv(model, *args)
    monkeypatch.setenv("LEAD2VALUE_WORKERS", "2")
    side_by_side = burn_in_cv(model, *args)
    assert alone[0] == side_by_side[0]
    pd.testing.assert_frame_equal(alone[1], side_by_side[1], check_exact=True)


def test_tuning_the_enriched_hurdle_returns_the_best_trial_of_its_table():
    df = basket_frame(600)
    params, table = tune_enriched_hurdle(df[ENRICHED], df[TARGET], n_trials=3, n_splits=2)
    assert len(table) == 3 and table.loc[0, "smoothing"] == ENRICHED_DEFAULTS["smoothing"]
    best = table.sort_values("cv_score", ascending=False, kind="stable").iloc[0]
    assert params == {key: best[key] for key in ENRICHED_SPACE}
    with pytest.raises(ValueError, match="n_trials"):
        tune_enriched_hurdle(df[ENRICHED], df[TARGET], n_trials=0)


# --- burn-in ----------------------------------------------------------------------------------


def censored_frame(n: int = 2400, seed: int = 0, censored: bool = True) -> pd.DataFrame:
    """Customers over 200 days; in the first 40, if ``censored``, most are old regulars seen for
    the first time, for whom web activity means the opposite (they come back when they browse little)."""
    rng = np.random.default_rng(seed)
    df = customers_frame(n, seed).drop(columns=TARGET)
    df["ref_date"] = pd.Timestamp("2021-01-01") + pd.to_timedelta(np.sort(rng.random(n)) * 200, "D")
    early = (df["ref_date"] - pd.Timestamp("2021-01-01")).dt.days < 40
    old_regular = early & (rng.random(n) < 0.9) if censored else np.zeros(n, dtype=bool)
    sign = np.where(old_regular, -1.0, 1.0)
    comes_back = rng.random(n) < 1 / (1 + np.exp(-2 * sign * (df["web_actions"] - 3)))
    df[TARGET] = np.where(comes_back, df["window_revenue"] * rng.lognormal(0.5, 0.5, n), 0.0)
    return df


def test_burn_in_is_taken_when_early_customers_mislead_and_not_otherwise():
    model = HurdleCLV(n_estimators_clf=50, random_state=0)
    start = pd.Timestamp("2021-01-01")
    censored = censored_frame()
    days, table = burn_in_cv(model, censored[FEATURES], censored[TARGET], censored["ref_date"], start, [0, 40, 60])
    assert days in (40, 60), table
    assert table.set_index("burn_in_days").loc[days, "folds_better_than_none"] == 3
    assert table.loc[table["burn_in_days"] == 40, "training_customers_excluded"].item() == int(
        ((censored["ref_date"] - start).dt.days < 40).sum())
    clean = censored_frame(censored=False)
    days, table = burn_in_cv(model, clean[FEATURES], clean[TARGET], clean["ref_date"], start, [0, 40, 60])
    assert days == 0 and table["chosen"].sum() == 1


def test_burn_in_needs_sorted_rows_and_enough_late_customers():
    df = censored_frame(400)
    model = HurdleCLV(n_estimators_clf=5)
    start = pd.Timestamp("2021-01-01")
    with pytest.raises(ValueError, match="sorted by reference date"):
        burn_in_cv(model, df[FEATURES][::-1], df[TARGET][::-1], df["ref_date"][::-1], start, [0, 30])
    with pytest.raises(ValueError, match="too few"):
        burn_in_cv(model, df[FEATURES], df[TARGET], df["ref_date"], start, [0, 199])
    with pytest.raises(ValueError, match=">= 0"):
        burn_in_cv(model, df[FEATURES], df[TARGET], df["ref_date"], start, [-5])


# --- the synthetic shop: a self-test, with intervals --------------------------------------------


@pytest.mark.parametrize("seed", [42, 7])
def test_product_signal_hurdle_beats_naive_and_forest_on_the_synthetic_shop(seed):
    """A self-test: the shop was written with the structure the model looks for (half of the
    value revealed after its own 14 days, products hinting at it). On two seeds, the gains over
    the naive rule and the forest hold with their whole 95% interval above 0 on Gini. 8,000
    customers: against the classic regression forest (a third of the features, leaves of 5) the
    gain is smaller than against bagged trees, and 4,000 (2,800 to train) left seed 7's interval
    at [-0.016, +0.053]."""
    sources = synth.generate_clv(8000, seed)
    data, _, _ = build_clv_dataset(*(sources[k] for k in ("customers", "web_actions", "campaigns", "purchases")),
                                   feature_window_days=7, horizon_days=180, purchase_lines=sources["purchase_lines"])
    train, test = time_split(data)
    features = feature_columns(data)
    model = make_enriched_hurdle(random_state=seed).fit(train[[*features, BASKET_COLUMN]], train[TARGET])
    predicted = model.predict(test[[*features, BASKET_COLUMN]])
    forest = make_random_forest(100, random_state=seed).fit(train[features], train[TARGET]).predict(test[features])
    naive = test["window_revenue"].to_numpy()
    for other in (naive, forest):
        assert paired_bootstrap(test[TARGET], predicted, other, normalized_gini, n_boot=300)["low"] > 0


def test_without_any_product_lines_the_product_models_still_fit_and_predict():
    df = basket_frame(300).assign(**{BASKET_COLUMN: "{}"})
    for model in (make_enriched_hurdle({"n_estimators_clf": 10}), ProductSignalRegressor(TweedieCLV(n_estimators=10))):
        predicted = model.fit(df[ENRICHED], df[TARGET]).predict(df[ENRICHED])
        assert np.isfinite(predicted).all() and len(predicted) == len(df)


def test_predict_own_columns_lets_one_frame_serve_models_reading_different_columns():
    df = basket_frame(300)
    forest = make_random_forest(10, random_state=0).fit(df[FEATURES], df[TARGET])
    naive = NaiveCLV().fit(df)
    np.testing.assert_allclose(predict_own_columns(forest, df), forest.predict(df[FEATURES]))
    np.testing.assert_allclose(predict_own_columns(naive, df), df["window_revenue"])
    with pytest.raises(KeyError):
        predict_own_columns(forest, df.drop(columns="noise"))
