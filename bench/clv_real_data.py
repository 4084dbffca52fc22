"""The CLV protocol of 04_clv_model on the real transaction logs: every table, every interval.

    LEAD2VALUE_SHARED_DATA=../shared/data .venv/bin/python bench/clv_real_data.py \\
        [--datasets online_retail cdnow] [--windows 7 28] [--trials 20] [--out outputs/clv_real_data]

UCI Online Retail is read from the shared data folder (never copied), CDNOW from inside the
installed ``lifetimes`` package. Settings default to params/base.yaml's (20 tuning trials,
3 folds, 300 trees, 1,000 bootstrap resamples, seed 42). Prints the burn-in decision, the
selection table (training customers only) and the test read-out; writes them as CSV to
``--out``. Asserts nothing: tests/clv/test_real_data.py checks the targets.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from utils.clv import protocol
from utils.clv.metrics import describe_gain, readable_table
from utils.clv.transactions import CDNOW_COLUMNS, cdnow_transactions, transaction_sources
from utils.core.paths import PROJECT_ROOT

ONLINE_RETAIL = "clv/online_retail_2010_2011.parquet"
RETAIL_COLUMNS = {"invoice": "InvoiceNo", "product": "StockCode", "quantity": "Quantity", "timestamp": "InvoiceDate",
                  "unit_price": "UnitPrice", "customer": "CustomerID", "country": "Country"}


def sources(name: str) -> tuple[dict, dict]:
    if name == "online_retail":
        path = Path(os.environ.get("LEAD2VALUE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")) / ONLINE_RETAIL
        return transaction_sources(pd.read_parquet(path), RETAIL_COLUMNS, str(path))
    return transaction_sources(cdnow_transactions(), CDNOW_COLUMNS, "CDNOW_master.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["online_retail", "cdnow"], choices=["online_retail", "cdnow"])
    parser.add_argument("--windows", nargs="+", type=int, default=[7, 28])
    parser.add_argument("--horizon", type=int, default=180)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--rf-trees", type=int, default=300)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "clv_real_data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    for name in args.datasets:
        data, _ = sources(name)
        for window in args.windows:
            label, started = f"{name}_{window}d", time.perf_counter()
            train, history, report = protocol.clv_tables(data, window, args.horizon)
            run = protocol.evaluate(train, history, args.horizon, pd.Timestamp(report["data_start"]),
                                    tuning_trials=args.trials, tuning_folds=args.folds, rf_n_estimators=args.rf_trees,
                                    n_boot=args.boot, random_state=args.seed)
            zero = (run.test[protocol.TARGET] <= 0).mean()
            print(f"\n=== {label}: {len(train):,} customers with a full horizon; training {len(run.train):,} after a "
                  f"{run.burn_in_days}-day burn-in ({run.burn_in_excluded:,} left out), test {len(run.test):,} "
                  f"({zero:.0%} spend nothing); {time.perf_counter() - started:.0f} s")
            if run.burn_in_table is not None:
                print("-- burn-in: time-ordered CV inside the training customers --")
                print(run.burn_in_table.round(4).to_string(index=False))
            print("-- selection: time-ordered CV inside the training customers (score = min of mean gains over naive) --")
            shown = ["model", "role", "cv_gini", "cv_spearman", "cv_gini_gain", "cv_spearman_gain", "cv_score"]
            print(run.selection[shown].round(4).to_string(index=False))
            print("-- test read-out (paired-bootstrap 95% intervals) --")
            print(readable_table(run.results).to_string(index=False))
            for reference, model in (("naive", "naive"), ("btyd", run.reference)):
                print(describe_gain(run.results, run.registered, reference, model))
            for table, suffix in ((run.selection, "selection"), (run.results, "test"), (run.burn_in_table, "burn_in"),
                                  (run.hurdle_tuning, "hurdle_tuning"), (run.enriched_tuning, "products_tuning")):
                if table is not None:
                    table.to_csv(args.out / f"{label}_{suffix}.csv", index=False, float_format="%.6g")
            (args.out / f"{label}_info.json").write_text(json.dumps(
                {"registered": run.registered, "btyd_reference": run.reference, "burn_in_days": run.burn_in_days,
                 "burn_in_excluded": run.burn_in_excluded, "train": len(run.train), "test": len(run.test),
                 "settings": vars(args) | {"out": str(args.out)}}, indent=1))


if __name__ == "__main__":
    main()
