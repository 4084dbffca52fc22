"""Scoring on Spark: the same registered model, through ``mlflow.pyfunc.spark_udf``.

pyspark is imported here only, and only when a function is called, so the
pandas engine never needs Java. ``master`` is ``local[*]`` on a laptop and
e.g. ``spark://host:7077`` or ``yarn`` on a cluster; the model is shipped to
the executors by MLflow, which need the same Python packages as the driver.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

ROW_ID = "__lead2value_row"
SCORE = "__lead2value_score"


def check_pandas_compatible() -> None:
    """Fail early, with the fix, when the installed pyspark cannot work with the installed pandas."""
    from pyspark.sql.pandas.utils import require_minimum_pandas_version

    try:
        require_minimum_pandas_version()
    except ImportError as error:  # pyspark's PySparkImportError
        import pyspark

        raise RuntimeError(
            f"pyspark {pyspark.__version__} cannot use pandas {pd.__version__} ({error}); "
            "pycaret 3.3 needs pandas < 2.2, so pin pyspark 3.5.x in the lock"
        ) from error


def get_spark(
    master: str = "local[*]", app_name: str = "lead2value-scoring", conf: dict[str, str] | None = None
) -> Any:
    """A SparkSession on ``master`` with Arrow transfer on (a session already running is reused as it is).

    Executors run ``PYSPARK_PYTHON``, by default this interpreter: on a cluster,
    set it to a Python with the project's packages on every node.
    """
    check_pandas_compatible()
    from pyspark.sql import SparkSession

    # Python workers must import the same packages (sklearn, lightgbm, mlflow) as this interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if master.startswith("local"):
        # A laptop run needs no web UI, and a fixed shuffle width keeps small jobs quick.
        builder = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
        )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")  # Spark's INFO/WARN lines would drown the notebook's output
    return spark


def result_type_for(pyfunc: Any, features: pd.DataFrame) -> str:
    """``array<double>`` for a class-probability model, ``double`` for a regressor (probed on one row)."""
    probe = pyfunc.predict(features.head(1))
    values = probe.to_numpy() if isinstance(probe, (pd.DataFrame, pd.Series)) else np.asarray(probe)
    return "array<double>" if values.ndim == 2 and values.shape[1] > 1 else "double"


def score_spark_frame(
    spark_df: Any, model_uri: str, columns: list[str], result_type: str = "double", output_column: str = SCORE
) -> Any:
    """``spark_df`` with a column of model output.

    Use it directly on tables Spark reads itself (e.g. parquet on a cluster), where
    the data never passes through pandas on the driver.
    """
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(spark_df.sparkSession, model_uri, result_type=result_type, env_manager="local")
    # A struct passes the columns by name, so the model's signature matches them as in pandas.
    return spark_df.withColumn(output_column, udf(F.struct(*[F.col(c) for c in columns])))


def predict_spark(pyfunc: Any, pinned_uri: str, features: pd.DataFrame, spark: Any, file: str = "<input>") -> np.ndarray:
    """The model's raw output for each row of ``features``, in their order, computed on Spark executors.

    ``pinned_uri`` names the exact registered version (``models:/name/3``): the executors
    load that version, whatever an alias points at by then.
    """
    features = features.reset_index(drop=True)
    if features.empty:
        return np.array([], dtype="float64")
    result_type = result_type_for(pyfunc, features)
    spark_df = spark.createDataFrame(features.assign(**{ROW_ID: np.arange(len(features), dtype="int64")}))
    scored = score_spark_frame(spark_df, pinned_uri, list(features.columns), result_type)
    # Spark does not promise to keep row order through a UDF, hence the row id.
    out = scored.select(ROW_ID, SCORE).toPandas().sort_values(ROW_ID)
    if len(out) != len(features):
        raise RuntimeError(f"{file}: Spark returned {len(out)} scores for {len(features)} rows")
    return np.vstack(out[SCORE].to_numpy()) if result_type.startswith("array") else out[SCORE].to_numpy()
