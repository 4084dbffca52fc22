"""Drift monitoring: the population stability index (PSI) of every model input and of the score,
judged against the noise a batch of that size shows anyway; and its history over scoring runs.

PSI compares the share of rows per bin between the training part (the reference logged
with the model, :mod:`utils.core.drift`) and the new rows: the sum over bins of
(new - reference) * ln(new / reference). The usual rules of thumb (0.1 worth a look,
0.25 a real shift) assume thousands of rows: a batch of 30 leads drawn from the training
rows themselves has empty bins, and each empty bin alone adds about 0.3.

So a column's levels come from simulation: ``draws`` batches of the same size are drawn
from the reference bins (multinomial samples) and each column's PSI computed. A column fails
above ``max(psi_fail + bias, noise)``: ``bias`` is the mean PSI of these simulated batches
(a batch of n rows overstates the PSI of the population it comes from by about that much,
and the rules of thumb are about populations), ``noise`` a high quantile of them.
Warnings alike, with ``psi_warn`` and a lower quantile. The quantile is corrected for looking at
many columns at once: it is raised until at most ``alpha`` of the simulated batches would
cross any column's level (a family-wise rate, calibrated on the same simulated batches;
columns that hardly vary, such as interaction flags that are almost always empty, cost
little of it). For large batches the noise is tiny and the rule-of-thumb levels apply; for
small ones only a large shift fails. The simulation treats columns as independent; real
columns move together, which makes a false alarm rarer, not more frequent.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utils.core import drift
from utils.core.contracts import DataContractError

# A share of 0 would make ln() infinite; this floor keeps one empty bin from dominating.
SHARE_FLOOR = 1e-4
STATUS_ORDER = ("ok", "warn", "fail")
TABLE_COLUMNS = ["feature", "kind", "psi", "unseen_share", "warn_at", "fail_at", "status"]


def psi_from_shares(reference_share: np.ndarray, current_share: np.ndarray) -> np.ndarray | float:
    """PSI of one share vector (a float) or of each row of a matrix of share vectors."""
    ref = np.clip(np.asarray(reference_share, dtype="float64"), SHARE_FLOOR, None)
    cur = np.clip(np.asarray(current_share, dtype="float64"), SHARE_FLOOR, None)
    values = np.sum((cur - ref) * np.log(cur / ref), axis=-1)
    return float(values) if np.ndim(values) == 0 else values


def column_psi(spec: dict, series: pd.Series) -> float:
    """PSI of one new column against its reference bins (0 for an empty column)."""
    if len(series) == 0:
        return 0.0
    return psi_from_shares(spec["shares"], drift.bin_counts(spec, series) / len(series))


def null_psi(shares: list[float] | np.ndarray, rows: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """PSI of ``draws`` batches of ``rows`` rows drawn from the reference bins themselves."""
    p = np.clip(np.asarray(shares, dtype="float64"), 0.0, None)
    p = p / p.sum()
    counts = rng.multinomial(rows, p, size=draws)
    return psi_from_shares(p, counts / rows)


def familywise_quantile(nulls: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """(per-column tail share, per-column level) such that at most ``alpha`` of the simulated
    batches (the columns of ``nulls``, one row per feature) exceed any feature's level.

    Tries tail shares from ``alpha`` down (a geometric grid to one simulated batch) and keeps
    the largest that holds the family-wise rate; Bonferroni (``alpha`` / features) is its
    worst case, reached only when every feature is as noisy as the noisiest.
    """
    features, draws = nulls.shape
    ordered = np.sort(nulls, axis=1)
    for tail in np.geomspace(alpha, 1.0 / draws, 40):
        position = min(int(np.ceil((1 - tail) * draws)), draws - 1)
        levels = ordered[:, position]
        if np.mean((nulls > levels[:, None]).any(axis=0)) <= alpha:
            return float(tail), levels
    return 1.0 / draws, ordered[:, -1]


def drift_thresholds(reference: dict, rows: int, psi_warn: float = 0.1, psi_fail: float = 0.25,
                     alpha_warn: float = 0.05, alpha_fail: float = 0.01, draws: int = 10_000,
                     seed: int = 0) -> pd.DataFrame:
    """Per reference column: the noise levels of a ``rows``-row batch and the warn and fail levels in use."""
    if not 0 <= psi_warn <= psi_fail:
        raise ValueError(f"thresholds must satisfy 0 <= psi_warn <= psi_fail, got {psi_warn}, {psi_fail}")
    if not 0 < alpha_fail <= alpha_warn < 1:
        raise ValueError(f"false-alarm rates must satisfy 0 < alpha_fail <= alpha_warn < 1, "
                         f"got {alpha_fail}, {alpha_warn}")
    if draws < 100:
        raise ValueError(f"draws must be at least 100, got {draws}")
    columns = reference["columns"]
    table = pd.DataFrame({"feature": list(columns), "kind": [spec["kind"] for spec in columns.values()]})
    if rows <= 0 or not columns:
        return table.assign(bias=0.0, noise_warn=0.0, noise_fail=0.0, warn_at=psi_warn, fail_at=psi_fail)
    rng = np.random.default_rng(seed)
    nulls = np.vstack([null_psi(spec["shares"], rows, draws, rng) for spec in columns.values()])
    bias = nulls.mean(axis=1)
    _, noise_warn = familywise_quantile(nulls, alpha_warn)
    _, noise_fail = familywise_quantile(nulls, alpha_fail)
    return table.assign(bias=bias, noise_warn=noise_warn, noise_fail=noise_fail,
                        warn_at=np.maximum(psi_warn + bias, noise_warn), fail_at=np.maximum(psi_fail + bias, noise_fail))


def drift_table(reference: dict, current: pd.DataFrame, thresholds: pd.DataFrame, file: str = "<current>",
                ) -> pd.DataFrame:
    """One row per reference column: PSI, share of unseen levels, its levels and status; worst first."""
    rows = []
    levels = thresholds.set_index("feature")
    for column, spec in reference["columns"].items():
        if column not in current.columns:
            raise DataContractError(file, column, "missing: cannot compute its drift")
        value = column_psi(spec, current[column])
        warn_at, fail_at = float(levels.loc[column, "warn_at"]), float(levels.loc[column, "fail_at"])
        rows.append({"feature": column, "kind": spec["kind"], "psi": value,
                     "unseen_share": drift.unseen_share(spec, current[column]), "warn_at": warn_at,
                     "fail_at": fail_at, "status": "fail" if value > fail_at else "warn" if value > warn_at else "ok"})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    order = table["status"].map(STATUS_ORDER.index)
    return table.assign(_order=order).sort_values(["_order", "psi", "feature"], ascending=[False, False, True],
                                                  ignore_index=True).drop(columns="_order")


def worst_status(tables: dict[str, pd.DataFrame] | pd.DataFrame) -> str:
    """The worst status of one drift table, or of several."""
    frames = tables.values() if isinstance(tables, dict) else [tables]
    statuses = [s for frame in frames for s in frame["status"]]
    return max(statuses, key=STATUS_ORDER.index) if statuses else "ok"


def failures(tables: dict[str, pd.DataFrame]) -> list[str]:
    """``table.feature (PSI x above y)`` for every column past its fail level."""
    return [f"{name}.{row.feature} (PSI {row.psi:.3f} > {row.fail_at:.3f})"
            for name, table in tables.items() for row in table.itertuples() if row.status == "fail"]


def drift_banner_html(tables: dict[str, pd.DataFrame], consequence: str = "") -> str:
    """A prominent coloured box listing drifting columns and what follows from it, or "" when all is stable."""
    flagged = [(name, row) for name, table in tables.items() for row in table.itertuples() if row.status != "ok"]
    if not flagged:
        return ""
    worst = "fail" if any(row.status == "fail" for _, row in flagged) else "warn"
    colour = {"warn": "#b45309", "fail": "#b91c1c"}[worst]
    items = "".join(
        f"<li><b>{html.escape(name)}.{html.escape(str(row.feature))}</b>: PSI {row.psi:.3f} "
        f"({row.status}: warn above {row.warn_at:.3f}, fail above {row.fail_at:.3f})</li>"
        for name, row in flagged
    )
    title = "Drift FAILURE: the new data do not look like the training data" if worst == "fail" else \
        "Drift WARNING: some inputs moved"
    note = f"<p>{html.escape(consequence)}</p>" if consequence else ""
    return (
        f'<div style="border:3px solid {colour};background:#fff7ed;padding:12px;margin:8px 0;'
        f'font-size:15px"><div style="color:{colour};font-weight:bold;font-size:18px">{title}</div>'
        f"{note}<ul>{items}</ul></div>"
    )


# --- history over runs -----------------------------------------------------------------------


def history_row(
    run_label: str, tables: dict[str, pd.DataFrame], recorded_at: datetime | None = None, **extra: float
) -> dict:
    """One line of drift history: per table its max PSI, its max PSI relative to the fail level, status; then every PSI."""
    when = recorded_at or datetime.now(UTC)
    row: dict = {"run": run_label, "recorded_at": when.isoformat(timespec="seconds")}
    for name, table in tables.items():
        row[f"{name}.psi_max"] = float(table["psi"].max()) if len(table) else 0.0
        row[f"{name}.fail_ratio_max"] = float((table["psi"] / table["fail_at"]).max()) if len(table) else 0.0
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


def plot_drift_history(history: pd.DataFrame, columns: list[str] | None = None):
    """Each table's worst PSI relative to its fail level, over runs (oldest left); 1 is the fail line.

    Relative, because the fail level depends on each run's batch size.
    """
    columns = columns or [c for c in history.columns if c.endswith(".fail_ratio_max")]
    if not columns:
        raise ValueError("drift history has no '<table>.fail_ratio_max' column to plot")
    fig, ax = plt.subplots(figsize=(8, 4))
    runs = np.arange(1, len(history) + 1)
    for column in columns:
        ax.plot(runs, pd.to_numeric(history[column], errors="coerce"), marker="o",
                label=column.removesuffix(".fail_ratio_max"))
    ax.axhline(1.0, color="#dc2626", linestyle="--", label="fail level")
    ax.set_title("Worst drift per scoring run, relative to its fail level")
    ax.set_xlabel("scoring run (oldest to newest)")
    ax.set_ylabel("max over columns of PSI / fail level (unitless)")
    ax.set_xticks(runs)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_binned_shift(spec: dict, current: pd.Series, title: str, xlabel: str):
    """Share of training rows and of new rows per reference bin (e.g. of the score), side by side."""
    labels = spec["labels"]
    new = drift.bin_counts(spec, current) / max(len(current), 1)
    keep = (np.asarray(spec["shares"]) > 0) | (new > 0)
    positions = np.arange(int(keep.sum()))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(positions - 0.2, np.asarray(spec["shares"])[keep], width=0.4, label="training part")
    ax.bar(positions + 0.2, new[keep], width=0.4, label=f"new ({len(current):,})")
    ax.set_xticks(positions, [label for label, k in zip(labels, keep) if k], rotation=45, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of rows")
    ax.legend()
    fig.tight_layout()
    return fig
