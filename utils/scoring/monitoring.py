"""Drift monitoring: population stability index (PSI) of features and scores, and its history.

PSI compares the share of rows in each bin between a reference (the training
data) and the current data: sum over bins of (current - reference) * ln(current / reference).
Numeric features are binned at the training quantiles, categorical ones by
level (levels under 1% of the training rows pooled), with one extra bin for
levels the training data never had. Rules of
thumb: below 0.1 stable, 0.1-0.25 worth a look, above 0.25 a real shift.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utils.core.contracts import DataContractError

# A share of 0 would make ln() infinite; this floor keeps one empty bin from dominating.
SHARE_FLOOR = 1e-4
MISSING = "<missing>"
UNSEEN = "<unseen>"
RARE = "<rare>"
# Training levels below this share are pooled into one bin (see psi_categorical).
RARE_SHARE = 0.01
STATUS_ORDER = ("ok", "warn", "fail")


class DriftError(RuntimeError):
    """Input or score drift past the fail threshold: scores on this data are not to be trusted."""


def psi_from_shares(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    ref = np.clip(np.asarray(reference_share, dtype="float64"), SHARE_FLOOR, None)
    cur = np.clip(np.asarray(current_share, dtype="float64"), SHARE_FLOOR, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def quantile_edges(reference: pd.Series, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference quantiles, duplicates dropped (few distinct values -> fewer bins)."""
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    values = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype="float64")
    if values.size == 0:
        return np.array([], dtype="float64")
    # "lower" keeps edges on observed values, so a feature with a few levels gets one bin per level.
    return np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1], method="lower"))


def _numeric_shares(series: pd.Series, edges: np.ndarray) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
    missing = np.isnan(values)
    # Right-closed bins: (-inf, e1], (e1, e2], ..., (ek, inf); missing values get a bin of their own.
    bins = np.searchsorted(edges, values[~missing], side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype("float64")
    counts = np.append(counts, missing.sum())
    return counts / max(len(values), 1)


def psi_numeric(reference: pd.Series, current: pd.Series, n_bins: int = 10) -> float:
    """PSI of a numeric feature binned at the reference quantiles."""
    edges = quantile_edges(reference, n_bins)
    return psi_from_shares(_numeric_shares(reference, edges), _numeric_shares(current, edges))


def _levels(series: pd.Series) -> pd.Series:
    return series.astype("object").where(series.notna(), MISSING).astype(str)


def psi_categorical(reference: pd.Series, current: pd.Series, rare_share: float = RARE_SHARE) -> tuple[float, float]:
    """PSI by level and the share of current rows whose level the reference never had.

    Two guards against sampling noise in long-tailed features (hundreds of cities):
    levels seen only once in the reference go to the unseen bin on both sides, so
    the reference's unseen share is its Good-Turing estimate of how often new
    levels turn up; other levels rarer than ``rare_share`` share one bin. A
    short-tailed feature has no one-off levels, so any unseen level weighs fully.
    """
    ref_levels, cur_levels = _levels(reference), _levels(current)
    counts = ref_levels.value_counts()
    never_seen = ~cur_levels.isin(set(counts.index))
    one_off = set(counts.index[counts == 1])
    rare = set(counts.index[(counts > 1) & (counts / max(len(ref_levels), 1) < rare_share)])
    binned = []
    for levels in (ref_levels, cur_levels):
        levels = levels.where(~levels.isin(one_off) & levels.isin(set(counts.index)), UNSEEN)
        binned.append(levels.where(~levels.isin(rare), RARE) if len(rare) > 1 else levels)
    categories = [*sorted(set(binned[0]) - {UNSEEN}), UNSEEN]
    ref_share, cur_share = (b.value_counts(normalize=True).reindex(categories, fill_value=0.0) for b in binned)
    return psi_from_shares(ref_share.to_numpy(), cur_share.to_numpy()), float(never_seen.mean()) if len(
        cur_levels
    ) else 0.0


def is_numeric_feature(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def drift_status(psi: float, psi_warn: float, psi_fail: float) -> str:
    if not 0 <= psi_warn <= psi_fail:
        raise ValueError(f"thresholds must satisfy 0 <= psi_warn <= psi_fail, got {psi_warn}, {psi_fail}")
    return "fail" if psi > psi_fail else "warn" if psi > psi_warn else "ok"


def psi_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str] | None = None,
    n_bins: int = 10,
    psi_warn: float = 0.1,
    psi_fail: float = 0.25,
    file: str = "<current>",
) -> pd.DataFrame:
    """One row per feature: kind, PSI, share of unseen levels, status; worst first."""
    columns = list(reference.columns) if columns is None else list(columns)
    rows = []
    for column in columns:
        for frame, name in ((reference, "<reference>"), (current, file)):
            if column not in frame.columns:
                raise DataContractError(name, column, "missing: cannot compute its drift")
        if is_numeric_feature(reference[column]) and is_numeric_feature(current[column]):
            kind, value, unseen = "numeric", psi_numeric(reference[column], current[column], n_bins), 0.0
        else:
            kind = "categorical"
            value, unseen = psi_categorical(reference[column], current[column])
        rows.append(
            {
                "feature": column,
                "kind": kind,
                "psi": value,
                "unseen_share": unseen,
                "status": drift_status(value, psi_warn, psi_fail),
            }
        )
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi", "unseen_share", "status"])
    return table.sort_values(["psi", "feature"], ascending=[False, True], ignore_index=True)


def worst_status(table: pd.DataFrame) -> str:
    if table.empty:
        return "ok"
    return max(table["status"], key=STATUS_ORDER.index)


def check_drift(tables: dict[str, pd.DataFrame]) -> None:
    """Raise :class:`DriftError` naming every feature past the fail threshold."""
    failed = [
        f"{name}.{row.feature} (PSI {row.psi:.3f})"
        for name, table in tables.items()
        for row in table.itertuples()
        if row.status == "fail"
    ]
    if failed:
        raise DriftError(
            "drift past the fail threshold: "
            + ", ".join(failed)
            + ". The new data no longer looks like the training data: investigate before trusting these scores."
        )


def drift_banner_html(tables: dict[str, pd.DataFrame], psi_warn: float, psi_fail: float) -> str:
    """A prominent coloured box listing drifting features, or "" when everything is stable."""
    flagged = [(name, row) for name, table in tables.items() for row in table.itertuples() if row.status != "ok"]
    if not flagged:
        return ""
    worst = "fail" if any(row.status == "fail" for _, row in flagged) else "warn"
    colour = {"warn": "#b45309", "fail": "#b91c1c"}[worst]
    items = "".join(
        f"<li><b>{html.escape(name)}.{html.escape(str(row.feature))}</b>: PSI {row.psi:.3f} ({row.status})</li>"
        for name, row in flagged
    )
    return (
        f'<div style="border:3px solid {colour};background:#fff7ed;padding:12px;margin:8px 0;'
        f'font-size:15px"><div style="color:{colour};font-weight:bold;font-size:18px">'
        f"Drift {'FAILURE' if worst == 'fail' else 'WARNING'}: PSI above "
        f"{psi_fail if worst == 'fail' else psi_warn}</div><ul>{items}</ul></div>"
    )


# --- history over runs -----------------------------------------------------------------------


def history_row(
    run_label: str, tables: dict[str, pd.DataFrame], recorded_at: datetime | None = None, **extra: float
) -> dict:
    """One line of drift history: max PSI and status per table, then every feature's PSI."""
    when = recorded_at or datetime.now(UTC)
    row: dict = {"run": run_label, "recorded_at": when.isoformat(timespec="seconds")}
    for name, table in tables.items():
        row[f"{name}.psi_max"] = float(table["psi"].max()) if len(table) else 0.0
        row[f"{name}.status"] = worst_status(table)
    row.update(extra)
    for name, table in tables.items():
        # By name, not by PSI: the same columns in the same order from run to run.
        for feature, value in sorted(zip(table["feature"].astype(str), table["psi"])):
            row[f"{name}.psi.{feature}"] = float(value)
    return row


def append_history(history_path: Path | str, row: dict) -> pd.DataFrame:
    """Append one run's line to the drift history CSV (created on first use) and return the whole history.

    A run that brings a new feature widens the file: older runs get an empty cell there.
    """
    path = Path(history_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame([row])
    if not path.exists() or path.stat().st_size == 0:
        new.to_csv(path, index=False)
        return new
    history = pd.read_csv(path)
    if set(new.columns) <= set(history.columns):
        new = new.reindex(columns=history.columns)
        new.to_csv(path, mode="a", header=False, index=False)
        return pd.concat([history, new], ignore_index=True)
    history = pd.concat([history, new], ignore_index=True)
    history.to_csv(path, index=False)
    return history


def plot_drift_history(history: pd.DataFrame, psi_warn: float, psi_fail: float, columns: list[str] | None = None):
    """Line chart of PSI over runs (oldest left) with the warn and fail thresholds."""
    columns = columns or [c for c in history.columns if c.endswith((".psi_max", ".psi_score"))]
    if not columns:
        raise ValueError("drift history has no PSI column to plot")
    fig, ax = plt.subplots(figsize=(8, 4))
    runs = np.arange(1, len(history) + 1)
    for column in columns:
        ax.plot(runs, pd.to_numeric(history[column], errors="coerce"), marker="o", label=column)
    ax.axhline(psi_warn, color="#d97706", linestyle="--", label=f"warn ({psi_warn})")
    ax.axhline(psi_fail, color="#dc2626", linestyle="--", label=f"fail ({psi_fail})")
    ax.set_title("Population stability index over scoring runs")
    ax.set_xlabel("scoring run (oldest to newest)")
    ax.set_ylabel("PSI (unitless)")
    ax.set_xticks(runs)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_score_shift(reference: pd.Series, current: pd.Series, title: str, xlabel: str, bins: int = 30):
    """Overlaid density histograms of a score on the training data and on the new data."""
    reference = pd.to_numeric(reference, errors="coerce").dropna()
    current = pd.to_numeric(current, errors="coerce").dropna()
    edges = np.histogram_bin_edges(np.r_[reference.to_numpy(), current.to_numpy()], bins=bins)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(reference, bins=edges, density=True, alpha=0.5, label=f"training ({len(reference):,})")
    ax.hist(current, bins=edges, density=True, alpha=0.5, label=f"new ({len(current):,})")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density (share per unit)")
    ax.legend()
    fig.tight_layout()
    return fig
