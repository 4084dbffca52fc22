"""Summaries of scored tables for the notebook and the dashboard: score bands with expected
completions, value deciles, totals per group."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from utils.core.contracts import DataContractError
from utils.leads.schema import LEAD_ID, LEADS_FEATURE_COLUMNS, duplicated_leads

# Bands for "leads by score band"; the last edge is closed so a score of exactly 1 has a band.
DEFAULT_BAND_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# What a scored lead shows besides its id and score: when and how it came (the 37 flags stay in the input).
LEAD_VIEW_COLUMNS = ("created_date", "city_mapped", "first_platform_c", "first_utm_medium_c", "first_utm_source_c",
                     "total_leads_droppped", "referred_lead")


def score_bands(scores: pd.Series | np.ndarray, edges: tuple[float, ...] = DEFAULT_BAND_EDGES) -> pd.Categorical:
    """Label each score with its band, e.g. "0.4-0.6" (left-closed; the top band includes 1)."""
    edges = tuple(float(e) for e in edges)
    if list(edges) != sorted(set(edges)):
        raise ValueError(f"band edges must increase strictly: {edges}")
    labels = [f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(edges)]
    values = np.asarray(scores, dtype="float64")
    # searchsorted puts a score equal to an inner edge in the upper band; clip keeps 1.0 in the top band.
    codes = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(labels) - 1)
    codes = np.where((values < edges[0]) | (values > edges[-1]) | np.isnan(values), -1, codes)
    return pd.Categorical.from_codes(codes, categories=labels, ordered=True)


def band_summary(scores: pd.Series | np.ndarray, edges: tuple[float, ...] = DEFAULT_BAND_EDGES) -> pd.DataFrame:
    """Leads per score band with the expected lead-to-application-complete rate (L2AC).

    The expected L2AC of a band is its mean predicted probability, and its
    expected completions the sum: what the band should yield if the model is calibrated.
    """
    values = np.asarray(scores, dtype="float64")
    frame = pd.DataFrame({"band": score_bands(values, edges), "score": values})
    grouped = frame.groupby("band", observed=False)["score"]
    summary = pd.DataFrame(
        {
            "leads": grouped.size(),
            "expected_l2ac": grouped.mean(),
            "expected_completions": grouped.sum(),
        }
    ).reset_index()
    summary["share_of_leads"] = summary["leads"] / max(len(values), 1)
    return summary[["band", "leads", "share_of_leads", "expected_l2ac", "expected_completions"]]


def value_deciles(values: pd.Series | np.ndarray) -> np.ndarray:
    """Decile of each value, 10 = the highest tenth; ties broken by row order so it is reproducible."""
    values = np.asarray(values, dtype="float64")
    n = len(values)
    if n == 0:
        return np.array([], dtype="int64")
    order = np.argsort(values, kind="stable")
    ranks = np.empty(n, dtype="int64")
    ranks[order] = np.arange(1, n + 1)
    return np.ceil(ranks * 10 / n).astype("int64")


def decile_summary(values: pd.Series | np.ndarray) -> pd.DataFrame:
    """Predicted value per decile and the cumulative share of all value from the top decile down."""
    values = np.asarray(values, dtype="float64")
    frame = pd.DataFrame({"decile": value_deciles(values), "value": values})
    summary = frame.groupby("decile")["value"].agg(customers="size", mean_predicted="mean", total_predicted="sum")
    summary = summary.reindex(range(1, 11), fill_value=0).reset_index()
    total = summary["total_predicted"].sum()
    summary["share_of_value"] = summary["total_predicted"] / total if total else 0.0
    summary["cumulative_share_from_top"] = summary["share_of_value"][::-1].cumsum()[::-1]
    return summary


def group_summary(df: pd.DataFrame, group_column: str, value_column: str, top: int = 15) -> pd.DataFrame:
    """Customers, mean and total predicted value per group, largest total first (the rest pooled)."""
    if group_column not in df.columns:
        raise DataContractError("<scored customers>", group_column, "missing: cannot summarise by it")
    groups = df[group_column].astype("object").where(df[group_column].notna(), "(missing)")
    summary = (
        df.assign(_group=groups)
        .groupby("_group")[value_column]
        .agg(customers="size", mean_predicted="mean", total_predicted="sum")
    )
    summary = summary.sort_values(["total_predicted", "customers"], ascending=False)
    if len(summary) > top:
        rest = summary.iloc[top:]
        pooled = pd.DataFrame(
            {"customers": [rest["customers"].sum()], "total_predicted": [rest["total_predicted"].sum()]},
            index=[f"other ({len(rest)})"],
        )
        pooled["mean_predicted"] = pooled["total_predicted"] / pooled["customers"]
        summary = pd.concat([summary.iloc[:top], pooled[summary.columns]])
    return summary.rename_axis(group_column).reset_index()


def scored_leads_view(scored: pd.DataFrame, score_column: str = "p_app_complete", decision_threshold: float = 0.5,
                      ) -> pd.DataFrame:
    """Scored leads as sales and the next program read them, one row per input row, in input order.

    The lead's id first, the score, its band, whether it reaches the decision threshold,
    ``duplicate`` (identical to an earlier lead of the batch but for the id: scored all
    the same, never merged), when and through which channel it came, and the model's name.
    """
    for column in (LEAD_ID, score_column):
        if column not in scored.columns:
            raise DataContractError("<scored leads>", column, "missing")
    raw = scored[[c for c in (LEAD_ID, *LEADS_FEATURE_COLUMNS) if c in scored.columns]]
    out = pd.DataFrame({LEAD_ID: scored[LEAD_ID].to_numpy(), score_column: scored[score_column].to_numpy()})
    out["score_band"] = np.asarray(score_bands(out[score_column]).astype(str))
    out["above_threshold"] = out[score_column] >= decision_threshold
    out["duplicate"] = duplicated_leads(raw).to_numpy()
    for column in (*LEAD_VIEW_COLUMNS, "model_name"):
        if column in scored.columns:
            out[column] = scored[column].to_numpy()
    return out
