"""CLV metrics against answers worked out by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.clv.metrics import (
    bootstrap_scores,
    clv_metrics,
    comparison_keys,
    comparison_table,
    decile_mape,
    decile_table,
    describe_gain,
    gini,
    mae,
    metrics_table,
    normalized_gini,
    paired_bootstrap,
    plot_deciles,
    plot_gains,
    readable_table,
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


# --- decile MAPE and paired-bootstrap gains -----------------------------------------------------


def test_decile_mape_is_zero_when_calibrated_and_matches_a_hand_count():
    actual = np.arange(1.0, 21.0)
    assert decile_mape(actual, actual) == 0.0
    assert decile_mape(actual, 2 * actual) == pytest.approx(1.0)  # every decile's mean off by 100%
    # A constant prediction at the mean: the deciles (by position) hold pairs of actual values.
    pairs = actual.reshape(10, 2).mean(axis=1)
    assert decile_mape(actual, np.full(20, actual.mean())) == pytest.approx(np.mean(np.abs(actual.mean() - pairs) / pairs))


def test_decile_mape_edge_cases():
    assert decile_mape(np.r_[np.zeros(10), np.ones(10)], np.arange(20.0)) == np.inf  # a decile with mean 0
    with pytest.raises(ValueError, match="10 groups"):
        decile_mape(np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        decile_mape(np.r_[np.ones(19), np.nan], np.ones(20))


def test_paired_bootstrap_of_identical_models_is_exactly_zero():
    rng = np.random.default_rng(0)
    actual, predicted = rng.gamma(1, 10, 300), rng.gamma(1, 10, 300)
    boot = paired_bootstrap(actual, predicted, predicted, normalized_gini, n_boot=200)
    assert boot["diff"] == boot["low"] == boot["high"] == 0.0


def test_paired_bootstrap_sees_a_real_gain_and_brackets_the_point_estimate():
    rng = np.random.default_rng(1)
    actual = rng.gamma(0.7, 100, 1500)
    good, poor = actual + rng.normal(0, 50, 1500), actual + rng.normal(0, 400, 1500)
    boot = paired_bootstrap(actual, good, poor, spearman, n_boot=300, random_state=2)
    assert boot["low"] > 0.1 and boot["low"] <= boot["diff"] <= boot["high"]
    reverse = paired_bootstrap(actual, poor, good, spearman, n_boot=300, random_state=2)
    assert reverse["diff"] == pytest.approx(-boot["diff"]) and reverse["high"] < -0.1


def test_paired_bootstrap_interval_is_tighter_than_the_noise_between_two_close_models():
    """Pairing is the point: two near-identical models differ little on every resample."""
    rng = np.random.default_rng(5)
    actual = rng.gamma(0.7, 100, 800)
    a = actual + rng.normal(0, 200, 800)
    b = a + rng.normal(0, 1, 800)
    boot = paired_bootstrap(actual, a, b, normalized_gini, n_boot=200)
    assert boot["high"] - boot["low"] < 0.01


def test_paired_bootstrap_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap(np.ones(3), np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(np.ones(3), np.ones(3), np.ones(3), level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap(np.ones(3), np.ones(3), np.ones(3), n_boot=0)
    with pytest.raises(ValueError, match="undefined"):
        paired_bootstrap(np.zeros(30), np.arange(30.0), np.ones(30), normalized_gini, n_boot=5)


def comparison():
    rng = np.random.default_rng(3)
    actual = rng.gamma(0.7, 100, 400)
    predictions = {"good": actual + rng.normal(0, 30, 400), "noise": rng.normal(size=400),
                   "close": actual + rng.normal(0, 31, 400)}
    return comparison_table(actual, predictions, {"ref": "noise", "near": "close"}, n_boot=50)


def test_comparison_table_has_every_metric_and_gain_with_its_interval():
    table = comparison()
    assert list(table["model"]) == ["good", "noise", "close"]
    for column in ("gini", "spearman", "top_decile_capture", "decile_mape", "rmse", "mae", "gini_gain_vs_ref",
                   "gini_gain_vs_ref_low", "spearman_gain_vs_near_high"):
        assert column in table.columns
    assert table.loc[1, ["gini_gain_vs_ref", "gini_gain_vs_ref_low", "gini_gain_vs_ref_high"]].eq(0).all()
    assert table.loc[0, "gini_gain_vs_ref_low"] > 0.2
    with pytest.raises(ValueError, match="no predictions"):
        comparison_table(np.ones(20), {"a": np.arange(20.0)}, {"ref": "missing"})


def test_comparison_keys_and_readable_table():
    table = comparison()
    keys = comparison_keys(table)
    assert keys["clv.gini_gain_vs_ref.good"] == pytest.approx(table.loc[0, "gini_gain_vs_ref"])
    assert {"clv.gini_test.good", "clv.decile_mape_test.noise", "clv.spearman_gain_vs_near_low.good"} <= set(keys)
    infinite = table.assign(decile_mape=[np.inf, 1.0, 1.0])
    assert "clv.decile_mape_test.good" not in comparison_keys(infinite)
    text = readable_table(table, ("ref",))
    assert text.loc[0, "dGini vs ref"].startswith("+0.") and "[" in text.loc[0, "dGini vs ref"]


def test_describe_gain_says_real_only_when_both_intervals_are_above_zero():
    row = {"model": "m", "gini_gain_vs_n": 0.02, "spearman_gain_vs_n": 0.01}
    def words(gini_low, spearman_low, highs=(0.05, 0.05)):
        table = pd.DataFrame([{**row, "gini_gain_vs_n_low": gini_low, "gini_gain_vs_n_high": highs[0],
                               "spearman_gain_vs_n_low": spearman_low, "spearman_gain_vs_n_high": highs[1]}])
        return describe_gain(table, "m", "n", "naive")
    assert "a real gain" in words(0.001, 0.002)
    assert "no evidence of a gain" in words(-0.01, 0.002)
    assert "worse" in words(-0.05, -0.04, highs=(-0.01, 0.02))
    assert "Gini +0.0200 [+0.0010, +0.0500]" in words(0.001, 0.002)


def test_gain_plot_has_titles_labels_and_one_row_per_model():
    table = comparison()
    fig = plot_gains(table, {"ref": "noise", "near": "close"}, note="a self-test")
    assert len(fig.axes) == 2 and "self-test" in fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel()
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["good", "noise", "close"]
    assert fig.axes[0].get_ylabel() == "model"


def test_the_bootstrap_from_draw_counts_scores_each_resample_as_gini_and_spearman_do_ties_included():
    rng = np.random.default_rng(11)
    n = 300
    actual = np.round(rng.gamma(0.5, 100, n) * (rng.random(n) < 0.4), -1)  # many zeros and ties
    predictions = {"noisy": actual + rng.normal(0, 80, n), "coarse": np.round(actual + rng.normal(0, 50, n), -2),
                   "flat": np.full(n, 3.0)}
    scores = bootstrap_scores(actual, predictions, n_boot=40, random_state=5)
    draws = np.random.default_rng(5)
    kept = 0
    for _ in range(40):
        rows = draws.integers(0, n, n)
        sample = actual[rows]
        if sample.sum() == 0 or np.all(sample == sample[0]):
            continue
        for name, predicted in predictions.items():
            assert scores["gini"].loc[kept, name] == pytest.approx(normalized_gini(sample, predicted[rows]), abs=1e-12)
            assert scores["spearman"].loc[kept, name] == pytest.approx(spearman(sample, predicted[rows]), abs=1e-12)
        kept += 1
    assert kept == len(scores["gini"]) == 40


def test_the_joint_bootstrap_gives_each_pair_exactly_its_paired_bootstrap():
    rng = np.random.default_rng(8)
    actual = rng.gamma(0.5, 100, 500) * (rng.random(500) < 0.5)
    predictions = {"a": actual + rng.normal(0, 80, 500), "b": actual + rng.normal(0, 120, 500),
                   "flat": np.ones(500)}
    table = comparison_table(actual, predictions, {"ref": "b"}, n_boot=200, random_state=4).set_index("model")
    for name in ("a", "flat"):
        for metric, function in (("gini", normalized_gini), ("spearman", spearman)):
            pair = paired_bootstrap(actual, predictions[name], predictions["b"], function, n_boot=200, random_state=4)
            assert table.loc[name, f"{metric}_gain_vs_ref"] == pytest.approx(pair["diff"])
            assert table.loc[name, f"{metric}_gain_vs_ref_low"] == pytest.approx(pair["low"], abs=1e-12)
            assert table.loc[name, f"{metric}_gain_vs_ref_high"] == pytest.approx(pair["high"], abs=1e-12)
    scores = bootstrap_scores(actual, predictions, n_boot=30)
    assert list(scores) == ["gini", "spearman"] and scores["gini"].shape == (30, 3)
    assert (scores["spearman"]["flat"] == 0).all()
    with pytest.raises(ValueError, match="nothing could be ranked"):
        bootstrap_scores(np.zeros(40), {"a": np.arange(40.0)}, n_boot=3)
