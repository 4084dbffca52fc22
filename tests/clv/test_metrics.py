"""CLV metrics against answers worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from utils.clv.metrics import (
    clv_metrics,
    decile_table,
    gini,
    mae,
    metrics_table,
    normalized_gini,
    plot_deciles,
    rmse,
    spearman,
    top_decile_capture,
    tracking_keys,
)

ACTUAL = np.array([0.0, 5.0, 0.0, 40.0, 1.0, 0.0, 12.0, 3.0, 0.0, 100.0])


def test_perfect_ranking_scores_one_and_reversed_minus_one():
    assert normalized_gini(ACTUAL, ACTUAL) == pytest.approx(1.0)
    assert normalized_gini(ACTUAL, -ACTUAL) == pytest.approx(-1.0)
    assert spearman(ACTUAL, ACTUAL) == pytest.approx(1.0)
    assert spearman(ACTUAL, -ACTUAL) == pytest.approx(-1.0)


def test_constant_prediction_ranks_no_one():
    flat = np.full(len(ACTUAL), 7.0)
    assert normalized_gini(ACTUAL, flat) == pytest.approx(0.0, abs=1e-12)
    assert spearman(ACTUAL, flat) == 0.0
    assert top_decile_capture(ACTUAL, flat) == pytest.approx(0.1)


def test_gini_by_hand():
    # Ordered by prediction the actuals are [0, 3, 1]: Lorenz shares 0, .75, 1 -> 1.75/3 - 4/6.
    assert gini([0, 3, 1], [3, 2, 1]) == pytest.approx(1.75 / 3 - 4 / 6)
    assert gini([0, 3, 1], [0, 3, 1]) == pytest.approx(2.75 / 3 - 4 / 6)
    assert normalized_gini([0, 3, 1], [3, 2, 1]) == pytest.approx(-1 / 3)


def test_tied_predictions_count_as_a_random_order_within_the_tie():
    # Orders [3,1,0] and [1,3,0] are equally likely: Gini 0.25 and 1/12 -> mean 1/6.
    assert gini([3, 1, 0], [1, 1, 0]) == pytest.approx(1 / 6)
    assert gini([1, 3, 0], [1, 1, 0]) == pytest.approx(1 / 6)  # row order does not matter


def test_ranking_metrics_ignore_the_scale_of_the_prediction():
    predicted = np.array([1, 4, 2, 9, 3, 0.5, 8, 5, 6, 7], dtype=float)
    assert normalized_gini(ACTUAL, predicted) == pytest.approx(normalized_gini(ACTUAL, np.exp(predicted)))
    assert spearman(ACTUAL, predicted) == pytest.approx(spearman(ACTUAL, 3 * predicted + 1))


def test_top_decile_capture_by_hand():
    # Top 10% of 10 customers = 1 customer: the prediction puts customer 3 (actual 40) first.
    predicted = np.arange(10.0)
    predicted[3] = 99
    assert top_decile_capture(ACTUAL, predicted) == pytest.approx(40 / ACTUAL.sum())
    assert top_decile_capture(ACTUAL, ACTUAL) == pytest.approx(100 / ACTUAL.sum())


def test_rmse_and_mae_by_hand():
    assert rmse([0, 0, 0, 0], [1, -1, 1, -1]) == pytest.approx(1.0)
    assert mae([0, 2], [1, 5]) == pytest.approx(2.0)
    assert set(clv_metrics(ACTUAL, ACTUAL)) == {"gini", "spearman", "top_decile_capture", "rmse", "mae"}


def test_decile_table_means_by_predicted_decile():
    actual = np.arange(20.0)
    table = decile_table(actual, actual)
    assert list(table["decile"]) == list(range(1, 11))
    assert (table["customers"] == 2).all()
    assert table.loc[0, "mean_actual"] == pytest.approx(18.5)  # decile 1 = the highest predictions
    assert table["share_of_actual"].sum() == pytest.approx(1.0)
    flat = decile_table(actual, np.zeros(20))
    assert (flat["customers"] == 2).all() and (flat["mean_predicted"] == 0).all()


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="actual has 2 values, predicted 3"):
        normalized_gini([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        spearman([1, 2, 3], [1, np.nan, 3])
    with pytest.raises(ValueError, match="sum to 0"):
        gini([0, 0, 0], [1, 2, 3])
    with pytest.raises(ValueError, match="cannot fill"):
        decile_table([1, 2, 3], [1, 2, 3])


def test_metrics_table_and_tracking_keys():
    table = metrics_table(ACTUAL, {"perfect": ACTUAL, "flat": np.ones(10)})
    assert list(table["model"]) == ["perfect", "flat"]
    keys = tracking_keys(table)
    assert keys["clv.gini_test.perfect"] == pytest.approx(1.0)
    assert keys["clv.top_decile_capture.flat"] == pytest.approx(0.1)
    assert {"clv.spearman_test.flat", "clv.rmse_test.flat", "clv.mae_test.perfect"} <= set(keys)


def test_decile_plot_draws_one_line_per_model_plus_the_prediction():
    actual = np.arange(30.0)
    tables = {"good": decile_table(actual, actual), "flat": decile_table(actual, np.zeros(30))}
    ax = plot_deciles(tables, predicted_of="good").axes[0]
    assert len(ax.get_lines()) == 3
    assert ax.get_title() and "decile" in ax.get_xlabel() and "currency" in ax.get_ylabel()
