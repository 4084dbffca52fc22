"""Scoring throughput: registered pyfunc models vs the raw models, and Spark local.

    .venv/bin/python bench/bench_scoring.py                 # 10^5 and 10^6 rows, Spark included
    .venv/bin/python bench/bench_scoring.py --rows 100000 --no-spark

Prints rows per second for each path and the ratios; it asserts nothing about
wall time. Uses the project's registered champions (``lead_scoring``, ``clv``)
when they exist and the run folder has rows to score (``--run-dir``), else it
trains small stand-in models on synthetic data in a throwaway MLflow store, and
says which it used. Each timing is the best of ``--repeats`` runs, after one
warm-up call.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.core import paths, registry, tracking
from utils.core.io import read_parquet
from utils.core.serving import unwrap
from utils.scoring import predict as scoring
from utils.scoring import spark as spark_scoring

LEAD_CATEGORICAL = ["first_platform_c", "first_utm_medium_c", "first_utm_source_c"]


def time_paths(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each call; calls take turns so a burst of machine load hits all of them alike."""
    for call in calls.values():
        call()  # warm-up: lazy imports, caches, thread pools
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# --- models and rows ---------------------------------------------------------------------------


def synthetic_leads(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "city_tier": rng.choice([1.0, 2.0, 3.0], n),
            "first_platform_c": rng.choice(["Level0", "Level3", "Level7", "others"], n).astype(object),
            "first_utm_medium_c": rng.choice(["Level0", "Level2", "Level33", "Level4", "others"], n).astype(object),
            "first_utm_source_c": rng.choice(["Level0", "Level2", "Level4", "others"], n).astype(object),
            "total_leads_droppped": rng.integers(1, 6, n).astype(float),
            "referred_lead": rng.integers(0, 2, n).astype(float),
        }
    )
    for group in ("assistance", "career", "payment", "social", "syllabus"):
        frame[f"{group}_interaction"] = rng.poisson(0.2, n).astype(float)
    return frame


def synthetic_customers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "window_revenue": rng.gamma(1.0, 50.0, n) * (rng.random(n) < 0.8),
            "window_orders": rng.integers(0, 5, n).astype(float),
            "window_items": rng.integers(0, 30, n).astype(float),
            "web_visits": rng.poisson(3, n).astype(float),
            "emails_opened": rng.poisson(1, n).astype(float),
        }
    )


def stand_in_models(store: Path) -> tuple[str, str]:
    """Train and register a LightGBM lead pipeline and a HurdleCLV model; returns their URIs."""
    import mlflow
    import mlflow.sklearn
    from lightgbm import LGBMClassifier
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from utils.clv.model import HurdleCLV

    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("bench", artifact_location=(store / "artifacts").as_uri())
    )
    leads = synthetic_leads(20_000, seed=1)
    logit = (
        -0.3
        + 0.9 * (leads["first_platform_c"] == "Level0")
        - 0.4 * leads["city_tier"]
        + 0.3 * leads["total_leads_droppped"]
    )
    target = (np.random.default_rng(2).random(len(leads)) < 1 / (1 + np.exp(-logit))).astype(int)
    # The original CodePro tuned settings (see shared/data/README.md).
    lead = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), LEAD_CATEGORICAL), remainder="passthrough"),
        LGBMClassifier(
            learning_rate=0.2, n_estimators=90, num_leaves=40, min_child_samples=81, verbose=-1, random_state=0
        ),
    ).fit(leads, target)
    customers = synthetic_customers(5_000, seed=3)
    spend = customers["window_revenue"] * np.random.default_rng(4).gamma(1.0, 2.0, len(customers))
    clv = HurdleCLV(n_estimators_clf=50, n_estimators_reg=50).fit(customers, spend)
    with mlflow.start_run(run_name="bench stand-ins"):
        lead_info = mlflow.sklearn.log_model(
            lead,
            name="lead_model",
            signature=infer_signature(leads.head(100), lead.predict_proba(leads.head(100))),
            pyfunc_predict_fn="predict_proba",
            serialization_format="cloudpickle",
            pip_requirements=[],
            registered_model_name="lead_scoring",
        )
        mlflow.register_model(tracking.log_model(clv, customers, "predicted_clv"), "clv")
    return f"models:/lead_scoring/{lead_info.registered_model_version}", "models:/clv/1"


def registered_champions(run_dir: Path) -> tuple[str, str, pd.DataFrame, pd.DataFrame] | None:
    """Champion URIs and rows to score from ``run_dir``, or None when either is missing."""
    tracking.configure()
    versions = {name: registry.champion_version(name) for name in ("lead_scoring", "clv")}
    files = [run_dir / "data" / "leads_new.parquet", run_dir / "data" / "clv_score.parquet"]
    if None in versions.values() or not all(f.exists() for f in files):
        return None
    return (
        "models:/lead_scoring@champion",
        "models:/clv@champion",
        read_parquet(files[0]),
        read_parquet(files[1]),
    )


def resample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rows = np.random.default_rng(seed).integers(0, len(frame), n)
    return frame.iloc[rows].reset_index(drop=True)


# --- measurements -------------------------------------------------------------------------------


def native_model(model: scoring.ScoringModel):
    """The same registered version as a scikit-learn object: the path without the pyfunc layer."""
    import mlflow.sklearn

    return unwrap(mlflow.sklearn.load_model(model.pinned_uri))


def bench_lead(model: scoring.ScoringModel, rows: pd.DataFrame, repeats: int) -> dict[str, float]:
    features = scoring.model_features(model, rows, "<bench leads>")
    native = native_model(model)
    calls = {
        "pyfunc": lambda: scoring.predict_scores(model, features),
        "native pipeline predict_proba": lambda: native.predict_proba(features),
    }
    if hasattr(native, "steps"):
        # The bare LightGBM on already-encoded rows: the floor no wrapper can beat.
        encoded = native[:-1].transform(features)
        calls["raw LightGBM predict_proba (pre-encoded)"] = lambda: native.steps[-1][1].predict_proba(encoded)
    return time_paths(calls, repeats)


def bench_clv(model: scoring.ScoringModel, rows: pd.DataFrame, repeats: int) -> dict[str, float]:
    features = scoring.model_features(model, rows, "<bench customers>")
    native = native_model(model)
    calls = {
        "pyfunc": lambda: scoring.predict_scores(model, features),
        "native predict": lambda: native.predict(features),
    }
    return time_paths(calls, repeats)


def bench_spark(spark, model: scoring.ScoringModel, rows: pd.DataFrame, repeats: int) -> dict[str, float]:
    from pyspark.sql import functions as F

    features = scoring.model_features(model, rows, "<bench>")
    result_type = spark_scoring.result_type_for(model.pyfunc, features)
    frame = spark.createDataFrame(features).cache()
    frame.count()
    scored = spark_scoring.score_spark_frame(frame, model.pinned_uri, list(features.columns), result_type)
    value = F.col(spark_scoring.SCORE)[1] if result_type.startswith("array") else F.col(spark_scoring.SCORE)
    calls = {
        "spark_udf on cached Spark rows": lambda: scored.agg(F.sum(value)).collect(),
        "pandas -> Spark -> pandas (score_table)": lambda: scoring.score_table(model, features, "score", engine="spark", spark=spark),
    }
    timings = time_paths(calls, max(1, repeats - 1))
    frame.unpersist()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--run-dir", type=Path, default=paths.LATEST_LINK, help="run folder holding rows to score with the champions"
    )
    parser.add_argument("--stand-in", action="store_true", help="use stand-in models even if champions exist")
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--spark-driver-memory", default="4g", help="10^6 rows pass through the driver's JVM heap")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    found = None if args.stand_in else registered_champions(args.run_dir)
    if found:
        lead_uri, clv_uri, lead_rows, clv_rows = found
        print(f"models: registered champions ({lead_uri}, {clv_uri}); rows resampled from {args.run_dir}/data")
    else:
        store = Path(tempfile.mkdtemp(prefix="bench_scoring_"))
        lead_uri, clv_uri = stand_in_models(store)
        lead_rows, clv_rows = synthetic_leads(50_000, seed=5), synthetic_customers(50_000, seed=6)
        print(
            "models: STAND-INS trained here on synthetic data (LightGBM pipeline for leads, HurdleCLV for CLV);"
            f" no champion with rows to score under {args.run_dir}"
        )
    lead_model, clv_model = scoring.load_model(lead_uri), scoring.load_model(clv_uri)
    print(
        f"lead model {lead_model.label}, CLV model {clv_model.label}; best of {args.repeats} after a warm-up;"
        f" {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start"
    )

    # pandas first, with no JVM alive to compete for the CPUs; then Spark.
    samples = {n: (resample(lead_rows, n, seed=n), resample(clv_rows, n, seed=n + 1)) for n in args.rows}
    pyfunc_times = {}
    for n, (leads, customers) in samples.items():
        lead_times = bench_lead(lead_model, leads, args.repeats)
        clv_times = bench_clv(clv_model, customers, args.repeats)
        print_table(f"LEADS ({lead_model.label})", n, lead_times)
        print_table(f"CLV ({clv_model.label})", n, clv_times)
        pyfunc_times[n] = (lead_times["pyfunc"], clv_times["pyfunc"])
    spark = None if args.no_spark else start_spark(args.spark_master, args.spark_driver_memory)
    if spark is None:
        return
    for n, (leads, customers) in samples.items():
        lead_spark = bench_spark(spark, lead_model, leads, args.repeats)
        print_table("SPARK local, leads", n, lead_spark, ratio_to=pyfunc_times[n][0])
        clv_spark = bench_spark(spark, clv_model, customers, args.repeats)
        print_table("SPARK local, CLV", n, clv_spark, ratio_to=pyfunc_times[n][1])
    spark.stop()


def start_spark(master: str, driver_memory: str):
    """A SparkSession, or None with the reason printed (a benchmark reports what it cannot measure)."""
    try:
        spark_scoring.check_pandas_compatible()
    except (ImportError, RuntimeError) as error:
        print(f"\nSpark: skipped ({error})")
        return None
    start = time.perf_counter()
    spark = spark_scoring.get_spark(master, app_name="lead2value-bench", conf={"spark.driver.memory": driver_memory})
    print(f"\nSpark {spark.version} on {master}: session up in {time.perf_counter() - start:.1f} s")
    return spark


def print_table(title: str, n: int, timings: dict[str, float], ratio_to: float | None = None) -> None:
    """Rows per second per path; ratios are pyfunc throughput over each other path's (>= 50% is the target)."""
    print(f"\n{title}, {n:,} rows")
    reference = timings.get("pyfunc", ratio_to)
    for name, seconds in timings.items():
        if ratio_to is not None:
            note = f"   {ratio_to / seconds:.0%} of pandas pyfunc throughput"
        elif name == "pyfunc":
            note = ""
        else:
            note = f"   pyfunc = {seconds / reference:.0%} of this"
        print(f"  {name:42s} {n / seconds:>12,.0f} rows/s {seconds:>8.3f} s{note}")


if __name__ == "__main__":
    main()
