import pandas as pd
import pytest

from utils.core.splits import time_split


def test_latest_rows_are_the_holdout_whatever_the_input_order():
    frame = pd.DataFrame({"day": pd.date_range("2021-07-01", periods=20, freq="D")[::-1], "y": [0, 1] * 10})
    earlier, latest = time_split(frame, "day", test_share=0.1)
    assert len(earlier) == 18 and len(latest) == 2
    assert latest["day"].min() > earlier["day"].max()
    assert list(earlier.index) == list(range(18)) and list(latest.index) == [0, 1]


def test_ties_are_broken_by_the_given_columns():
    frame = pd.DataFrame({"day": ["2021-01-01"] * 4, "customer_id": [4, 2, 3, 1]})
    earlier, latest = time_split(frame, "day", 0.5, tie_breakers=("customer_id",))
    assert earlier["customer_id"].tolist() == [1, 2] and latest["customer_id"].tolist() == [3, 4]


def test_train_size_is_the_rounded_share():
    frame = pd.DataFrame({"day": range(5974)})
    assert len(time_split(frame, "day", 1 - 0.8)[0]) == round(5974 * 0.8)


@pytest.mark.parametrize("share", [0, 1, 1.5, -0.1])
def test_shares_outside_zero_one_are_refused(share):
    with pytest.raises(ValueError, match="between 0 and 1"):
        time_split(pd.DataFrame({"day": range(10)}), "day", share)


def test_empty_parts_and_missing_columns_are_refused():
    with pytest.raises(ValueError, match="empty train or test part"):
        time_split(pd.DataFrame({"day": range(3)}), "day", 0.1)
    with pytest.raises(ValueError, match="no column 'when'"):
        time_split(pd.DataFrame({"day": range(3)}), "when", 0.5)
