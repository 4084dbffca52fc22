"""The protocol of 04_clv_model: every decision is taken inside the training customers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.clv import protocol, synth
from utils.clv.basket import BASKET_COLUMN
from utils.clv.btyd import WINDOW_COLUMNS
from utils.clv.features import TARGET


@pytest.fixture(scope="module")
def shop():
    sources = synth.generate_clv(1500, 3)
    train, history, report = protocol.clv_tables(sources, 14, 150)
    return train, history, pd.Timestamp(report["data_start"])


@pytest.fixture(scope="module")
def first(shop):
    return run(*shop, burn_in_days=-1)


def run(train, history, start, **overrides):
    settings = {"tuning_trials": 2, "tuning_folds": 2, "rf_n_estimators": 20, "n_boot": 20, "random_state": 0,
                "burn_in_candidates": (0, 28)}
    return protocol.evaluate(train, history, 150, start, **(settings | overrides))


def test_tables_and_columns_of_the_route(shop):
    train, history, start = shop
    assert history.index.name == "customer_id" and set(history.columns) == set(WINDOW_COLUMNS)
    columns = protocol.model_columns(train)
    assert columns["enriched"] == [*columns["features"], BASKET_COLUMN]
    assert TARGET not in columns["features"] and "customer_id" not in columns["features"]
    with pytest.raises(ValueError, match=BASKET_COLUMN):
        protocol.model_columns(train.drop(columns=BASKET_COLUMN))
    kept, excluded = protocol.exclude_burn_in(train, start, 28)
    assert excluded == int(((train["ref_date"] - start).dt.days < 28).sum()) and len(kept) + excluded == len(train)


def test_every_candidate_fits_and_names_what_it_reads(shop):
    train, history, _ = shop
    columns = protocol.model_columns(train)
    models, reads = protocol.candidates(history, 150, {}, {"n_estimators_clf": 10}, 10, 0, columns)
    assert {"baseline", "naive", "rf", "hurdle", "hurdle_products", "tweedie_products", *protocol.BTYD_VARIANTS} == set(models)
    fitted = protocol.fit_all(models, reads, train)
    for name, model in fitted.items():
        predicted = model.predict(train[reads[name]])
        assert np.isfinite(predicted).all() and len(predicted) == len(train), name
        if name != "baseline":  # what the gate and scoring pass the model
            assert set(model.feature_names_in_) <= set(reads[name]), name


def test_refitting_side_by_side_gives_the_models_of_one_thread(shop, monkeypatch):
    train, history, _ = shop
    columns = protocol.model_columns(train)
    predictions = []
    for workers in ("1", "2"):
        monkeypatch.setenv("LEAD2VALUE_WORKERS", workers)
        models, reads = protocol.candidates(history, 150, {}, {"n_estimators_clf": 10}, 10, 0, columns, 0.5)
        fitted = protocol.fit_all(models, reads, train)
        assert list(fitted) == list(models)
        predictions.append({name: model.predict(train[reads[name]]) for name, model in fitted.items()})
    for name, alone in predictions[0].items():
        assert np.array_equal(alone, predictions[1][name]), name


def test_the_test_customers_decide_nothing(shop, first):
    """Scrambling the test customers' outcomes changes the read-out and nothing before it."""
    train, history, start = shop
    _, test = protocol.time_split(train)
    scrambled = train.copy()
    is_test = scrambled["customer_id"].isin(test["customer_id"])
    scrambled.loc[is_test, TARGET] = np.random.default_rng(0).permutation(scrambled.loc[is_test, TARGET].to_numpy()) * 3
    second = run(scrambled, history, start, burn_in_days=-1)
    assert (first.registered, first.reference, first.burn_in_days) == (second.registered, second.reference,
                                                                        second.burn_in_days)
    for a, b in ((first.selection, second.selection), (first.enriched_tuning, second.enriched_tuning),
                 (first.hurdle_tuning, second.hurdle_tuning), (first.burn_in_table, second.burn_in_table)):
        pd.testing.assert_frame_equal(a.drop(columns="seconds", errors="ignore"), b.drop(columns="seconds", errors="ignore"))
    for name in first.predictions:
        np.testing.assert_allclose(first.predictions[name], second.predictions[name], err_msg=name)
    assert not np.allclose(first.results["gini"], second.results["gini"])


def test_read_out_roles_and_references(shop, first):
    train, _, _ = shop
    result = first
    assert result.burn_in_table is not None and result.burn_in_days in (0, 28)
    roles = result.results.set_index("model")["role"]
    assert roles[result.registered] == "registered" and roles[result.reference] in ("BG/NBD+GG reference", "registered")
    assert result.reference == protocol.btyd_reference(result.selection)
    btyd_scores = result.selection.set_index("model").loc[list(protocol.BTYD_VARIANTS), "cv_score"]
    assert btyd_scores[result.reference] == btyd_scores.max()
    row = result.results.set_index("model").loc["naive"]
    assert row["gini_gain_vs_naive"] == row["gini_gain_vs_naive_low"] == 0.0
    assert len(result.test) == round(0.3 * len(train))
    assert len(result.train) + result.burn_in_excluded == len(train) - len(result.test)


def test_no_row_after_a_window_reaches_a_feature_the_history_of_training_or_a_test_prediction():
    """Every purchase and line of the test customers at or after their window's end is made absurd:
    their targets change; every feature, the training customers' history and the test predictions
    of a model with the product signal do not."""
    sources = synth.generate_clv(1200, 11)
    train, history, _ = protocol.clv_tables(sources, 14, 120)
    fit, test = protocol.time_split(train)
    refs = train.set_index("customer_id")["ref_date"]
    scrambled = dict(sources)
    for name in ("purchases", "purchase_lines"):
        frame = sources[name].copy()
        late = frame["customer_id"].isin(test["customer_id"]) & (
            frame["timestamp"] >= frame["customer_id"].map(refs) + pd.Timedelta(days=14))
        if name == "purchases":
            frame.loc[late, "amount"] = frame.loc[late, "amount"] * 1000 + 12_345.0
        else:
            frame.loc[late, ["quantity", "unit_price", "product"]] = [777.0, 99.0, "P000"]
        scrambled[name] = frame
    train2, history2, _ = protocol.clv_tables(scrambled, 14, 120)
    fit2, test2 = protocol.time_split(train2)
    features = [c for c in train.columns if c != TARGET]
    pd.testing.assert_frame_equal(train[features], train2[features])
    assert not np.allclose(test[TARGET], test2[TARGET])
    pd.testing.assert_frame_equal(history.loc[fit["customer_id"]], history2.loc[fit2["customer_id"]])
    columns = protocol.model_columns(train)["enriched"]
    model, _ = protocol.candidates(history, 120, {}, {"n_estimators_clf": 20}, 10, 0,
                                   protocol.model_columns(train))
    first = model["hurdle_products"].fit(fit[columns], fit[TARGET]).predict(test[columns])
    model2, _ = protocol.candidates(history2, 120, {}, {"n_estimators_clf": 20}, 10, 0,
                                    protocol.model_columns(train2))
    second = model2["hurdle_products"].fit(fit2[columns], fit2[TARGET]).predict(test2[columns])
    np.testing.assert_allclose(first, second)
