"""The Spark engine gives the same scores as pandas, through mlflow.pyfunc.spark_udf.

One local SparkSession for the whole module (start-up is the slow part).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.helpers import scratch_mlflow_store
from utils.core.contracts import DataContractError
from utils.core.paths import PROJECT_ROOT
from utils.scoring import predict as scoring

pytestmark = [pytest.mark.spark, pytest.mark.timeout(180)]

def lead_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "city_tier": rng.integers(1, 4, n).astype(float),
            "first_platform_c": rng.choice(["Level0", "Level3", "others"], n).astype(object),
            "total_leads_droppped": rng.integers(1, 5, n).astype(float),
            "referred_lead": rng.integers(0, 2, n).astype(float),
        }
    )
    frame.loc[::7, "referred_lead"] = np.nan
    return frame


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark not installed")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime: Spark needs java on PATH or JAVA_HOME")
    from utils.scoring import spark as spark_scoring

    try:
        spark_scoring.check_pandas_compatible()
    except RuntimeError as error:
        pytest.skip(str(error))
    session = spark_scoring.get_spark("local[2]", app_name="lead2value-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A stand-in probability model and a regressor, registered in a throwaway store."""
    import mlflow.sklearn
    from lightgbm import LGBMClassifier, LGBMRegressor
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("mlflow")
    with scratch_mlflow_store(root, "spark-tests"):
        train = lead_frame(500, seed=0)
        target = (np.random.default_rng(1).random(500) < 0.2 + 0.3 * (train["first_platform_c"] == "Level0")).astype(int)
        encoder = make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["first_platform_c"]), remainder="passthrough"
        )
        classifier = make_pipeline(
            encoder, LGBMClassifier(n_estimators=20, min_child_samples=5, verbose=-1, random_state=0, n_jobs=1)
        ).fit(train, target)
        regressor = make_pipeline(
            encoder, LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1, random_state=0, n_jobs=1)
        ).fit(train, target * 100.0)
        for name, model, kwargs in (
            ("lead_scoring", classifier, {"pyfunc_predict_fn": "predict_proba"}),
            ("clv", regressor, {}),
        ):
            output = model.predict_proba(train) if kwargs else model.predict(train)
            with mlflow.start_run():
                mlflow.sklearn.log_model(
                    model,
                    name="model",
                    signature=infer_signature(train, output),
                    registered_model_name=name,
                    serialization_format="cloudpickle",
                    pip_requirements=[],
                    **kwargs,
                )
        yield {"lead": scoring.load_model("models:/lead_scoring/1"), "clv": scoring.load_model("models:/clv/1")}


def new_leads() -> pd.DataFrame:
    frame = lead_frame(300, seed=7)
    frame.loc[::13, "first_platform_c"] = None  # missing text must travel through Arrow the same way
    frame.loc[5, "first_platform_c"] = "Level99"  # a level the model never saw
    return frame.assign(lead_id=np.arange(300)).set_index(np.arange(300) * 3)  # a non-default index


@pytest.mark.parametrize(("kind", "score_column"), [("lead", "p_app_complete"), ("clv", "predicted_clv")])
def test_spark_and_pandas_engines_agree(spark, models, kind, score_column):
    leads = new_leads()
    by_pandas = scoring.score_table(models[kind], leads, score_column, engine="pandas")
    by_spark = scoring.score_table(models[kind], leads, score_column, engine="spark", spark=spark)
    np.testing.assert_allclose(by_spark[score_column], by_pandas[score_column], rtol=0, atol=1e-9)
    pd.testing.assert_index_equal(by_spark.index, leads.index)
    assert by_spark["model_name"].eq(by_pandas["model_name"]).all() and "model_version" not in by_spark
    assert by_pandas[score_column].nunique() > 5  # the check compares real, varied scores


def test_spark_engine_checks_columns_before_starting_work(spark, models):
    with pytest.raises(DataContractError, match=r"new.parquet: column 'city_tier': missing"):
        scoring.score_table(
            models["lead"], new_leads().drop(columns="city_tier"), "p", file="new.parquet", engine="spark", spark=spark
        )


def test_spark_engine_needs_a_session(models):
    with pytest.raises(ValueError, match="SparkSession"):
        scoring.score_table(models["lead"], new_leads(), "p", engine="spark")


def test_pandas_engine_needs_no_java(models, tmp_path):
    """The pandas engine must score on a machine without Java (Spark is an optional extra)."""
    leads = tmp_path / "leads.parquet"
    new_leads().to_parquet(leads)
    code = (
        "import sys, pandas as pd, mlflow; from utils.scoring import predict; "
        f"mlflow.set_tracking_uri({mlflow.get_tracking_uri()!r}); mlflow.set_registry_uri({mlflow.get_tracking_uri()!r}); "
        "model = predict.load_model('models:/lead_scoring/1'); "
        f"scored = predict.score_table(model, pd.read_parquet({str(leads)!r}), 'p'); "
        "print(len(scored))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "MLFLOW_TRACKING_URI")}
    env["PATH"] = "/usr/bin/does-not-exist"  # no java (nor anything else) on the PATH
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] == str(len(new_leads()))
