"""The CLV evaluation protocol, in the steps 04_clv_model shows and the real-data tests repeat.

1. **Split by time**: the earliest customers (by reference date) train, the latest test.
2. **Burn-in** (inside training only): customers who arrive within ``burn_in_days`` of the
   first event of the data may be existing customers seen for the first time; whether
   leaving them out of training helps, and how many days, is decided by
   :func:`utils.clv.model.burn_in_cv` (or fixed by the caller), then they are excluded and counted.
3. **Tuning and selection** (inside training only): the hurdle model and the hurdle with the
   product signal are tuned by random search, then every candidate (the naive rule, four
   BG/NBD + Gamma-Gamma variants, a random forest, the two hurdles, a Tweedie model with the
   product signal) is scored on the same time-ordered folds; the best CV score is the model
   registered, the best BG/NBD+GG variant is the field's-standard reference.
4. **Read-out**: every candidate is refitted on the training part and scores the test
   customers once; Gini, Spearman, top-decile capture, decile MAPE and the gains over the
   naive rule and over BG/NBD+GG with paired-bootstrap 95% intervals.

The test customers are touched in step 4 only.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor

from utils.clv.basket import BASKET_COLUMN
from utils.clv.btyd import WINDOW_COLUMNS, BTYDRegressor
from utils.clv.features import TARGET, btyd_history, build_clv_dataset, feature_columns
from utils.clv.metrics import comparison_table
from utils.clv.model import (
    NAIVE_FEATURE,
    HurdleCLV,
    NaiveCLV,
    ProductSignalRegressor,
    TweedieCLV,
    burn_in_cv,
    days_after_start,
    make_enriched_hurdle,
    make_random_forest,
    select_by_time_cv,
    time_split,
    tune_enriched_hurdle,
    tune_hurdle,
)
from utils.core.parallel import ordered_map, thread_safe_runs

# fit_on x spend_orders; "btyd_window_repeat" is the textbook calibration-period fit.
BTYD_VARIANTS = {"btyd_window_repeat": ("window", "repeat"), "btyd_window_all": ("window", "all"),
                 "btyd_history_repeat": ("history", "repeat"), "btyd_history_all": ("history", "all")}
BTYD_TEXTBOOK = "btyd_window_repeat"
REFERENCES = ("naive", "btyd")  # the labels of the gains in the read-out


def clv_tables(sources: dict[str, pd.DataFrame], feature_window_days: int,
               horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """What 02_cleaning makes of the sources: the training table, its history (indexed by customer_id)
    and the report (with ``data_start``)."""
    train, _, report = build_clv_dataset(
        sources["customers"], sources["web_actions"], sources["campaigns"], sources["purchases"],
        feature_window_days, horizon_days, purchase_lines=sources.get("purchase_lines"))
    history = btyd_history(train, sources["purchases"], feature_window_days, horizon_days).set_index("customer_id")
    return train, history, report


def model_columns(customers: pd.DataFrame) -> dict[str, list[str]]:
    """Which columns each kind of candidate reads: the numeric features, those plus the basket
    text (models with the product signal), the BG/NBD window summary, the naive rule's one."""
    features = feature_columns(customers)
    if BASKET_COLUMN not in customers.columns:
        raise ValueError(f"the CLV table has no '{BASKET_COLUMN}' column: build it with utils.clv.features")
    return {"features": features, "enriched": [*features, BASKET_COLUMN],
            "btyd": ["customer_id", *WINDOW_COLUMNS], "naive": [NAIVE_FEATURE]}


def exclude_burn_in(train: pd.DataFrame, data_start: pd.Timestamp, days: int) -> tuple[pd.DataFrame, int]:
    """The training customers whose reference date is at least ``days`` after the data start, and how many
    were left out."""
    keep = days_after_start(train["ref_date"], data_start) >= days
    return train[keep].reset_index(drop=True), int((~keep).sum())


def decide_burn_in(train: pd.DataFrame, data_start: pd.Timestamp, candidates: list[int], n_splits: int,
                   random_state: int) -> tuple[int, pd.DataFrame]:
    """:func:`burn_in_cv` with the hurdle model and the product signal at its default settings."""
    columns = model_columns(train)["enriched"]
    return burn_in_cv(make_enriched_hurdle(None, random_state), train[columns], train[TARGET].to_numpy(),
                      train["ref_date"], data_start, candidates, n_splits)


def candidates(history: pd.DataFrame, horizon_days: int, hurdle_params: dict, enriched_params: dict,
               rf_n_estimators: int, random_state: int, columns: dict[str, list[str]],
               rf_max_samples: float | None = None) -> tuple[dict, dict]:
    """Every candidate model, and the columns each reads (``rf_max_samples``: see
    :func:`utils.clv.model.make_random_forest`)."""
    # "baseline" (everyone gets the training mean) ranks no one: the floor of every table.
    models: dict = {"baseline": DummyRegressor(strategy="mean"), "naive": NaiveCLV()}
    reads: dict = {"baseline": columns["naive"], "naive": columns["naive"]}
    for name, (fit_on, spend) in BTYD_VARIANTS.items():
        models[name] = BTYDRegressor(horizon_days=horizon_days, fit_on=fit_on, spend_orders=spend, history=history)
        reads[name] = columns["btyd"]
    models["rf"] = make_random_forest(rf_n_estimators, random_state=random_state, max_samples=rf_max_samples)
    models["hurdle"] = HurdleCLV(random_state=random_state, **hurdle_params)
    reads["rf"] = reads["hurdle"] = columns["features"]
    models["tweedie_products"] = ProductSignalRegressor(TweedieCLV(random_state=random_state),
                                                        random_state=random_state)
    models["hurdle_products"] = make_enriched_hurdle(enriched_params, random_state)
    reads["tweedie_products"] = reads["hurdle_products"] = columns["enriched"]
    return models, reads


def btyd_reference(selection: pd.DataFrame) -> str:
    """The BG/NBD+GG variant with the best CV score: the field's standard, at its best on this data."""
    rows = selection[selection["model"].isin(BTYD_VARIANTS)]
    return str(rows.sort_values("cv_score", ascending=False, kind="stable").iloc[0]["model"])


def roles(names, registered: str, reference: str) -> list[str]:
    """The role column of the selection and test tables: "registered", "BG/NBD+GG reference" or ""."""
    return ["registered" if name == registered else "BG/NBD+GG reference" if name == reference else ""
            for name in names]


def fit_all(models: dict, reads: dict, train: pd.DataFrame) -> dict:
    """Every candidate refitted on the whole training part (side by side where thread-safe: the same fits)."""
    y = train[TARGET].to_numpy()
    fitted = {}
    for names, workers in thread_safe_runs(models):
        fitted.update(zip(names, ordered_map(lambda name: models[name].fit(train[reads[name]], y), names, workers)))
    return {name: fitted[name] for name in models}


def read_out(fitted: dict, reads: dict, test: pd.DataFrame, reference: str, n_boot: int,
             random_state: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The test table (:func:`utils.clv.metrics.comparison_table`) and every model's test predictions."""
    predictions = {name: np.asarray(model.predict(test[reads[name]]), dtype="float64")
                   for name, model in fitted.items()}
    table = comparison_table(test[TARGET].to_numpy(), predictions, {"naive": "naive", "btyd": reference},
                             n_boot=n_boot, random_state=random_state)
    return table, predictions


@dataclass
class ClvEvaluation:
    """Everything one run of the protocol decided and measured."""

    burn_in_days: int
    burn_in_table: pd.DataFrame | None
    burn_in_excluded: int
    train: pd.DataFrame
    test: pd.DataFrame
    hurdle_tuning: pd.DataFrame
    enriched_tuning: pd.DataFrame
    selection: pd.DataFrame
    registered: str
    reference: str
    results: pd.DataFrame
    predictions: dict[str, np.ndarray]
    fitted: dict = field(repr=False)
    reads: dict = field(repr=False)


def evaluate(customers: pd.DataFrame, history: pd.DataFrame, horizon_days: int, data_start: pd.Timestamp,
             test_share: float = 0.3, tuning_trials: int = 20, tuning_folds: int = 3, rf_n_estimators: int = 300,
             burn_in_days: int = -1, burn_in_candidates: tuple[int, ...] = (0, 14, 28, 56), n_boot: int = 1000,
             random_state: int = 42, progress: Callable[[str], None] | None = None,
             rf_max_samples: float | None = None) -> ClvEvaluation:
    """The whole protocol on one CLV table (``clv_train``) and its training history (``clv_history``).

    ``burn_in_days`` = -1 lets time-ordered CV inside training choose among ``burn_in_candidates``.
    """
    say = progress or (lambda message: None)
    columns = model_columns(customers)
    train, test = time_split(customers, test_share=test_share)
    table = None
    if burn_in_days < 0:
        say("burn-in: time-ordered CV inside the training customers")
        burn_in_days, table = decide_burn_in(train, data_start, list(burn_in_candidates), tuning_folds, random_state)
    train, excluded = exclude_burn_in(train, data_start, burn_in_days)
    say(f"burn-in {burn_in_days} days: {excluded:,} training customers left out, {len(train):,} kept")
    y = train[TARGET].to_numpy()
    say("tuning the hurdle model")
    hurdle_params, hurdle_tuning = tune_hurdle(train[columns["features"]], y, tuning_trials, tuning_folds,
                                               random_state, progress)
    say("tuning the hurdle model with the product signal")
    enriched_params, enriched_tuning = tune_enriched_hurdle(train[columns["enriched"]], y, tuning_trials,
                                                            tuning_folds, random_state, progress)
    models, reads = candidates(history, horizon_days, hurdle_params, enriched_params, rf_n_estimators,
                               random_state, columns, rf_max_samples)
    say("selection: every candidate on the same folds")
    registered, selection = select_by_time_cv(models, train, y, tuning_folds, reads, progress)
    reference = btyd_reference(selection)
    selection.insert(1, "role", roles(selection["model"], registered, reference))
    say("refit on the training part, read-out on the test customers")
    fitted = fit_all(models, reads, train)
    results, predictions = read_out(fitted, reads, test, reference, n_boot, random_state)
    results.insert(1, "role", roles(results["model"], registered, reference))
    return ClvEvaluation(burn_in_days, table, excluded, train, test, hurdle_tuning, enriched_tuning, selection,
                         registered, reference, results, predictions, fitted, reads)
