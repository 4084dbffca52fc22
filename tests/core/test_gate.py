"""The gate's rules, with plain arrays: which rule decides, what is promoted, what a run serves."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from utils.core import gate
from utils.core.gate import Champion, GateRule, Holdout, Source

SYNTH = Source(gate.SYNTHETIC, "utils.leads.synth.generate_leads", "aa", "synthetic leads")
MINE = Source(gate.USER, "/data/leads.csv", "bb", "your file leads.csv")
OTHER_FILE = Source(gate.USER, "/data/other.csv", "cc", "your file other.csv")
UNTRACED = Source(gate.UNKNOWN)


def rule(**overrides):
    settings = {"metric_name": "auc", "metric": roc_auc_score, "predict": lambda m, X: m, "margin": 0.01,
                "min_rows": 100, "min_rows_parameter": "min_holdout_leads", "n_bootstrap": 200, "random_state": 0}
    return GateRule(**{**settings, **overrides})


def holdout(n=2000, seed=0):
    """Outcomes, a good score, a score as good with its own noise, and a clearly worse one (same rows)."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (signal + rng.normal(size=n) > 0).astype(int)
    good = signal + rng.normal(scale=0.3, size=n)
    same = good + rng.normal(scale=0.05, size=n)  # another fit of the same model: tiny differences row by row
    worse = signal + rng.normal(scale=1.5, size=n)
    X = pd.DataFrame({"x": signal})
    return Holdout(X, y, "latest 20% of rows", dates=pd.date_range("2022-01-01", periods=n, freq="h")), good, same, worse


def test_paired_bootstrap_is_much_narrower_than_two_separate_intervals():
    h, good, same, _ = holdout()
    paired = gate.paired_bootstrap(h.y, same, good, roc_auc_score, 300, random_state=1)
    assert paired["low"] < paired["estimate"] < paired["high"] and paired["resamples"] == 300
    # the unpaired interval of one AUC alone, at the same level
    rng = np.random.default_rng(1)
    aucs = [roc_auc_score(h.y[i], good[i]) for i in (rng.integers(0, len(h.y), len(h.y)) for _ in range(300))]
    assert paired["high"] - paired["low"] < 0.5 * (np.percentile(aucs, 97.5) - np.percentile(aucs, 2.5))
    flipped = gate.paired_bootstrap(h.y, same, good, roc_auc_score, 300, random_state=1, higher_is_better=False)
    assert flipped["estimate"] == pytest.approx(-paired["estimate"])


def test_paired_bootstrap_refuses_mismatched_rows_and_undefined_metrics():
    with pytest.raises(ValueError, match="3 outcomes, 2 and 3 predictions"):
        gate.paired_bootstrap([0, 1, 1], [0.1, 0.2], [0.1, 0.2, 0.3], roc_auc_score)
    def one_class_only(y, scores):
        raise ValueError("only one class in this resample")

    with pytest.raises(ValueError, match="undefined on 50 of 50 resamples of 2 rows: too few rows"):
        gate.paired_bootstrap([0, 1], [0.1, 0.9], [0.2, 0.8], one_class_only, n_bootstrap=50)


def test_a_candidate_as_good_as_the_champion_is_promoted_a_worse_one_is_not():
    h, good, same, worse = holdout()
    tie = gate.decide(SYNTH, same, h, rule(), Champion("3", SYNTH, good))
    assert tie.promote and tie.rule == "paired_comparison" and tie.serves == "candidate"
    assert tie.difference["low"] > -0.01 and "not worse than champion version 3 beyond the margin 0.01" in tie.reason
    loss = gate.decide(SYNTH, worse, h, rule(), Champion("3", SYNTH, good))
    assert not loss.promote and loss.serves_champion and loss.difference["high"] < 0
    assert loss.champion_score == pytest.approx(roc_auc_score(h.y, good)) and "may be worse" in loss.reason


def test_a_small_holdout_cannot_promote_a_point_estimate_that_is_only_noise():
    """Issue 11, point 5: better on a 7-row holdout is no evidence; on a small holdout the interval keeps the
    champion unless the data rule out a loss beyond the margin."""
    h, good, _, _ = holdout(n=7, seed=3)
    tiny = gate.decide(MINE, good, h, rule(min_rows=100), None)
    assert not tiny.promote and tiny.rule == "too_little_evidence" and tiny.serves == "candidate"
    assert "holdout of 7 rows is below min_holdout_leads=100" in tiny.reason
    small, good, _, _ = holdout(n=150, seed=4)
    rival = good + np.random.default_rng(9).normal(scale=0.4, size=150)
    verdict = gate.decide(SYNTH, rival, small, rule(margin=0.0), Champion("2", SYNTH, good))
    assert verdict.score > verdict.champion_score, "better on the point estimate ..."
    assert verdict.difference["low"] < 0 < verdict.difference["high"], "... inside the noise of 150 rows"
    assert not verdict.promote and verdict.serves_champion


def test_like_with_like_user_data_replaces_synthetic_synthetic_never_replaces_user():
    """Issue 11, point 3: a model trained on your data is never judged against the demo model, nor the reverse."""
    h, good, _, worse = holdout()
    mine = gate.decide(MINE, worse, h, rule(), Champion("4", SYNTH, good))
    assert mine.promote and mine.rule == "user_replaces_synthetic"
    assert "champion scores" in mine.reason, "the synthetic champion's score on the same rows is reported"
    demo = gate.decide(SYNTH, good, h, rule(), Champion("4", MINE, worse))
    assert not demo.promote and demo.rule == "synthetic_never_replaces" and demo.serves == "candidate"
    assert "was trained on your data" in demo.reason and "never replaces it" in demo.reason
    untraced = gate.decide(SYNTH, good, h, rule(), Champion("4", UNTRACED, None, "it cannot be loaded"))
    assert not untraced.promote and "cannot be traced" in untraced.reason
    assert gate.decide(MINE, worse, h, rule(), Champion("4", UNTRACED, good)).rule == "user_replaces_untraced"


def test_an_unscorable_champion_is_replaced_only_under_the_upgrade_rule():
    """Issue 11, point 5: a champion that cannot be scored is never replaced merely because it could not be compared."""
    h, good, _, _ = holdout()
    upgrade = gate.decide(MINE, good, h, rule(), Champion("5", MINE, None, "it cannot be loaded: ModuleNotFoundError"))
    assert upgrade.promote and upgrade.rule == "upgrade" and "same data source" in upgrade.reason
    renamed = Source(gate.USER, "/elsewhere/leads.csv", "bb")  # the same bytes moved: still the same source
    assert gate.decide(renamed, good, h, rule(), Champion("5", MINE, None, "x")).rule == "upgrade"
    other = gate.decide(MINE, good, h, rule(), Champion("5", OTHER_FILE, None, "it needs columns this holdout lacks: z"))
    assert not other.promote and other.rule == "not_comparable" and other.serves == "candidate"
    assert "not replaced merely because it could not be compared" in other.reason
    synthetic = gate.decide(SYNTH, good, h, rule(), Champion("5", SYNTH, None, "it cannot be loaded"))
    assert synthetic.promote and synthetic.rule == "upgrade"


def test_no_champion_yet_is_promoted_with_enough_rows():
    h, good, _, _ = holdout()
    first = gate.decide(SYNTH, good, h, rule(), None)
    assert first.promote and first.rule == "no_champion" and first.champion_score is None
    assert first.score == pytest.approx(roc_auc_score(h.y, good))


def test_lower_is_better_metrics_flip_the_comparison():
    h, _, _, _ = holdout()
    y = np.asarray(h.y, dtype=float)
    squared = lambda actual, predicted: float(np.mean((actual - predicted) ** 2))
    close, far = y + np.random.default_rng(1).normal(scale=0.1, size=len(y)), y + 0.8
    lower = rule(metric=squared, higher_is_better=False, margin=0.0)
    assert gate.decide(SYNTH, close, Holdout(h.X, y, "all"), lower, Champion("1", SYNTH, far)).promote
    assert not gate.decide(SYNTH, far, Holdout(h.X, y, "all"), lower, Champion("1", SYNTH, close)).promote


def test_holdout_describes_itself_and_the_rule_refuses_nonsense():
    h, _, _, _ = holdout(n=48)
    described = h.describe()
    assert described["rows"] == 48 and described["period"] == "2022-01-01 .. 2022-01-02"
    assert described["sha256"] == Holdout(h.X.copy(), list(h.y), "other words").sha256
    assert described["sha256"] != Holdout(h.X, 1 - h.y, "flipped").sha256
    with pytest.raises(ValueError, match="min_holdout_leads must be >= 1"):
        rule(min_rows=0)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        rule(margin=-0.1)
    with pytest.raises(ValueError, match="unknown data kind 'demo'"):
        Source("demo")
    assert not UNTRACED.same_source(UNTRACED) and SYNTH.same_source(Source(gate.SYNTHETIC, "older generator"))
