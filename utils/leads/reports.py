"""Business read-outs of a lead score: gains, lift, L2AC by decile, calibration, junk leads, weak channels.

All tables take the true outcome (1 = application completed) and the predicted
probability of the same leads, normally the time holdout. Decile 1 holds the
10 % of leads with the highest scores. L2AC = lead-to-application-complete rate.
"""
from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _checked(y_true: Iterable[int], scores: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    y_true, scores = np.asarray(y_true, dtype="float64"), np.asarray(scores, dtype="float64")
    if y_true.shape != scores.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and scores {scores.shape} must be two vectors of the same length")
    if len(y_true) == 0:
        raise ValueError("no leads to report on")
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ValueError("y_true must be 0/1")
    return y_true, scores


def score_deciles(scores: Iterable[float], n_bins: int = 10) -> np.ndarray:
    """Bin 1 = highest scores. Ties are split by position so every bin has (almost) the same size."""
    scores = np.asarray(scores, dtype="float64")
    order = np.argsort(-scores, kind="stable")
    bins = np.empty(len(scores), dtype="int64")
    bins[order] = np.arange(len(scores)) * n_bins // max(len(scores), 1) + 1
    return bins


def gains_table(y_true: Iterable[int], scores: Iterable[float], n_bins: int = 10) -> pd.DataFrame:
    """Per score decile: leads, completions, L2AC rate, lift, and the cumulative gain (share of all
    completions found by calling the leads down to this decile)."""
    y_true, scores = _checked(y_true, scores)
    frame = pd.DataFrame({"decile": score_deciles(scores, n_bins), "y": y_true, "score": scores})
    table = frame.groupby("decile").agg(leads=("y", "size"), completions=("y", "sum"),
                                        min_score=("score", "min"), max_score=("score", "max")).reset_index()
    base_rate = y_true.mean()
    table["l2ac_rate"] = table["completions"] / table["leads"]
    table["lift"] = table["l2ac_rate"] / base_rate if base_rate > 0 else np.nan
    table["cum_share_leads"] = table["leads"].cumsum() / table["leads"].sum()
    table["cum_gain"] = table["completions"].cumsum() / max(table["completions"].sum(), 1)
    table["cum_lift"] = table["cum_gain"] / table["cum_share_leads"]
    table["completions"] = table["completions"].astype("int64")
    return table[["decile", "leads", "completions", "l2ac_rate", "lift", "cum_share_leads", "cum_gain",
                  "cum_lift", "min_score", "max_score"]]


def calibration_table(y_true: Iterable[int], scores: Iterable[float], n_bins: int = 10) -> pd.DataFrame:
    """Leads binned by score (equal-count bins): mean predicted probability vs observed L2AC rate."""
    y_true, scores = _checked(y_true, scores)
    frame = pd.DataFrame({"bin": n_bins + 1 - score_deciles(scores, n_bins), "y": y_true, "score": scores})
    table = frame.groupby("bin").agg(leads=("y", "size"), mean_score=("score", "mean"),
                                     observed_rate=("y", "mean")).reset_index()
    table["gap"] = table["observed_rate"] - table["mean_score"]
    return table


def junk_threshold_table(y_true: Iterable[int], scores: Iterable[float],
                         thresholds: Iterable[float] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))) -> pd.DataFrame:
    """Dropping leads scored below a threshold: share of leads dropped vs share of completions lost."""
    y_true, scores = _checked(y_true, scores)
    rows = []
    for threshold in thresholds:
        dropped = scores < threshold
        kept = ~dropped
        rows.append({
            "threshold": float(threshold),
            "share_leads_dropped": dropped.mean(),
            "share_completions_lost": y_true[dropped].sum() / max(y_true.sum(), 1),
            "l2ac_kept": y_true[kept].mean() if kept.any() else np.nan,
            "l2ac_dropped": y_true[dropped].mean() if dropped.any() else np.nan,
        })
    return pd.DataFrame(rows)


def capacity_threshold(y_true: Iterable[int], scores: Iterable[float], sales_capacity: float) -> dict[str, float]:
    """The score threshold at which sales calls ``sales_capacity`` of the leads (the highest-scored ones),
    and what that buys: share of completions reached, L2AC of called leads, lift over calling at random."""
    y_true, scores = _checked(y_true, scores)
    if not 0 < sales_capacity <= 1:
        raise ValueError(f"sales_capacity must be in (0, 1], got {sales_capacity}")
    n_called = max(1, int(np.floor(sales_capacity * len(scores) + 1e-9)))
    order = np.argsort(-scores, kind="stable")
    called = np.zeros(len(scores), dtype=bool)
    called[order[:n_called]] = True
    base_rate = y_true.mean()
    reached = y_true[called].sum() / max(y_true.sum(), 1)
    return {
        "sales_capacity": float(sales_capacity),
        "threshold": float(scores[order[n_called - 1]]),
        "share_called": float(called.mean()),
        "share_completions_reached": float(reached),
        "l2ac_called": float(y_true[called].mean()),
        "l2ac_not_called": float(y_true[~called].mean()) if (~called).any() else float("nan"),
        "lift": float(y_true[called].mean() / base_rate) if base_rate > 0 else float("nan"),
    }


def worst_segments(frame: pd.DataFrame, y_true: Iterable[int], scores: Iterable[float], column: str,
                   min_leads: int = 30) -> pd.DataFrame:
    """Levels of ``column`` (a source, medium or platform) by observed L2AC, worst first.

    Levels with fewer than ``min_leads`` leads are left out: their rates are noise.
    A level far below the overall rate, with many leads, is money spent on the wrong audience.
    """
    if column not in frame.columns:
        raise KeyError(f"column '{column}' not in the leads")
    y_true, scores = _checked(y_true, scores)
    data = pd.DataFrame({"level": frame[column].astype(object).fillna("<missing>").to_numpy(), "y": y_true, "score": scores})
    table = data.groupby("level").agg(leads=("y", "size"), l2ac_rate=("y", "mean"), mean_score=("score", "mean")).reset_index()
    table = table[table["leads"] >= min_leads].copy()
    table.insert(0, "column", column)
    table["share_of_leads"] = table["leads"] / len(data)
    table["lift"] = table["l2ac_rate"] / y_true.mean() if y_true.mean() > 0 else np.nan
    return table.sort_values(["l2ac_rate", "leads"], ascending=[True, False], ignore_index=True)


# --- plots --------------------------------------------------------------------------------


def plot_gains(table: pd.DataFrame, title: str = "Cumulative gains (time holdout)") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    share = np.r_[0, table["cum_share_leads"]] * 100
    ax.plot(share, np.r_[0, table["cum_gain"]] * 100, marker="o", label="model")
    ax.plot([0, 100], [0, 100], linestyle="--", color="grey", label="random order")
    ax.set(title=title, xlabel="leads called, highest scores first (%)", ylabel="completed applications reached (%)",
           xlim=(0, 100), ylim=(0, 101))
    ax.legend(loc="lower right")
    return fig


def plot_lift_and_l2ac(table: pd.DataFrame, title: str = "L2AC rate and lift by score decile") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.bar(table["decile"], table["l2ac_rate"] * 100, color="#4c78a8")
    base = table["completions"].sum() / table["leads"].sum() * 100
    ax.axhline(base, color="grey", linestyle="--", label=f"all leads ({base:.0f}%)")
    for decile, rate, lift in zip(table["decile"], table["l2ac_rate"], table["lift"]):
        ax.annotate(f"×{lift:.2f}", (decile, rate * 100), ha="center", va="bottom", fontsize=8)
    ax.set(title=title, xlabel="score decile (1 = highest scores)", ylabel="L2AC rate (%)", xticks=table["decile"])
    ax.legend(loc="upper right")
    return fig


def plot_calibration(table: pd.DataFrame, title: str = "Calibration (time holdout)") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(table["mean_score"] * 100, table["observed_rate"] * 100, marker="o", label="model")
    ax.plot([0, 100], [0, 100], linestyle="--", color="grey", label="perfect calibration")
    ax.set(title=title, xlabel="mean predicted probability (%)", ylabel="observed L2AC rate (%)", xlim=(0, 100), ylim=(0, 100))
    ax.legend(loc="upper left")
    return fig


def plot_junk_tradeoff(table: pd.DataFrame, capacity: dict | None = None,
                       title: str = "Dropping low-scored leads: leads saved vs completions lost") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(table["share_leads_dropped"] * 100, table["share_completions_lost"] * 100, marker=".", label="score threshold")
    ax.plot([0, 100], [0, 100], linestyle="--", color="grey", label="dropping at random")
    if capacity is not None:
        dropped = (1 - capacity["share_called"]) * 100
        lost = (1 - capacity["share_completions_reached"]) * 100
        ax.scatter([dropped], [lost], color="#e45756", zorder=3,
                   label=f"sales capacity {capacity['sales_capacity']:.0%} (threshold {capacity['threshold']:.2f})")
    ax.set(title=title, xlabel="leads dropped (%)", ylabel="completed applications lost (%)", xlim=(0, 100), ylim=(0, 100))
    ax.legend(loc="upper left")
    return fig


def plot_importance(table: pd.DataFrame, title: str = "Permutation importance (time holdout)") -> plt.Figure:
    ordered = table.sort_values("auc_drop")
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(ordered) + 1.2))
    ax.barh(ordered["feature"], ordered["auc_drop"], xerr=ordered.get("auc_drop_std"), color="#4c78a8")
    ax.set(title=title, xlabel="drop in ROC AUC when the column is shuffled", ylabel="model input")
    return fig


def plot_worst_segments(table: pd.DataFrame, overall_rate: float, top: int = 12,
                        title: str = "Channels that convert worst (time holdout)") -> plt.Figure:
    worst = table.head(top).iloc[::-1]
    labels = [f"{c.replace('first_', '').replace('_c', '')}={lvl} (n={n})"
              for c, lvl, n in zip(worst["column"], worst["level"], worst["leads"])]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(worst) + 1.2))
    ax.barh(labels, worst["l2ac_rate"] * 100, color="#e45756")
    ax.axvline(overall_rate * 100, color="grey", linestyle="--", label=f"all leads ({overall_rate:.0%})")
    ax.set(title=title, xlabel="L2AC rate (%)", ylabel="channel level")
    ax.legend(loc="lower right")
    return fig
