"""Scoring new tables with registered models, and the provenance of every score.

A score is only useful if one can say which model produced it: every scored
table carries the model name, version and run id as columns, and a side file
``scoring_provenance.json`` repeats them with hashes of the inputs and outputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from utils.core.contracts import DataContractError, require_columns
from utils.core.files import read_json
from utils.core.hashing import sha256_file
from utils.core.tracking import DRIFT_REFERENCE_FILE
from utils.scoring import spark as spark_engine

# Per row only the model's name: its version and run id change with every registration, so they
# live in the side file (scoring_provenance.json) and equal scores stay byte-identical across runs.
PROVENANCE_COLUMNS = ("model_name",)
SIDE_FILE_PROVENANCE = ("model_version", "model_run_id")
# Never model inputs: what a model without a signature is not fed.
NOT_FEATURES = ("lead_id", "customer_id", "ref_date", "created_date", "app_complete_flag", "clv_target",
                *PROVENANCE_COLUMNS, *SIDE_FILE_PROVENANCE)

# Which notebook trains each registered model (for the message when none is registered yet).
MODEL_NOTEBOOKS = {"lead_scoring": "notebooks/03_lead_model.ipynb", "clv": "notebooks/04_clv_model.ipynb"}
TRAIN_COMMAND = "python run_all.py --profile smoke"  # the quickest way to a champion (`python run_all.py`: full scale)


class NoModelError(LookupError):
    """The registry has no such model, version or alias (yet): the message names the command that trains one."""
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))$")


@dataclass(frozen=True)
class ScoringModel:
    """A loaded pyfunc model and where it came from.

    ``pinned_uri`` names the exact version (``models:/name/3``), so a second
    engine that loads the model again scores the same version even if the
    alias moves in between.
    """

    uri: str
    pinned_uri: str
    name: str | None
    version: str | None
    run_id: str | None
    pyfunc: Any = field(repr=False)

    @property
    def input_columns(self) -> list[str] | None:
        schema = self.pyfunc.metadata.get_input_schema()
        return None if schema is None or not schema.has_input_names() else list(schema.input_names())

    @property
    def label(self) -> str:
        return f"{self.name or self.uri} v{self.version or '?'}"

    @property
    def metadata(self) -> dict:
        """What the model was logged with (:func:`utils.core.tracking.log_model`): score column, recipe."""
        return dict(self.pyfunc.metadata.metadata or {})

    @property
    def score_column(self) -> str | None:
        return self.metadata.get("score_column")

    @property
    def recipe(self) -> dict:
        """How the model's input rows were built (e.g. a CLV feature window); empty if nothing was recorded."""
        return dict(self.metadata.get("recipe") or {})

    def drift_reference(self) -> dict:
        """The binned training distribution of the model's inputs and score, logged inside the model."""
        name = self.metadata.get("drift_reference", DRIFT_REFERENCE_FILE)
        try:
            if self.version is not None:  # a registered version: fetch the one file
                local = Path(mlflow.artifacts.download_artifacts(f"{self.pinned_uri}/{name}"))
            else:  # a run's or a logged model's URI: its folder
                local = Path(mlflow.artifacts.download_artifacts(self.pinned_uri)) / name
            return read_json(local)
        except (MlflowException, OSError) as error:
            raise LookupError(f"{self.label} has no drift reference ({name}): it was logged before models carried "
                              f"one; train a new version with `{TRAIN_COMMAND}`") from error

    def provenance(self) -> dict[str, str | None]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "model_run_id": self.run_id,
            "model_uri": self.uri,
            "model_pinned_uri": self.pinned_uri,
        }


def resolve_model(model_uri: str) -> tuple[str | None, str | None, str]:
    """(name, version, pinned URI) of a model URI, without loading the model.

    ``models:/<name>@<alias>`` and ``models:/<name>/<version>`` are resolved through the
    registry (a missing one raises :class:`NoModelError`); any other URI (``runs:/``, a
    path) keeps name and version empty and is its own pinned URI.
    """
    match = _REGISTRY_URI.match(model_uri)
    if not match:
        return None, None, model_uri
    name = match["name"]
    client = MlflowClient()
    try:
        found = (client.get_model_version_by_alias(name, match["alias"]) if match["alias"]
                 else client.get_model_version(name, match["version"]))
    except MlflowException:
        raise NoModelError(
            f"no registered model {model_uri} in the MLflow registry at {mlflow.get_registry_uri()}: "
            f"train one first with `{TRAIN_COMMAND}` (or `python run_all.py` at full scale, or the notebook "
            f"that registers '{name}': {MODEL_NOTEBOOKS.get(name, 'see the README')})"
        ) from None
    return name, str(found.version), f"models:/{name}/{found.version}"


def load_model(model_uri: str) -> ScoringModel:
    """Load a pyfunc model by URI, pinned to the version its registry name or alias points at now.

    Any other URI (``runs:/``, a path) keeps name and version empty and takes the run id
    from the model's metadata.
    """
    name, version, pinned = resolve_model(model_uri)
    pyfunc = mlflow.pyfunc.load_model(pinned)
    return ScoringModel(
        uri=model_uri,
        pinned_uri=pinned,
        name=name,
        version=version,
        run_id=pyfunc.metadata.run_id,
        pyfunc=pyfunc,
    )


def positive_class_scores(predictions: Any, score_column: str | None = None) -> np.ndarray:
    """One score per row: the named score column, P(class 1) from a two-column probability output,
    else the output itself."""
    if score_column and isinstance(predictions, pd.DataFrame) and score_column in predictions.columns:
        return predictions[score_column].to_numpy(dtype="float64")
    values = predictions.to_numpy() if isinstance(predictions, (pd.DataFrame, pd.Series)) else np.asarray(predictions)
    if values.ndim == 2 and values.shape[1] == 2:
        return values[:, 1].astype("float64")
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0].astype("float64")
    if values.ndim == 1:
        return values.astype("float64")
    raise ValueError(f"model output of shape {values.shape}: expected one column or two class probabilities")


def input_columns(model: ScoringModel, df: pd.DataFrame, not_features: tuple[str, ...] = NOT_FEATURES) -> list[str]:
    """The model's input columns: its signature's names, else every column of ``df`` but ids, dates and targets."""
    return model.input_columns or [c for c in df.columns if c not in not_features]


def model_features(model: ScoringModel, df: pd.DataFrame, file: str) -> pd.DataFrame:
    """The columns the model takes, in its order; a missing one stops with the file and column named."""
    columns = input_columns(model, df)
    require_columns(df, columns, file)
    return df[columns]


def predict_scores(model: ScoringModel, df: pd.DataFrame, file: str = "<input>") -> np.ndarray:
    """Score rows with the pyfunc model; a schema mismatch names the file and the model."""
    features = model_features(model, df, file)
    try:
        predictions = model.pyfunc.predict(features)
    except MlflowException as error:
        raise DataContractError(
            file, None, f"does not fit the input schema of {model.label}: {error.message}"
        ) from error
    return positive_class_scores(predictions, model.score_column)


def score_table(
    model: ScoringModel,
    df: pd.DataFrame,
    score_column: str,
    file: str = "<input>",
    engine: str = "pandas",
    spark: Any = None,
) -> pd.DataFrame:
    """``df`` with the score and the model's name, version and run id as columns.

    ``engine="spark"`` scores through ``mlflow.pyfunc.spark_udf`` on ``spark``
    (a SparkSession, see :mod:`utils.scoring.spark`); both give the same numbers.
    """
    if engine == "pandas":
        scores = predict_scores(model, df, file)
    elif engine == "spark":
        if spark is None:
            raise ValueError("engine='spark' needs a SparkSession: utils.scoring.spark.get_spark(master)")
        features = model_features(model, df, file)
        scores = positive_class_scores(spark_engine.predict_spark(model.pyfunc, model.pinned_uri, features, spark, file),
                                       model.score_column)
    else:
        raise ValueError(f"unknown engine {engine!r}: use 'pandas' or 'spark'")
    return with_provenance(df, model, score_column, scores)


def with_provenance(df: pd.DataFrame, model: ScoringModel, score_column: str, scores: np.ndarray) -> pd.DataFrame:
    out = df.copy()
    out[score_column] = np.asarray(scores, dtype="float64")
    out["model_name"] = model.name or ""
    return out


# --- writing -------------------------------------------------------------------------------


def provenance_entry(
    model: ScoringModel, input_path: Path | None, outputs: Iterable[Path], rows: int, **extra: Any
) -> dict:
    """What one scored table came from: model identity, input and output hashes, row count."""
    entry: dict[str, Any] = dict(model.provenance())
    entry["rows"] = int(rows)
    if input_path is not None:
        entry["input"] = {"file": Path(input_path).name, "sha256": sha256_file(Path(input_path))}
    entry["outputs"] = {Path(p).name: sha256_file(Path(p)) for p in outputs}
    entry.update(extra)
    return entry
