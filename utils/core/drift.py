"""Reference distributions for drift monitoring: each input of a model, and its score, in bins.

Built once, at training time, from the rows the model was fitted on, and logged with the
model (:func:`utils.core.tracking.log_model`): a scoring job compares new rows with the
training rows through these bins alone, without the training data, the training run's
folder or a second prediction of the training set.

* A numeric column is cut at its training quantiles (right-closed bins; "lower"
  quantiles keep edges on observed values, so a column with a few values gets one bin
  per value), with one more bin for missing values.
* A text column gets one bin per training level (missing is the level ``<missing>``).
  Levels rarer than ``rare_share`` of the training rows share one bin, and levels seen
  once go with levels never seen into the ``<unseen>`` bin: its training share is the
  Good-Turing estimate of how often a new level turns up, so a long tail of one-off
  cities in new data is not mistaken for drift, while a short-tailed column (no one-off
  levels) gives every unseen level its full weight.

The judgment (PSI, thresholds that account for the batch size) is in
:mod:`utils.scoring.monitoring`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

FORMAT = 1
MISSING = "<missing>"
UNSEEN = "<unseen>"
RARE = "<rare>"
# Training levels below this share share one bin.
RARE_SHARE = 0.01


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def quantile_edges(values: pd.Series, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges at the quantiles of ``values``, duplicates dropped (few distinct values -> fewer bins)."""
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    finite = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype="float64")
    if finite.size == 0:
        return np.array([], dtype="float64")
    return np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1], method="lower"))


def _levels(series: pd.Series) -> pd.Series:
    return series.astype("object").where(series.notna(), MISSING).astype(str)


def column_reference(series: pd.Series, n_bins: int = 10, rare_share: float = RARE_SHARE) -> dict[str, Any]:
    """The bins of one training column and the share of training rows in each."""
    rows = max(len(series), 1)
    if is_numeric(series):
        edges = quantile_edges(series, n_bins)
        spec = {"kind": "numeric", "edges": [float(e) for e in edges], "labels": _numeric_labels(edges)}
    else:
        counts = _levels(series).value_counts()
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        kept = counts[counts > 1]
        rare = kept[kept / rows < rare_share]
        if len(rare) < 2:  # one rare level is its own bin: pooling it with nothing says nothing
            rare = rare.iloc[:0]
        named = [str(level) for level in kept.index if level not in set(rare.index)]
        spec = {"kind": "categorical", "levels": named, "rare": [str(level) for level in rare.index],
                "labels": [*named, *([RARE] if len(rare) else []), UNSEEN]}
    shares = bin_counts(spec, series) / rows
    spec["shares"] = [float(s) for s in shares]
    return spec


def build_reference(frame: pd.DataFrame, columns: Iterable[str] | None = None, n_bins: int = 10,
                    rare_share: float = RARE_SHARE) -> dict[str, Any]:
    """Every column's bins and training shares, as a JSON-ready dict (see the module docstring)."""
    columns = list(frame.columns) if columns is None else list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"no column(s) {missing} to build a drift reference from")
    return {
        "format": FORMAT,
        "rows": int(len(frame)),
        "n_bins": int(n_bins),
        "rare_share": float(rare_share),
        "columns": {str(c): column_reference(frame[c], n_bins, rare_share) for c in columns},
    }


def bin_index(spec: dict[str, Any], series: pd.Series) -> np.ndarray:
    """The bin (index into ``spec['labels']``) of every value."""
    if spec["kind"] == "numeric":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
        edges = np.asarray(spec["edges"], dtype="float64")
        index = np.searchsorted(edges, values, side="left")  # right-closed: (e_i, e_i+1]
        return np.where(np.isnan(values), len(edges) + 1, index)
    position = {level: i for i, level in enumerate(spec["levels"])}
    rare_bin = len(spec["levels"]) if spec["rare"] else None
    for level in spec["rare"]:
        position[level] = rare_bin
    unseen_bin = len(spec["labels"]) - 1
    return _levels(series).map(position).fillna(unseen_bin).to_numpy(dtype="int64")


def bin_counts(spec: dict[str, Any], series: pd.Series) -> np.ndarray:
    """Rows per bin of ``spec`` (float, in the order of ``spec['labels']``)."""
    return np.bincount(bin_index(spec, series), minlength=len(spec["labels"])).astype("float64")


def unseen_share(spec: dict[str, Any], series: pd.Series) -> float:
    """Share of rows in the ``<unseen>`` bin (levels training never had, or had once); 0 for numbers."""
    if spec["kind"] != "categorical" or len(series) == 0:
        return 0.0
    return float(np.mean(bin_index(spec, series) == len(spec["labels"]) - 1))


def _numeric_labels(edges: np.ndarray) -> list[str]:
    if len(edges) == 0:
        return ["any value", "missing"]
    inner = [f"({lo:g}, {hi:g}]" for lo, hi in zip(edges[:-1], edges[1:])]
    return [f"<= {edges[0]:g}", *inner, f"> {edges[-1]:g}", "missing"]
