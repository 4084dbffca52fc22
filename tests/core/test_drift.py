"""Drift references: bins of numeric and text columns, shares, the unseen bin."""
import json

import numpy as np
import pandas as pd
import pytest

from utils.core import drift


def test_numeric_bins_at_training_quantiles_with_a_missing_bin():
    values = pd.Series([1.0, 2.0, 3.0, 4.0, np.nan])
    spec = drift.column_reference(values, n_bins=2)
    assert spec["kind"] == "numeric" and spec["edges"] == [2.0]
    assert spec["labels"] == ["<= 2", "> 2", "missing"]
    assert spec["shares"] == pytest.approx([0.4, 0.4, 0.2])
    np.testing.assert_array_equal(drift.bin_counts(spec, pd.Series([0.0, 2.0, 2.5, None])), [2, 1, 1])


def test_few_distinct_values_get_one_bin_each_and_an_empty_column_one_bin():
    assert list(drift.quantile_edges(pd.Series([1.0, 1.0, 2.0, 3.0] * 10))) == [1.0, 2.0, 3.0]
    spec = drift.column_reference(pd.Series([np.nan, np.nan]))
    assert spec["labels"] == ["any value", "missing"] and spec["shares"] == [0.0, 1.0]
    with pytest.raises(ValueError, match="n_bins"):
        drift.quantile_edges(pd.Series([1.0]), n_bins=1)


def test_text_levels_rare_pool_and_unseen_bin():
    series = pd.Series(["a"] * 500 + ["b"] * 470 + ["r1"] * 4 + ["r2"] * 4 + [None] * 20 + ["once1", "once2"])
    spec = drift.column_reference(series)
    assert spec["kind"] == "categorical"
    assert spec["levels"] == ["a", "b", drift.MISSING] and spec["rare"] == ["r1", "r2"]
    assert spec["labels"] == ["a", "b", drift.MISSING, drift.RARE, drift.UNSEEN]
    # levels seen once are counted with the unseen ones: how often a new level turns up
    assert spec["shares"][-1] == pytest.approx(2 / 1000)
    new = pd.Series(["a", "r2", "never", None])
    np.testing.assert_array_equal(drift.bin_counts(spec, new), [1, 0, 1, 1, 1])
    assert drift.unseen_share(spec, new) == 0.25
    assert drift.unseen_share(drift.column_reference(pd.Series([1.0, 2.0])), pd.Series([9.0])) == 0.0


def test_one_rare_level_keeps_its_own_bin():
    spec = drift.column_reference(pd.Series(["a"] * 995 + ["r"] * 5))
    assert spec["rare"] == [] and spec["levels"] == ["a", "r"]


def test_reference_is_json_and_names_every_column():
    frame = pd.DataFrame({"x": np.arange(50, dtype=float), "flag": [True, False] * 25, "s": ["u", "v"] * 25})
    reference = drift.build_reference(frame)
    assert json.loads(json.dumps(reference)) == reference
    assert reference["rows"] == 50 and list(reference["columns"]) == ["x", "flag", "s"]
    assert reference["columns"]["flag"]["kind"] == "categorical"  # booleans are levels, not numbers
    for spec in reference["columns"].values():
        assert sum(spec["shares"]) == pytest.approx(1.0) and len(spec["shares"]) == len(spec["labels"])
    with pytest.raises(KeyError, match="nope"):
        drift.build_reference(frame, ["nope"])
