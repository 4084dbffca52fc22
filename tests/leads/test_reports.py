"""Business read-outs: known answers on tiny score vectors, and bad input."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from utils.leads import reports as lr

matplotlib.use("Agg")

# 10 leads, scores 0.95 .. 0.05; the top 3 and the 6th complete.
SCORES = np.round(np.linspace(0.95, 0.05, 10), 2)
Y = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0])


def test_deciles_put_highest_scores_first_and_split_ties_evenly():
    assert lr.score_deciles(SCORES, 10).tolist() == list(range(1, 11))
    tied = lr.score_deciles(np.full(20, 0.5), 10)
    assert np.bincount(tied)[1:].tolist() == [2] * 10


def test_gains_table_known_answer():
    table = lr.gains_table(Y, SCORES, n_bins=5)
    assert table["leads"].tolist() == [2] * 5
    assert table["completions"].tolist() == [2, 1, 1, 0, 0]
    assert table["cum_gain"].tolist() == pytest.approx([0.5, 0.75, 1.0, 1.0, 1.0])
    assert table["lift"].iloc[0] == pytest.approx(1.0 / 0.4)
    assert table["cum_lift"].iloc[-1] == pytest.approx(1.0)


def test_gains_of_a_useless_score_are_flat():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20_000)
    table = lr.gains_table(y, rng.random(20_000))
    assert table["lift"].between(0.9, 1.1).all()


def test_calibration_table_compares_mean_score_with_observed_rate():
    table = lr.calibration_table(Y, SCORES, n_bins=2)
    # bin 1 = the lower half of scores (0.05..0.45: one completion out of five).
    assert table["observed_rate"].tolist() == pytest.approx([0.2, 0.6])
    assert table["mean_score"].tolist() == pytest.approx([0.25, 0.75])


def test_junk_threshold_table_counts_dropped_leads_and_lost_completions():
    table = lr.junk_threshold_table(Y, SCORES, thresholds=[0.3, 0.6])
    row = table.set_index("threshold").loc[0.3]
    assert row["share_leads_dropped"] == pytest.approx(0.3)
    assert row["share_completions_lost"] == pytest.approx(0.0)
    row = table.set_index("threshold").loc[0.6]
    assert row["share_leads_dropped"] == pytest.approx(0.6)
    assert row["share_completions_lost"] == pytest.approx(0.25)


def test_capacity_threshold_calls_the_top_share():
    result = lr.capacity_threshold(Y, SCORES, sales_capacity=0.3)
    assert result["threshold"] == pytest.approx(0.75)
    assert result["share_called"] == pytest.approx(0.3)
    assert result["share_completions_reached"] == pytest.approx(0.75)
    assert result["lift"] == pytest.approx(1.0 / 0.4)
    with pytest.raises(ValueError, match="sales_capacity"):
        lr.capacity_threshold(Y, SCORES, sales_capacity=0)


def test_worst_segments_lists_low_converting_levels_first_and_skips_small_ones():
    frame = pd.DataFrame({"first_utm_source_c": ["a"] * 4 + ["b"] * 5 + ["c"]})
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 1])
    table = lr.worst_segments(frame, y, np.linspace(0.1, 0.9, 10), "first_utm_source_c", min_leads=2)
    assert table["level"].tolist() == ["b", "a"]
    assert table["l2ac_rate"].tolist() == pytest.approx([0.2, 0.75])
    with pytest.raises(KeyError, match="nope"):
        lr.worst_segments(frame, y, np.linspace(0.1, 0.9, 10), "nope")


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same length"):
        lr.gains_table(Y[:5], SCORES)
    with pytest.raises(ValueError, match="0/1"):
        lr.gains_table(Y * 2, SCORES)
    with pytest.raises(ValueError, match="no leads"):
        lr.calibration_table([], [])


def test_plots_have_titles_and_axis_labels():
    gains = lr.gains_table(Y, SCORES, n_bins=5)
    imp = pd.DataFrame({"feature": ["a", "b"], "auc_drop": [0.1, 0.02], "auc_drop_std": [0.01, 0.01]})
    worst = lr.worst_segments(pd.DataFrame({"first_platform_c": ["x"] * 5 + ["y"] * 5}), Y, SCORES, "first_platform_c", 1)
    figures = [lr.plot_gains(gains), lr.plot_lift_and_l2ac(gains), lr.plot_calibration(lr.calibration_table(Y, SCORES, 5)),
               lr.plot_junk_tradeoff(lr.junk_threshold_table(Y, SCORES), lr.capacity_threshold(Y, SCORES, 0.5)),
               lr.plot_importance(imp), lr.plot_worst_segments(worst, Y.mean())]
    for fig in figures:
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        matplotlib.pyplot.close(fig)
