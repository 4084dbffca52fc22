"""How well a CLV prediction ranks and sizes customers' future revenue.

Ranking is what a CLV model is used for (whom to court first), so the headline is the
normalized Gini; Spearman, top-decile capture and the decile table say the same thing
from other angles, RMSE, MAE and decile MAPE judge the amounts.

A claim that one model is better comes with an interval: :func:`paired_bootstrap`
resamples the customers and scores both models on the same resample, and
:func:`comparison_table` gives every model's gain over the references that way.
"""
from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from utils.core.parallel import map_resamples


def gini(actual, predicted) -> float:
    """Gini of ``actual`` ordered by ``predicted`` (descending): area between Lorenz curve and diagonal.

    Tied predictions are treated as one block whose members arrive in random order (the
    expected Lorenz curve), so a constant prediction scores exactly 0 whatever the row order.
    """
    actual, predicted = _arrays(actual, predicted)
    total = actual.sum()
    if total == 0:
        raise ValueError("gini: actual values sum to 0, the Lorenz curve is undefined")
    order = np.argsort(-predicted, kind="stable")
    actual, predicted = actual[order], predicted[order]
    # Blocks of equal predictions: within a block of k rows holding share s after a
    # cumulative share c0, the expected cumulative shares sum to k*c0 + s*(k+1)/2.
    starts = np.r_[0, np.flatnonzero(np.diff(predicted)) + 1]
    sizes = np.diff(np.r_[starts, len(actual)])
    block_share = np.add.reduceat(actual, starts) / total
    before = np.r_[0.0, np.cumsum(block_share)[:-1]]
    area = np.sum(sizes * before + block_share * (sizes + 1) / 2)
    n = len(actual)
    return float(area / n - (n + 1) / (2 * n))


def normalized_gini(actual, predicted) -> float:
    """gini(actual, predicted) / gini(actual, actual): 1 = perfect ranking, 0 = none, -1 = reversed."""
    best = gini(actual, actual)
    if best == 0:
        raise ValueError("normalized_gini: every actual value is the same, nothing to rank")
    return gini(actual, predicted) / best


def spearman(actual, predicted) -> float:
    """Spearman rank correlation; 0.0 for a constant prediction (it ranks no one)."""
    actual, predicted = _arrays(actual, predicted)
    if np.all(predicted == predicted[0]) or np.all(actual == actual[0]):
        return 0.0
    return float(spearmanr(actual, predicted).statistic)


def top_decile_capture(actual, predicted, share: float = 0.1) -> float:
    """Share of total actual revenue held by the top ``share`` of customers by prediction.

    Ties at the cut count pro rata (a constant prediction captures exactly ``share``).
    """
    actual, predicted = _arrays(actual, predicted)
    total = actual.sum()
    if total == 0:
        raise ValueError("top_decile_capture: actual values sum to 0")
    k = share * len(actual)
    captured = 0.0
    for value in np.unique(predicted)[::-1]:
        block = actual[predicted == value]
        take = min(len(block), k)
        captured += block.mean() * take
        k -= take
        if k <= 0:
            break
    return float(captured / total)


def rmse(actual, predicted) -> float:
    actual, predicted = _arrays(actual, predicted)
    return float(np.sqrt(np.mean((actual - predicted) ** 2)))


def mae(actual, predicted) -> float:
    actual, predicted = _arrays(actual, predicted)
    return float(np.mean(np.abs(actual - predicted)))


def clv_metrics(actual, predicted) -> dict[str, float]:
    """Every headline metric at once: gini, spearman, top_decile_capture, rmse, mae."""
    return {
        "gini": normalized_gini(actual, predicted),
        "spearman": spearman(actual, predicted),
        "top_decile_capture": top_decile_capture(actual, predicted),
        "rmse": rmse(actual, predicted),
        "mae": mae(actual, predicted),
    }


def decile_table(actual, predicted, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs mean actual by predicted decile (1 = highest predictions).

    Rows are ranked by prediction (ties by position) and cut into equal-sized groups, so
    a constant prediction still yields ten groups, each with about the overall mean.
    """
    actual, predicted = _arrays(actual, predicted)
    if len(actual) < n_bins:
        raise ValueError(f"decile_table: {len(actual)} rows cannot fill {n_bins} groups")
    rank = np.empty(len(predicted), dtype=int)
    rank[np.argsort(-predicted, kind="stable")] = np.arange(len(predicted))
    frame = pd.DataFrame({"decile": rank * n_bins // len(predicted) + 1, "predicted": predicted, "actual": actual})
    table = frame.groupby("decile").agg(
        customers=("actual", "size"), mean_predicted=("predicted", "mean"),
        mean_actual=("actual", "mean"), total_actual=("actual", "sum"),
    ).reset_index()
    table["share_of_actual"] = table["total_actual"] / actual.sum() if actual.sum() else np.nan
    return table


def _arrays(actual, predicted) -> tuple[np.ndarray, np.ndarray]:
    actual = np.asarray(actual, dtype="float64").ravel()
    predicted = np.asarray(predicted, dtype="float64").ravel()
    if actual.shape != predicted.shape:
        raise ValueError(f"actual has {actual.size} values, predicted {predicted.size}")
    if actual.size == 0:
        raise ValueError("no values to score")
    if np.isnan(actual).any() or np.isnan(predicted).any():
        raise ValueError("actual or predicted holds NaN")
    return actual, predicted


def metrics_table(actual, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per model, one column per metric (see :func:`clv_metrics`)."""
    rows = [{"model": name, **clv_metrics(actual, predicted)} for name, predicted in predictions.items()]
    return pd.DataFrame(rows)


def tracking_keys(table: pd.DataFrame, prefix: str = "clv") -> dict[str, float]:
    """Flat metric keys for tracking: ``clv.gini_test.<model>``, ``clv.top_decile_capture.<model>`` ..."""
    names = {"gini": "gini_test", "spearman": "spearman_test", "top_decile_capture": "top_decile_capture",
             "rmse": "rmse_test", "mae": "mae_test"}
    return {f"{prefix}.{key}.{row['model']}": float(row[metric])
            for _, row in table.iterrows() for metric, key in names.items()}


def plot_deciles(tables: dict[str, pd.DataFrame], predicted_of: str | None = None, note: str = ""):
    """Mean actual revenue by predicted decile, one line per model (from :func:`decile_table`).

    ``predicted_of`` adds that model's mean prediction as a dashed line: where it
    parts from its actuals, the amounts (not the ranking) are off. ``note`` ends the title.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, table in tables.items():
        ax.plot(table["decile"], table["mean_actual"], marker="o", label=f"{name}: mean actual")
    if predicted_of is not None:
        table = tables[predicted_of]
        ax.plot(table["decile"], table["mean_predicted"], linestyle="--", color="grey",
                label=f"{predicted_of}: mean predicted")
    ax.set_xticks(range(1, len(next(iter(tables.values()))) + 1))
    ax.set_xlabel("predicted decile (1 = highest predicted value)")
    ax.set_ylabel("revenue in the horizon per customer (currency units)")
    ax.set_title("Test customers by predicted decile: who really spent" + (f"\n{note}" if note else ""))
    ax.legend()
    fig.tight_layout()
    return fig


# --- calibration by decile, and intervals on gains --------------------------------------------


def decile_mape(actual, predicted, n_bins: int = 10) -> float:
    """Mean over predicted deciles of |mean predicted - mean actual| / mean actual.

    The ZILN paper's calibration measure (Wang et al. 2019, google/lifetime_value
    ``decile_stats``). Groups are cut by rank (ties by position), as in :func:`decile_table`,
    so tied predictions still give ten groups. ``inf`` when a group's mean actual is 0.
    """
    table = decile_table(actual, predicted, n_bins)
    if (table["mean_actual"] == 0).any():
        return float("inf")
    return float(np.mean(np.abs(table["mean_predicted"] - table["mean_actual"]) / np.abs(table["mean_actual"])))


RANKING_METRICS: dict[str, Callable] = {"gini": normalized_gini, "spearman": spearman}


def paired_bootstrap(actual, predicted_a, predicted_b, metric: Callable = normalized_gini, n_boot: int = 1000,
                     level: float = 0.95, random_state: int = 0) -> dict[str, float]:
    """metric(a) - metric(b) on the full sample and its percentile interval over paired resamples.

    Each resample draws customers with replacement and scores BOTH models on it: their errors
    are correlated, so the interval of the difference is far tighter (and right) compared with two
    separate intervals. Resamples where the metric is undefined (e.g. nobody spent) are
    skipped and counted.
    """
    actual = np.asarray(actual, dtype="float64")
    a, b = np.asarray(predicted_a, dtype="float64"), np.asarray(predicted_b, dtype="float64")
    if not len(actual) == len(a) == len(b):
        raise ValueError("paired_bootstrap: actual and both predictions must have the same length")
    if not 0 < level < 1:
        raise ValueError(f"paired_bootstrap: level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"paired_bootstrap: n_boot must be >= 1, got {n_boot}")
    def difference(rows: np.ndarray) -> float | None:
        try:
            return metric(actual[rows], a[rows]) - metric(actual[rows], b[rows])
        except ValueError:
            return None

    every = list(map_resamples(difference, len(actual), n_boot, np.random.default_rng(random_state)))
    diffs = [d for d in every if d is not None]
    skipped = len(every) - len(diffs)
    if not diffs:
        raise ValueError("paired_bootstrap: the metric was undefined on every resample")
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return {"diff": float(metric(actual, a) - metric(actual, b)), "low": float(low), "high": float(high),
            "share_positive": float(np.mean(np.asarray(diffs) > 0)), "skipped": skipped}


def bootstrap_scores(actual, predictions: dict[str, np.ndarray], n_boot: int = 1000,
                     random_state: int = 0) -> dict[str, pd.DataFrame]:
    """Gini and Spearman of every model on the same ``n_boot`` resamples of the customers.

    One resample serves every model (so any two columns are paired). Nothing is sorted per
    resample: every model's predictions and the actuals are sorted once (:class:`_Sorted`), and a
    resample only counts how often it drew each customer; :func:`normalized_gini` and
    :func:`spearman` of the resample follow from the counts (the same values, up to rounding).
    Resamples where nothing can be ranked are skipped. Returns {"gini": frame, "spearman": frame},
    one row per kept resample, one column per model.
    """
    actual = np.asarray(actual, dtype="float64")
    names = list(predictions)
    matrix = [np.asarray(predictions[name], dtype="float64") for name in names]
    if any(len(row) != len(actual) for row in matrix):
        raise ValueError("bootstrap_scores: every prediction must be as long as actual")
    if n_boot < 1:
        raise ValueError(f"bootstrap_scores: n_boot must be >= 1, got {n_boot}")
    by_actual, by_model = _Sorted(actual, actual), [_Sorted(row, actual) for row in matrix]

    def scores(rows: np.ndarray) -> tuple[list[float], list[float]] | None:
        drawn = np.bincount(rows, minlength=len(actual)).astype("float64")
        actual_sizes = by_actual.sizes(drawn)
        if _dot(drawn, actual) == 0 or np.count_nonzero(actual_sizes) == 1:
            return None
        best = by_actual.gini(drawn, actual_sizes)
        actual_rank = by_actual.centred_ranks(actual_sizes)
        actual_spread = _dot(drawn, actual_rank**2)
        ginis, spearmans = [], []
        for model in by_model:
            sizes = model.sizes(drawn)  # once per model and resample: its Gini and its ranks share them
            ginis.append(model.gini(drawn, sizes) / best)
            if np.count_nonzero(sizes) == 1:
                spearmans.append(0.0)  # a constant prediction ranks no one, as in spearman()
                continue
            rank = model.centred_ranks(sizes)
            spearmans.append(float(_dot(drawn, actual_rank * rank) / np.sqrt(actual_spread * _dot(drawn, rank**2))))
        return ginis, spearmans

    # The resamples drawn in order, scored side by side: the same numbers as one by one.
    kept = [s for s in map_resamples(scores, len(actual), n_boot, np.random.default_rng(random_state)) if s is not None]
    ginis, spearmans = [g for g, _ in kept], [r for _, r in kept]
    if not ginis:
        raise ValueError("bootstrap_scores: nothing could be ranked on any resample")
    return {"gini": pd.DataFrame(ginis, columns=names), "spearman": pd.DataFrame(spearmans, columns=names)}


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of a * b without BLAS: a BLAS dot of 10,000 values wakes its threads, which cost more
    than the sum (measured: 2.2 of the 2.6 s that 300 resamples of 4 models took on 2 busy cores)."""
    return float(np.einsum("i,i->", a, b))


class _Sorted:
    """One ranking (``by``: predictions, or the actuals themselves) sorted once, highest first, with its
    blocks of equal values; a resample is given as ``drawn``, how many times it drew each row.

    ``gini``: :func:`gini` of the resample (a drawn row counts ``drawn`` times; copies of a row tie, so
    they sit in one block, as in :func:`gini`). ``centred_ranks``: each row's average rank within the
    resample (as ``rankdata``) minus the mean rank (n + 1) / 2, so Spearman = the drawn-weighted
    correlation of two such columns; ranks are halves, their sums exact.
    """

    def __init__(self, by: np.ndarray, actual: np.ndarray):
        self.order = np.argsort(-by, kind="stable")
        ranked = by[self.order]
        self.block = np.r_[0, np.cumsum(ranked[1:] != ranked[:-1])]  # in sorted order
        self.block_of_row = np.empty(len(by), dtype="int64")
        self.block_of_row[self.order] = self.block
        self.actual_sorted = actual[self.order]

    def sizes(self, drawn: np.ndarray) -> np.ndarray:
        """How many rows the resample drew in each block (0 for a block it missed)."""
        return np.bincount(self.block, weights=drawn[self.order])

    def gini(self, drawn: np.ndarray, sizes: np.ndarray) -> float:
        """:func:`gini` of the resample (``sizes``: :meth:`sizes` of the same ``drawn``)."""
        amounts = np.bincount(self.block, weights=drawn[self.order] * self.actual_sorted)
        block_share = amounts / amounts.sum()
        before = np.r_[0.0, np.cumsum(block_share)[:-1]]
        area = np.sum(sizes * before + block_share * (sizes + 1) / 2)
        n = sizes.sum()
        return float(area / n - (n + 1) / (2 * n))

    def centred_ranks(self, sizes: np.ndarray) -> np.ndarray:
        """Each row's average rank in the resample minus the mean rank (``sizes``: :meth:`sizes`)."""
        n = sizes.sum()
        above = np.cumsum(sizes) - sizes  # drawn rows ranked higher (sorted highest first)
        rank = n - above - (sizes - 1) / 2  # average ascending rank of the block, as rankdata
        return (rank - (n + 1) / 2)[self.block_of_row]


def comparison_table(actual, predictions: dict[str, np.ndarray], references: dict[str, str], n_boot: int = 1000,
                     level: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """One row per model: Gini, Spearman, top-decile capture, RMSE, MAE, decile MAPE, and for each
    reference (label -> model name) the Gini and Spearman gain with its paired-bootstrap interval
    (columns ``gini_gain_vs_<label>``, ``..._low``, ``..._high``; percentiles of the gain over
    :func:`bootstrap_scores`' resamples, the same as :func:`paired_bootstrap` per pair)."""
    missing = [name for name in references.values() if name not in predictions]
    if missing:
        raise ValueError(f"comparison_table: reference model(s) {missing} have no predictions")
    if not 0 < level < 1:
        raise ValueError(f"comparison_table: level must be in (0, 1), got {level}")
    boot = bootstrap_scores(actual, predictions, n_boot, random_state)
    tail = (1 - level) / 2
    points = {name: {**clv_metrics(actual, predicted), "decile_mape": decile_mape(actual, predicted)}
              for name, predicted in predictions.items()}
    rows = []
    for name in predictions:
        row = {"model": name, **points[name]}
        for label, reference in references.items():
            for metric in RANKING_METRICS:
                key = f"{metric}_gain_vs_{label}"
                diffs = boot[metric][name] - boot[metric][reference]
                low, high = np.quantile(diffs, [tail, 1 - tail]) if reference != name else (0.0, 0.0)
                row[key] = points[name][metric] - points[reference][metric]
                row[f"{key}_low"], row[f"{key}_high"] = float(low), float(high)
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_keys(table: pd.DataFrame, prefix: str = "clv") -> dict[str, float]:
    """Flat metric keys of :func:`comparison_table`: :func:`tracking_keys` plus ``clv.decile_mape_test.<m>``
    and every gain with its interval (``clv.gini_gain_vs_naive.<m>``, ``..._low``, ``..._high``).
    An undefined value (a decile MAPE of inf) is left out rather than logged."""
    keys = tracking_keys(table, prefix)
    gains = [c for c in table.columns if "_gain_vs_" in c]
    for _, row in table.iterrows():
        keys[f"{prefix}.decile_mape_test.{row['model']}"] = float(row["decile_mape"])
        keys.update({f"{prefix}.{column}.{row['model']}": float(row[column]) for column in gains})
    return {key: value for key, value in keys.items() if np.isfinite(value)}


def readable_table(table: pd.DataFrame, labels: tuple[str, ...] = ("naive", "btyd")) -> pd.DataFrame:
    """:func:`comparison_table` as text for people: metrics to 4 places, each gain as ``+0.0081 [-0.008, +0.026]``."""
    out = pd.DataFrame({"model": table["model"]})
    if "role" in table.columns:
        out["role"] = table["role"]
    for column, label in (("gini", "Gini"), ("spearman", "Spearman"), ("top_decile_capture", "top-10% capture"),
                          ("decile_mape", "decile MAPE")):
        out[label] = table[column].map("{:.4f}".format)
    for reference in labels:
        for metric in RANKING_METRICS:
            key = f"{metric}_gain_vs_{reference}"
            out[f"d{metric.capitalize()} vs {reference}"] = [
                f"{g:+.4f} [{lo:+.3f}, {hi:+.3f}]" for g, lo, hi in zip(table[key], table[f"{key}_low"],
                                                                         table[f"{key}_high"])]
    return out


def describe_gain(table: pd.DataFrame, model: str, label: str, reference: str, digits: int = 4) -> str:
    """In words: is ``model``'s gain in Gini and Spearman over ``label`` (model ``reference``) real?

    Real means both 95% intervals lie above 0; worse, that one lies below 0; otherwise the test
    customers cannot tell the gain from noise, whatever the sign of the point estimate.
    """
    row = table.set_index("model").loc[model]
    parts, lows, highs = [], [], []
    for metric in RANKING_METRICS:
        key = f"{metric}_gain_vs_{label}"
        lows.append(row[f"{key}_low"])
        highs.append(row[f"{key}_high"])
        low, high = row[f"{key}_low"], row[f"{key}_high"]
        parts.append(f"{metric.capitalize()} {row[key]:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]")
    head = f"{model} vs {label} ({reference}): " + ", ".join(parts) + " (95% paired-bootstrap intervals): "
    if model == reference:
        return head + "the same model."
    if min(lows) > 0:
        return head + "a real gain: both intervals lie above 0."
    if min(highs) < 0:
        return head + "worse: an interval lies below 0."
    verdict = "no evidence of a gain: an interval includes 0, so on these test customers it cannot be told from noise"
    points = [row[f"{metric}_gain_vs_{label}"] for metric in RANKING_METRICS]
    return head + verdict + (" (and a point estimate lies below 0)." if min(points) < 0 else ".")


def plot_gains(table: pd.DataFrame, references: dict[str, str], note: str = ""):
    """Each model's Gini and Spearman gain over each reference, with its 95% interval (from
    :func:`comparison_table`); an interval that crosses 0 is no evidence of a gain."""
    labels = list(references)
    fig, axes = plt.subplots(1, len(labels), figsize=(6 * len(labels), 0.45 * len(table) + 2), sharey=True,
                             squeeze=False)
    positions = np.arange(len(table))
    for ax, label in zip(axes[0], labels):
        for offset, metric, colour in ((-0.17, "gini", "tab:blue"), (0.17, "spearman", "tab:orange")):
            key = f"{metric}_gain_vs_{label}"
            centre = table[key].to_numpy()
            errors = np.vstack([centre - table[f"{key}_low"].to_numpy(), table[f"{key}_high"].to_numpy() - centre])
            ax.errorbar(centre, positions + offset, xerr=errors, fmt="o", color=colour, capsize=3,
                        label=f"{metric.capitalize()} gain")
        ax.axvline(0, color="grey", linewidth=1)
        ax.set_xlabel(f"gain over {label} ({references[label]}), with 95% paired-bootstrap interval")
        ax.set_title(f"vs {label}")
        ax.legend(loc="lower right")
    axes[0][0].set_yticks(positions, table["model"])
    axes[0][0].set_ylabel("model")
    axes[0][0].invert_yaxis()
    fig.suptitle("Test customers: gain in ranking over the references" + (f" ({note})" if note else ""))
    fig.tight_layout()
    return fig
