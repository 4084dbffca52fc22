"""Drift: PSI against a model's reference bins, levels that account for the batch size, history and plots.

The two checks the scoring job stands on: batches of 30, 300 and 3,000 rows drawn from the
training rows themselves fail at most once in 100 draws, and a shift of the channel mix as
large as CodePro's latest months (synthetic here, the real months in the real-data test) fails
at every batch size from 300 up.
"""

from __future__ import annotations

from datetime import UTC, datetime

import matplotlib
import numpy as np
import pandas as pd
import pytest

from utils.core import drift
from utils.core.contracts import DataContractError
from utils.leads import model as lm
from utils.leads.synth import generate_leads
from utils.scoring import monitoring

matplotlib.use("Agg")

BATCH_SIZES = (30, 300, 3000)


@pytest.fixture(scope="module")
def training_part() -> pd.DataFrame:
    """The raw model inputs of a time-ordered training part, with a score that depends on them."""
    train, _ = lm.time_split(generate_leads(20_000, 11), 0.8)
    X = train[list(lm.MODEL_INPUTS)].reset_index(drop=True)
    noise = np.random.default_rng(0).normal(size=len(X))
    X["p_app_complete"] = 1 / (1 + np.exp(-(0.3 * X["total_leads_droppped"].fillna(0) - 1 + noise)))
    return X


@pytest.fixture(scope="module")
def reference(training_part) -> dict:
    return drift.build_reference(training_part)


def fail_count(reference: dict, batches) -> tuple[int, int]:
    """(batches that fail, batches in all), with the levels of their size (computed once per size)."""
    levels, fails, total = {}, 0, 0
    for batch in batches:
        if len(batch) not in levels:
            levels[len(batch)] = monitoring.drift_thresholds(reference, len(batch), seed=1)
        table = monitoring.drift_table(reference, batch, levels[len(batch)])
        fails += monitoring.worst_status(table) == "fail"
        total += 1
    return fails, total


# --- PSI --------------------------------------------------------------------------------------


def test_psi_matches_hand_computation_and_floors_empty_bins():
    expected = (0.75 - 0.5) * np.log(0.75 / 0.5) + (0.25 - 0.5) * np.log(0.25 / 0.5)
    assert monitoring.psi_from_shares([0.5, 0.5], [0.75, 0.25]) == pytest.approx(expected)
    assert monitoring.psi_from_shares([0.5, 0.5], [0.5, 0.5]) == 0.0
    floored = (monitoring.SHARE_FLOOR - 0.05) * np.log(monitoring.SHARE_FLOOR / 0.05)
    assert monitoring.psi_from_shares([0.95, 0.05], [1.0, 0.0]) == pytest.approx(
        (1.0 - 0.95) * np.log(1 / 0.95) + floored)
    rows = monitoring.psi_from_shares([0.5, 0.5], np.array([[0.5, 0.5], [0.75, 0.25]]))
    np.testing.assert_allclose(rows, [0.0, expected])


def test_column_psi_against_reference_bins():
    spec = drift.column_reference(pd.Series([1.0, 2.0, 3.0, 4.0]), n_bins=2)  # bins <= 2, > 2, missing
    assert monitoring.column_psi(spec, pd.Series([1.0, 4.0])) == pytest.approx(0.0, abs=1e-12)
    assert monitoring.column_psi(spec, pd.Series([1.0, 1.0, 1.0, 4.0])) > 0.1
    assert monitoring.column_psi(spec, pd.Series([], dtype=float)) == 0.0


def test_null_psi_shrinks_with_the_batch_size():
    rng = np.random.default_rng(0)
    shares = [0.5, 0.3, 0.15, 0.05]
    small, large = monitoring.null_psi(shares, 30, 4000, rng), monitoring.null_psi(shares, 3000, 4000, rng)
    assert small.mean() > 20 * large.mean()
    # n * PSI is about chi-square with bins - 1 degrees of freedom when every bin is well filled
    assert 3000 * large.mean() == pytest.approx(3, rel=0.15)


def test_familywise_quantile_holds_the_rate_on_fresh_batches():
    rng = np.random.default_rng(1)
    shares = [[0.5, 0.5], [0.9, 0.1], [0.4, 0.3, 0.2, 0.1], [0.999, 0.001]]
    simulate = lambda: np.vstack([monitoring.null_psi(s, 100, 20_000, rng) for s in shares])  # noqa: E731
    tail, levels = monitoring.familywise_quantile(simulate(), 0.05)
    assert 0.05 / len(shares) <= tail <= 0.05  # never stricter than Bonferroni, never looser than one column
    fresh = simulate()
    assert np.mean((fresh > levels[:, None]).any(axis=0)) <= 0.06


def test_levels_follow_the_batch_size_and_keep_the_rules_of_thumb_for_large_batches(reference):
    small = monitoring.drift_thresholds(reference, 30, seed=1).set_index("feature")
    large = monitoring.drift_thresholds(reference, 20_000, seed=1).set_index("feature")
    assert (small["fail_at"] >= large["fail_at"]).all()
    assert small.loc["first_utm_medium_c", "fail_at"] > 1.0
    assert large["fail_at"].between(0.25, 0.26).all() and large["warn_at"].between(0.1, 0.11).all()
    assert (small["warn_at"] <= small["fail_at"]).all()
    again = monitoring.drift_thresholds(reference, 30, seed=1).set_index("feature")
    pd.testing.assert_frame_equal(small, again)  # seeded: the same batch size gets the same levels


def test_level_arguments_are_checked(reference):
    with pytest.raises(ValueError, match="psi_warn <= psi_fail"):
        monitoring.drift_thresholds(reference, 10, psi_warn=0.3, psi_fail=0.2)
    with pytest.raises(ValueError, match="alpha_fail <= alpha_warn"):
        monitoring.drift_thresholds(reference, 10, alpha_warn=0.01, alpha_fail=0.05)
    with pytest.raises(ValueError, match="draws"):
        monitoring.drift_thresholds(reference, 10, draws=10)
    empty = monitoring.drift_thresholds(reference, 0)
    assert (empty["fail_at"] == 0.25).all()


# --- the two checks the scoring job stands on -----------------------------------------------


@pytest.mark.parametrize("rows", BATCH_SIZES)
def test_batches_from_the_training_rows_fail_at_most_once_in_100(training_part, reference, rows):
    rng = np.random.default_rng(rows)
    batches = (training_part.iloc[rng.choice(len(training_part), rows, replace=False)] for _ in range(100))
    fails, total = fail_count(reference, batches)
    assert total == 100 and fails <= 1, f"{fails} of 100 batches of {rows} training rows failed"


def test_the_rule_of_thumb_alone_would_fail_most_small_batches_of_training_rows(training_part, reference):
    """What the batch-size-aware levels fix: with fixed levels, 30 training rows fail nearly every time."""
    rng = np.random.default_rng(30)
    fixed = monitoring.drift_thresholds(reference, 0)  # no batch: the rules of thumb alone
    fails = sum(monitoring.worst_status(monitoring.drift_table(
        reference, training_part.iloc[rng.choice(len(training_part), 30, replace=False)], fixed)) == "fail"
        for _ in range(100))
    assert fails > 90


def shifted_mix(training_part: pd.DataFrame, column: str) -> np.ndarray:
    """Row weights that swap the shares of the column's two most common levels and make the rest 5 times as likely."""
    counts = training_part[column].value_counts()
    first, second = counts.index[:2]
    weight = pd.Series(5.0, index=counts.index)
    weight[first], weight[second] = counts[second] / counts[first], counts[first] / counts[second]
    rows = training_part[column].map(weight).to_numpy()
    return rows / rows.sum()


def test_a_channel_mix_shift_as_large_as_codepros_latest_months_fails_from_300_rows(training_part, reference):
    column = "first_utm_medium_c"
    weights = shifted_mix(training_part, column)
    rng = np.random.default_rng(5)
    population = training_part.iloc[rng.choice(len(training_part), 200_000, p=weights)]
    size = monitoring.column_psi(reference["columns"][column], population[column])
    assert 0.5 <= size <= 0.9, f"the synthetic shift has PSI {size:.2f}; CodePro's latest months about 0.6"
    for rows in (300, 1000, 3000):
        batches = (training_part.iloc[rng.choice(len(training_part), rows, p=weights)] for _ in range(100))
        fails, _ = fail_count(reference, batches)
        assert fails == 100, f"only {fails} of 100 shifted batches of {rows} rows failed"


@pytest.mark.real_data
def test_the_real_latest_codepro_months_fail_from_300_rows(shared_data):
    from utils.leads.schema import read_leads

    leads = read_leads(shared_data / "codepro" / "leads_labelled_25k.csv")
    train, latest = lm.time_split(leads, 0.8)
    reference = drift.build_reference(train[list(lm.MODEL_INPUTS)])
    rng = np.random.default_rng(0)
    for rows in (300, 1000, 3000):
        batches = (latest.iloc[rng.choice(len(latest), rows, replace=False)] for _ in range(100))
        fails, _ = fail_count(reference, batches)
        assert fails == 100, f"only {fails} of 100 batches of {rows} of the latest real leads failed"
    rng = np.random.default_rng(1)
    batches = (train.iloc[rng.choice(len(train), 300, replace=False)] for _ in range(100))
    assert fail_count(reference, batches)[0] <= 1


# --- tables, verdicts, banner -----------------------------------------------------------------


def test_drift_table_statuses_worst_first_and_a_missing_column_named(training_part, reference):
    batch = training_part.sample(3000, random_state=0).assign(first_platform_c="LevelNew")
    levels = monitoring.drift_thresholds(reference, len(batch), seed=1)
    table = monitoring.drift_table(reference, batch, levels)
    assert list(table.columns) == monitoring.TABLE_COLUMNS
    assert table.iloc[0]["feature"] == "first_platform_c" and table.iloc[0]["status"] == "fail"
    assert table.iloc[0]["unseen_share"] == 1.0
    assert list(table["status"].map(monitoring.STATUS_ORDER.index)) == sorted(
        table["status"].map(monitoring.STATUS_ORDER.index), reverse=True)
    assert monitoring.worst_status(table) == "fail" and monitoring.worst_status({"a": table.iloc[1:]}) in ("ok", "warn")
    assert monitoring.failures({"leads": table})[0].startswith("leads.first_platform_c (PSI ")
    with pytest.raises(DataContractError, match=r"new.csv: column 'city_mapped': missing"):
        monitoring.drift_table(reference, batch.drop(columns="city_mapped"), levels, file="new.csv")


def _table(psi: dict[str, float], fail_at: float = 0.25) -> pd.DataFrame:
    return pd.DataFrame({"feature": list(psi), "kind": "numeric", "psi": list(psi.values()), "unseen_share": 0.0,
                         "warn_at": 0.1, "fail_at": fail_at,
                         "status": ["fail" if v > fail_at else "warn" if v > 0.1 else "ok" for v in psi.values()]})


def test_banner_only_when_something_moved_and_it_says_what_follows():
    assert monitoring.drift_banner_html({"leads": _table({"a": 0.05})}) == ""
    warn = monitoring.drift_banner_html({"leads": _table({"a": 0.2})})
    assert "WARNING" in warn and "fail above 0.250" in warn
    fail = monitoring.drift_banner_html({"leads": _table({"a": 0.4})}, "the job is <held>")
    assert "FAILURE" in fail and "the job is &lt;held&gt;" in fail


def test_append_history_one_line_per_run_and_widens_for_new_features(tmp_path):
    path = tmp_path / "monitoring" / "drift_history.csv"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    first = monitoring.history_row("run-1", {"leads": _table({"a": 0.05})}, recorded_at=when, **{"leads.rows": 30})
    assert first["leads.psi_max"] == 0.05 and first["leads.fail_ratio_max"] == pytest.approx(0.2)
    assert first["leads.status"] == "ok" and first["recorded_at"].startswith("2024-01-01")
    monitoring.append_history(path, first)
    monitoring.append_history(path, monitoring.history_row("run-2", {"leads": _table({"a": 0.15})}, recorded_at=when))
    history = monitoring.append_history(
        path, monitoring.history_row("run-3", {"leads": _table({"a": 0.3, "b": 0.0})}, recorded_at=when))
    on_disk = pd.read_csv(path)
    assert list(on_disk["run"]) == ["run-1", "run-2", "run-3"] == list(history["run"])
    assert list(on_disk["leads.status"]) == ["ok", "warn", "fail"]
    assert on_disk["leads.psi.b"].isna().tolist() == [True, True, False]


def test_plot_drift_history_draws_the_fail_line():
    history = pd.DataFrame({"run": ["r1", "r2"], "leads.fail_ratio_max": [0.2, 1.3], "customers.fail_ratio_max": [0.1, 0.2]})
    fig = monitoring.plot_drift_history(history)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and "PSI" in ax.get_ylabel()
    assert len(ax.lines) == 3  # two tables and the fail line
    with pytest.raises(ValueError, match="fail_ratio_max"):
        monitoring.plot_drift_history(pd.DataFrame({"run": ["r1"]}))


def test_plot_binned_shift_shows_both_shares_per_bin():
    spec = drift.column_reference(pd.Series(np.linspace(0, 1, 100)), n_bins=4)
    fig = monitoring.plot_binned_shift(spec, pd.Series([0.1, 0.9, 0.95]), "Lead scores", "P(complete)")
    ax = fig.axes[0]
    assert ax.get_title() == "Lead scores" and ax.get_xlabel() == "P(complete)" and "share" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training part", "new (3)"]
    assert len(ax.patches) == 2 * 4  # four bins with rows (the empty missing-value bin is left out)
