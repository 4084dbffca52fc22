"""Shared matplotlib figures: every one with a title, labelled axes and units.

Each function returns the Figure (the notebook shows it, ``tracking.save_figure``
stores it) and draws nothing else: no global state beyond the figure it makes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

FIGSIZE = (7.5, 4.2)
ACCENT = "#1f77b4"
MUTED = "#7f7f7f"


def label(ax: plt.Axes, title: str, xlabel: str, ylabel: str) -> plt.Axes:
    """Title and axis labels, all required: a figure without them is not finished."""
    for name, text in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not text or not str(text).strip():
            raise ValueError(f"plots: the {name} must not be empty")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def _figure(height: float | None = None) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], height or FIGSIZE[1]))
    return fig, ax


def rate_by_level(df: pd.DataFrame, column: str, target: str, title: str, top: int = 12,
                  xlabel: str = "conversion rate (%)") -> Figure:
    """Share of positives per level (most frequent ``top`` levels; missing shown as '(missing)')."""
    levels = df[column].astype(object).where(df[column].notna(), "(missing)").astype(str)
    stats = df.groupby(levels, sort=False)[target].agg(["mean", "size"]).sort_values("size", ascending=False).head(top)
    stats = stats.iloc[::-1]
    fig, ax = _figure(max(2.5, 0.32 * len(stats) + 1.2))
    ax.barh(stats.index, stats["mean"] * 100, color=ACCENT)
    overall = float(df[target].mean()) * 100
    ax.axvline(overall, color=MUTED, linestyle="--", linewidth=1, label=f"all leads: {overall:.1f}%")
    for y, (rate, size) in enumerate(zip(stats["mean"], stats["size"])):
        ax.text(rate * 100 + 0.5, y, f"n={size:,}", va="center", fontsize=8, color=MUTED)
    ax.set_xlim(0, 105)
    ax.legend(loc="lower right", fontsize=8)
    label(ax, title, xlabel, column)
    fig.tight_layout()
    return fig


def counts_over_time(dates: pd.Series, title: str, freq: str = "W", ylabel: str = "leads per day (mean over the week)",
                     rate: pd.Series | None = None, rate_label: str = "conversion rate (%)") -> Figure:
    """Events per day, averaged per period; with ``rate`` (0/1, aligned with dates) its mean per period on a second axis.

    Per day rather than per period: the first and last periods are usually cut by the
    data's start and end, and raw counts would show them as false drops.
    """
    stamps = pd.to_datetime(dates)
    period = stamps.dt.to_period(freq).dt.start_time
    counts = period.value_counts().sort_index()
    first, last = stamps.min().normalize(), stamps.max().normalize()
    starts = pd.Series(counts.index, index=counts.index)
    ends = starts.map(lambda start: pd.Period(start, freq).end_time.normalize())
    observed_days = (ends.clip(upper=last) - starts.clip(lower=first)).dt.days + 1
    fig, ax = _figure()
    ax.plot(counts.index, counts.to_numpy() / observed_days.to_numpy(), color=ACCENT, marker="o", markersize=3)
    ax.set_ylim(bottom=0)
    label(ax, title, "date", ylabel)
    if rate is not None:
        share = pd.Series(np.asarray(rate, dtype=float), index=period.index).groupby(period).mean().sort_index()
        twin = ax.twinx()
        twin.plot(share.index, share.to_numpy() * 100, color="#d62728", linewidth=1)
        twin.set_ylabel(rate_label, color="#d62728")
        twin.set_ylim(0, 100)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def missing_shares(df: pd.DataFrame, title: str, groups: Mapping[str, Sequence[str]] | None = None,
                   max_columns: int = 25) -> Figure:
    """Share of empty cells per column (%), the emptiest first, the value printed on each bar.

    ``groups`` folds many columns into one bar, the share of rows where all of them are
    empty (e.g. 37 interaction flags that are nearly always empty together).
    """
    groups = dict(groups or {})
    grouped = {c for columns in groups.values() for c in columns}
    shares = df[[c for c in df.columns if c not in grouped]].isna().mean() * 100
    for name, columns in groups.items():
        shares[name] = df[list(columns)].isna().all(axis=1).mean() * 100
    shares = shares.sort_values(ascending=False).head(max_columns).iloc[::-1]
    fig, ax = _figure(max(2.5, 0.28 * len(shares) + 1.2))
    drawn = ax.barh([str(c) for c in shares.index], shares.to_numpy(), color=ACCENT)
    ax.bar_label(drawn, labels=[f"{v:.1f}%" for v in shares.to_numpy()], fontsize=8, padding=2)
    ax.set_xlim(0, 115)
    ax.tick_params(axis="y", labelsize=8)
    label(ax, title, "empty cells (%)", "column")
    fig.tight_layout()
    return fig


def log_histogram(values: pd.Series | np.ndarray, title: str, xlabel: str, bins: int = 40,
                  ylabel: str = "customers") -> Figure:
    """Histogram of the positive values on log-spaced bins; the share of values <= 0 goes in the legend."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    positive = x[x > 0]
    fig, ax = _figure()
    if positive.size:
        edges = np.logspace(np.log10(positive.min()), np.log10(positive.max()) + 1e-9, bins + 1)
        ax.hist(positive, bins=edges, color=ACCENT, label=f"> 0: {positive.size:,}")
        ax.set_xscale("log")
    zero_share = 100 * (1 - positive.size / x.size) if x.size else 0.0
    ax.plot([], [], " ", label=f"<= 0 (not shown): {zero_share:.1f}%")
    ax.legend(fontsize=8)
    label(ax, title, xlabel, ylabel)
    fig.tight_layout()
    return fig


def binned_means(x: pd.Series | np.ndarray, y: pd.Series | np.ndarray, title: str, xlabel: str, ylabel: str,
                 bins: int = 10, log_x: bool = False) -> Figure:
    """Mean of y (with a 95% interval) per quantile bin of x: a relation readable at any sample size.

    Tied x values stay in one bin (fewer bins then): a country's customers share one GDP.
    """
    frame = pd.DataFrame({"x": np.asarray(x, dtype=float), "y": np.asarray(y, dtype=float)}).dropna()
    if frame.empty:
        raise ValueError("plots.binned_means: no rows with both x and y")
    frame["bin"] = pd.qcut(frame["x"], q=min(bins, len(frame)), labels=False, duplicates="drop")
    stats = frame.groupby("bin").agg(x=("x", "median"), mean=("y", "mean"), sd=("y", "std"), n=("y", "size"))
    half_width = 1.96 * stats["sd"].fillna(0) / np.sqrt(stats["n"])
    fig, ax = _figure()
    ax.errorbar(stats["x"], stats["mean"], yerr=half_width, marker="o", color=ACCENT, capsize=3)
    if log_x:
        ax.set_xscale("log")
    label(ax, title, xlabel, ylabel)
    fig.tight_layout()
    return fig


def share_bars(shares: Mapping[str, float], title: str, xlabel: str, ylabel: str = "share (%)") -> Figure:
    """Bars of shares given as fractions (0..1), printed on the bars in %."""
    names, values = list(shares), np.array([float(v) for v in shares.values()]) * 100
    fig, ax = _figure()
    bars = ax.bar(names, values, color=ACCENT)
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in values], fontsize=8)
    ax.set_ylim(0, max(100.0, float(values.max()) * 1.1) if values.size else 100.0)
    ax.yaxis.set_major_formatter(PercentFormatter())
    label(ax, title, xlabel, ylabel)
    fig.tight_layout()
    return fig


def bars(values: Mapping[str, float], title: str, xlabel: str, ylabel: str, value_format: str = "{:.1f}") -> Figure:
    """Plain bars, negative values allowed (a zero line marks the baseline), values printed on the bars."""
    names, heights = list(values), [float(v) for v in values.values()]
    fig, ax = _figure()
    drawn = ax.bar(names, heights, color=ACCENT)
    ax.bar_label(drawn, labels=[value_format.format(v) for v in heights], fontsize=8)
    ax.axhline(0, color=MUTED, linewidth=1)
    label(ax, title, xlabel, ylabel)
    fig.tight_layout()
    return fig
