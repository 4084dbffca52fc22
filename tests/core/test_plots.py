import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from utils.core import plots


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labels(fig):
    ax = fig.axes[0]
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel()


def assert_labelled(fig):
    assert all(text.strip() for text in labels(fig)), labels(fig)


def leads():
    return pd.DataFrame({"platform": ["a", "a", "b", None, "b", "a"], "y": [1, 0, 1, 0, 0, 1],
                         "date": pd.date_range("2021-07-01", periods=6, freq="5D")})


def test_label_refuses_empty_text():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="xlabel"):
        plots.label(ax, "title", " ", "y")


def test_rate_by_level_shows_rates_in_percent_and_missing_level():
    fig = plots.rate_by_level(leads(), "platform", "y", title="Conversion by platform")
    assert_labelled(fig)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert set(names) == {"a", "b", "(missing)"}
    widths = {name: bar.get_width() for name, bar in zip(names, ax.patches)}
    assert widths["a"] == pytest.approx(200 / 3) and widths["(missing)"] == 0


def test_counts_over_time_with_rate_axis():
    fig = plots.counts_over_time(leads()["date"], "Leads per week", rate=leads()["y"])
    assert_labelled(fig)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "conversion rate (%)"
    # 6 leads 5 days apart from Thu 2021-07-01 to Mon 07-26: the first week is seen 4 days, the last 1 day
    assert fig.axes[0].lines[0].get_ydata() == pytest.approx([1 / 4, 2 / 7, 1 / 7, 1 / 7, 1 / 1])


def test_missing_shares_in_percent_with_groups():
    frame = leads().assign(f1=[None, 1, None, None, None, None], f2=[None, None, 2, None, None, None])
    fig = plots.missing_shares(frame, "Empty cells", groups={"flags": ["f1", "f2"]})
    assert_labelled(fig)
    widths = {t.get_text(): p.get_width() for t, p in zip(fig.axes[0].get_yticklabels(), fig.axes[0].patches)}
    assert widths == pytest.approx({"flags": 400 / 6, "platform": 100 / 6, "y": 0, "date": 0})


def test_log_histogram_counts_zeros_in_legend():
    fig = plots.log_histogram(np.array([0, 0, 1, 10, 100, -5]), "Spend", "spend (GBP, log scale)")
    assert_labelled(fig)
    assert fig.axes[0].get_xscale() == "log"
    assert "50.0%" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_binned_means_and_empty_input():
    x = np.arange(100.0)
    fig = plots.binned_means(x, 2 * x, "Spend vs GDP", "GDP per capita (US$)", "mean spend (GBP)", bins=5)
    assert_labelled(fig)
    means = fig.axes[0].lines[0].get_ydata()
    assert len(means) == 5 and np.all(np.diff(means) > 0)
    tied = plots.binned_means([1, 1, 1, 1, 2, 3], [1, 1, 1, 1, 5, 9], "t", "x", "y", bins=3)
    assert list(tied.axes[0].lines[0].get_ydata()) == [1, 7]
    with pytest.raises(ValueError, match="no rows"):
        plots.binned_means([np.nan], [1.0], "t", "x", "y")


def test_share_bars():
    fig = plots.share_bars({"zero": 0.6, "some": 0.4}, "Customers by spend", "spend after week 4")
    assert_labelled(fig)
    assert [p.get_height() for p in fig.axes[0].patches] == pytest.approx([60, 40])


def test_bars_allow_negative_values():
    fig = plots.bars({"sms": 2.5, "social": -1.0}, "Lift by channel", "channel", "difference (pp)")
    assert_labelled(fig)
    assert [p.get_height() for p in fig.axes[0].patches] == [2.5, -1.0]
