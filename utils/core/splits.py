"""The one time split of the project: the latest rows are the holdout, as in use.

A model is always used on rows that come after the ones it learned from, so every
holdout (leads, customers, the "new leads" carved from a user's file) is the latest
``test_share`` of the rows by a date column, never a random sample.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def time_split(df: pd.DataFrame, date_column: str, test_share: float,
               tie_breakers: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the earliest ``round(len * (1 - test_share))`` rows by ``date_column``, the rest), re-indexed.

    Rows are ordered by the date, then by ``tie_breakers`` (e.g. the customer id), with a
    stable sort: the split never depends on the order the rows arrived in.
    """
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be between 0 and 1, got {test_share}")
    for column in (date_column, *tie_breakers):
        if column not in df.columns:
            raise ValueError(f"time_split: no column '{column}'")
    ordered = df.sort_values([date_column, *tie_breakers], kind="stable").reset_index(drop=True)
    cut = round(len(ordered) * (1 - test_share))
    if cut == 0 or cut == len(ordered):
        raise ValueError(f"time_split: {len(ordered)} rows leave an empty train or test part "
                         f"(test_share {test_share})")
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
