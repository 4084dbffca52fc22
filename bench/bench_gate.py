"""Benchmark: how much noise the promotion gate sees, to justify its margins. Prints figures; asserts nothing.

For the lead model (AUC) and the CLV model (normalized Gini), on synthetic data of the
smoke and default sizes, the gate's paired bootstrap interval of (candidate - champion)
for two candidates against the same champion on the same holdout:
  * "retrain": the same model refitted with another seed on 90% of the training rows
    (as good, by construction: what a rerun on fresh data looks like);
  * "weaker": a clearly weaker model (logistic regression for leads; for CLV the naive rule,
    first-window revenue as the score);
and, for comparison, the width of the unpaired interval of the champion's metric alone.
The gate promotes when the interval's lower end is above -margin (0.01 AUC, 0.02 Gini).

    python bench/bench_gate.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from utils.clv.features import TARGET, build_clv_dataset, feature_columns
from utils.clv.metrics import normalized_gini
from utils.clv.model import HurdleCLV, baseline_predictions
from utils.clv.model import time_split as clv_time_split
from utils.clv.synth import generate_clv
from utils.core.gate import paired_bootstrap
from utils.leads import cleaning
from utils.leads import model as lm
from utils.leads.synth import generate_leads

N_BOOTSTRAP = 1000
MARGINS = {"AUC": 0.01, "Gini": 0.02}


def unpaired_width(y, scores, metric, seed=42) -> float:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(N_BOOTSTRAP):
        idx = rng.integers(0, len(y), len(y))
        try:
            values.append(metric(y[idx], scores[idx]))
        except ValueError:
            continue
    low, high = np.percentile(values, [2.5, 97.5])
    return float(high - low)


def subsample(n_rows: int, seed: int = 7) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n_rows, int(0.9 * n_rows), replace=False))


def lead_rows(n_leads: int) -> list[dict]:
    clean, _ = cleaning.clean_leads(generate_leads(n_leads, 42))
    train, test = lm.time_split(clean, 0.8)
    X_train, y_train = lm.split_xy(train)
    X_test, y_test = lm.split_xy(test)
    champion = lm.positive_proba(lm.build_lead_pipeline(random_state=1).fit(X_train, y_train), X_test)
    part = subsample(len(X_train))
    candidates = {
        "retrain": lm.build_lead_pipeline(random_state=2).fit(X_train.iloc[part], y_train[part]),
        "weaker": lm.build_lead_pipeline(family="lr").fit(X_train, y_train),
    }
    width = unpaired_width(y_test, champion, lm.roc_auc)
    return [row("leads", "AUC", n_leads, y_test, lm.positive_proba(model, X_test), champion, lm.roc_auc, name, width)
            for name, model in candidates.items()]


def clv_rows(n_customers: int) -> list[dict]:
    sources = generate_clv(n_customers, 42)
    customers, _, _ = build_clv_dataset(sources["customers"], sources["web_actions"], sources["campaigns"],
                                        sources["purchases"], feature_window_days=28, horizon_days=180)
    features = feature_columns(customers)
    train, test = clv_time_split(customers, 0.3)
    X_train, y_train = train[features], train[TARGET].to_numpy()
    X_test, y_test = test[features], test[TARGET].to_numpy()
    champion = HurdleCLV(random_state=1).fit(X_train, y_train).predict(X_test)
    part = subsample(len(X_train))
    candidates = {
        "retrain": HurdleCLV(random_state=2).fit(X_train.iloc[part], y_train[part]).predict(X_test),
        "weaker": baseline_predictions(X_test, y_train)["naive"],
    }
    width = unpaired_width(y_test, champion, normalized_gini)
    return [row("clv", "Gini", n_customers, y_test, scores, champion, normalized_gini, name, width)
            for name, scores in candidates.items()]


def row(data: str, metric_name: str, size: int, y, candidate, champion, metric, name: str, width: float) -> dict:
    paired = paired_bootstrap(y, candidate, champion, metric, N_BOOTSTRAP, random_state=42)
    return {"data": data, "size": size, "holdout rows": len(y), "candidate": name,
            "difference": round(paired["estimate"], 4), "95% low": round(paired["low"], 4),
            "95% high": round(paired["high"], 4), "paired width": round(paired["high"] - paired["low"], 4),
            "unpaired width": round(width, 4),
            "promoted": paired["low"] > -MARGINS[metric_name]}


def main() -> None:
    rows = []
    for n in (6_000, 20_000):  # smoke, notebook default
        rows += lead_rows(n)
    for n in (2_000, 5_000):
        rows += clv_rows(n)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))
    print(f"margins: {MARGINS}; {N_BOOTSTRAP} paired resamples")


if __name__ == "__main__":
    main()
