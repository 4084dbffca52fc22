"""Drift: PSI of numeric and categorical features, thresholds, history file and plot."""

from __future__ import annotations

from datetime import UTC, datetime

import matplotlib
import numpy as np
import pandas as pd
import pytest

from utils.scoring import monitoring
from utils.core.contracts import DataContractError

matplotlib.use("Agg")


def test_identical_distributions_have_zero_psi():
    values = pd.Series(np.random.default_rng(0).normal(size=2_000))
    assert monitoring.psi_numeric(values, values) == pytest.approx(0, abs=1e-12)
    levels = pd.Series(["a", "b", "b", None, None, "a"] * 10)
    assert monitoring.psi_categorical(levels, levels) == (pytest.approx(0, abs=1e-12), 0.0)


def test_numeric_psi_matches_hand_computation():
    reference = pd.Series([1.0, 2.0, 3.0, 4.0])  # median edge 2 -> bins (-inf, 2], (2, inf)
    current = pd.Series([1.0, 1.0, 1.0, 4.0])
    expected = (0.75 - 0.5) * np.log(0.75 / 0.5) + (0.25 - 0.5) * np.log(0.25 / 0.5)
    assert monitoring.psi_numeric(reference, current, n_bins=2) == pytest.approx(expected)


def test_numeric_bins_come_from_training_quantiles_and_a_shift_is_caught():
    rng = np.random.default_rng(1)
    train = pd.Series(rng.normal(size=5_000))
    assert monitoring.psi_numeric(train, pd.Series(rng.normal(size=5_000))) < 0.02
    assert monitoring.psi_numeric(train, pd.Series(rng.normal(loc=1.0, size=5_000))) > 0.25
    edges = monitoring.quantile_edges(train, n_bins=4)
    np.testing.assert_allclose(edges, train.quantile([0.25, 0.5, 0.75], interpolation="lower").to_numpy())


def test_few_distinct_values_and_missing_values_get_their_own_bins():
    assert list(monitoring.quantile_edges(pd.Series([1.0, 1.0, 2.0, 3.0] * 10))) == [1.0, 2.0, 3.0]
    reference = pd.Series([1.0, 2.0, 3.0, 4.0])
    assert monitoring.psi_numeric(reference, pd.Series([1.0, np.nan, np.nan, 4.0])) > 0.25
    with pytest.raises(ValueError, match="n_bins"):
        monitoring.quantile_edges(reference, n_bins=1)


def test_unseen_levels_land_in_their_own_bin():
    reference = pd.Series(["a"] * 50 + ["b"] * 50)
    psi, unseen = monitoring.psi_categorical(reference, pd.Series(["a"] * 50 + ["zzz"] * 50))
    assert unseen == pytest.approx(0.5)
    assert psi > 1.0  # half the rows in a bin the training data never had


def test_long_tail_of_levels_is_not_mistaken_for_drift():
    rng = np.random.default_rng(3)
    # 20 common cities and a long tail of one-off towns, as in real lead data
    cities = np.r_[rng.choice([f"city{i}" for i in range(20)], 9_000), [f"town{i}" for i in range(1_000)]]
    shuffled = cities[rng.permutation(10_000)]
    reference, current = pd.Series(shuffled[:8_000]), pd.Series(shuffled[8_000:])
    psi, unseen = monitoring.psi_categorical(reference, current)
    assert unseen > 0.05  # many towns of the new sample were never seen...
    assert psi < 0.05  # ...but no more than the reference's own tail predicts
    short_tail = pd.Series(rng.choice(["a", "b", "c"], 5_000))
    assert monitoring.psi_categorical(short_tail, pd.Series(["a"] * 95 + ["new"] * 5))[0] > 0.25


def test_rare_levels_share_one_bin():
    reference = pd.Series(["big"] * 980 + [f"r{i}" for i in range(10)] * 2)  # ten levels at 0.2% each
    current = pd.Series(["big"] * 98 + ["r1", "r1"])  # same rare share, another mix inside it
    assert monitoring.psi_categorical(reference, current)[0] == pytest.approx(0, abs=1e-9)
    assert monitoring.psi_categorical(reference, current, rare_share=0.0)[0] > 0.01


def test_status_thresholds():
    assert [monitoring.drift_status(v, 0.1, 0.25) for v in (0.05, 0.1, 0.2, 0.26)] == ["ok", "ok", "warn", "fail"]
    with pytest.raises(ValueError, match="thresholds"):
        monitoring.drift_status(0.1, 0.3, 0.2)


def test_psi_table_infers_kind_and_sorts_worst_first():
    rng = np.random.default_rng(2)
    train = pd.DataFrame(
        {
            "x": rng.normal(size=500),
            "tier": rng.integers(1, 4, 500).astype(float),
            "platform": rng.choice(["a", "b"], 500),
            "flag": rng.random(500) < 0.5,
        }
    )
    new = train.assign(x=train["x"] + 2, platform="c")
    table = monitoring.psi_table(train, new, psi_warn=0.1, psi_fail=0.25)
    kinds = dict(zip(table["feature"], table["kind"]))
    assert kinds == {"x": "numeric", "tier": "numeric", "platform": "categorical", "flag": "categorical"}
    assert table["psi"].is_monotonic_decreasing
    assert set(table.loc[table["feature"].isin(["x", "platform"]), "status"]) == {"fail"}
    assert table.set_index("feature").loc["tier", "status"] == "ok"
    assert table.set_index("feature").loc["platform", "unseen_share"] == 1.0


def test_psi_table_missing_column_is_a_contract_error():
    with pytest.raises(DataContractError, match=r"new.parquet: column 'x': missing"):
        monitoring.psi_table(pd.DataFrame({"x": [1.0]}), pd.DataFrame({"y": [1.0]}), file="new.parquet")


def test_check_drift_raises_only_past_fail():
    ok = pd.DataFrame({"feature": ["a"], "kind": ["numeric"], "psi": [0.2], "unseen_share": [0.0], "status": ["warn"]})
    monitoring.check_drift({"leads": ok})
    failed = ok.assign(psi=0.4, status="fail")
    with pytest.raises(monitoring.DriftError, match=r"leads\.a \(PSI 0\.400\)"):
        monitoring.check_drift({"leads": failed})
    assert monitoring.drift_banner_html({"leads": ok.assign(status="ok")}, 0.1, 0.25) == ""
    assert "WARNING" in monitoring.drift_banner_html({"leads": ok}, 0.1, 0.25)
    assert "FAILURE" in monitoring.drift_banner_html({"leads": failed}, 0.1, 0.25)


def _table(psi: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": list(psi),
            "kind": "numeric",
            "psi": list(psi.values()),
            "unseen_share": 0.0,
            "status": [monitoring.drift_status(v, 0.1, 0.25) for v in psi.values()],
        }
    )


def test_append_history_one_line_per_run_and_widens_for_new_features(tmp_path):
    path = tmp_path / "monitoring" / "drift_history.csv"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    first = monitoring.history_row(
        "run-1", {"leads": _table({"a": 0.05})}, recorded_at=when, **{"leads.psi_score": 0.01}
    )
    assert (
        first["leads.psi_max"] == 0.05
        and first["leads.status"] == "ok"
        and first["recorded_at"].startswith("2024-01-01")
    )
    monitoring.append_history(path, first)
    monitoring.append_history(path, monitoring.history_row("run-2", {"leads": _table({"a": 0.15})}, recorded_at=when))
    history = monitoring.append_history(
        path, monitoring.history_row("run-3", {"leads": _table({"a": 0.3, "b": 0.0})}, recorded_at=when)
    )
    on_disk = pd.read_csv(path)
    assert list(on_disk["run"]) == ["run-1", "run-2", "run-3"] == list(history["run"])
    assert list(on_disk["leads.status"]) == ["ok", "warn", "fail"]
    assert on_disk["leads.psi.b"].isna().tolist() == [True, True, False]


def test_plot_drift_history_draws_thresholds():
    history = pd.DataFrame({"run": ["r1", "r2"], "leads.psi_max": [0.05, 0.3], "leads.psi_score": [0.01, 0.02]})
    fig = monitoring.plot_drift_history(history, 0.1, 0.25)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.lines) == 4  # two series and two threshold lines
    with pytest.raises(ValueError, match="no PSI column"):
        monitoring.plot_drift_history(pd.DataFrame({"run": ["r1"]}), 0.1, 0.25)


def test_plot_score_shift_labels_both_samples():
    fig = monitoring.plot_score_shift(pd.Series([0.1, 0.2, 0.3]), pd.Series([0.5, 0.6]), "Lead scores", "P(complete)")
    ax = fig.axes[0]
    assert ax.get_title() == "Lead scores" and ax.get_xlabel() == "P(complete)" and "density" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training (3)", "new (2)"]
