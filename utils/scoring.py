"""Scoring new tables with registered models, and the provenance of every score.

A score is only useful if one can say which model produced it: every scored
table carries the model name, version and run id as columns, and a side file
``scoring_provenance.json`` repeats them with hashes of the inputs and outputs.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from utils.fingerprint import sha256_file
from utils.validate import DataContractError, require_columns

# Per row only the model's name: its version and run id change with every registration, so they
# live in the side file (scoring_provenance.json) and equal scores stay byte-identical across runs.
PROVENANCE_COLUMNS = ("model_name",)
SIDE_FILE_PROVENANCE = ("model_version", "model_run_id")
UNSEEN_LABEL = "others"
# Never model inputs: what a model without a signature is not fed.
NOT_FEATURES = ("customer_id", "ref_date", "created_date", "app_complete_flag", "clv_target", *PROVENANCE_COLUMNS,
                *SIDE_FILE_PROVENANCE)
# Bands for "leads by score band"; the last edge is closed so a score of exactly 1 has a band.
DEFAULT_BAND_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

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

    def provenance(self) -> dict[str, str | None]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "model_run_id": self.run_id,
            "model_uri": self.uri,
            "model_pinned_uri": self.pinned_uri,
        }


def load_model(model_uri: str) -> ScoringModel:
    """Load a pyfunc model by URI and resolve its registry name, version and run id.

    ``models:/<name>@<alias>`` and ``models:/<name>/<version>`` are resolved
    through the registry; any other URI (``runs:/``, a path) keeps name and
    version empty and takes the run id from the model's metadata.
    """
    import mlflow.pyfunc
    from mlflow import MlflowClient

    match = _REGISTRY_URI.match(model_uri)
    name = version = None
    pinned = model_uri
    if match:
        client = MlflowClient()
        name = match["name"]
        found = (
            client.get_model_version_by_alias(name, match["alias"])
            if match["alias"]
            else client.get_model_version(name, match["version"])
        )
        version = str(found.version)
        pinned = f"models:/{name}/{version}"
    pyfunc = mlflow.pyfunc.load_model(pinned)
    return ScoringModel(
        uri=model_uri,
        pinned_uri=pinned,
        name=name,
        version=version,
        run_id=pyfunc.metadata.run_id,
        pyfunc=pyfunc,
    )


def positive_class_scores(predictions: Any) -> np.ndarray:
    """One score per row: P(class 1) from a two-column probability output, else the output itself."""
    values = predictions.to_numpy() if isinstance(predictions, (pd.DataFrame, pd.Series)) else np.asarray(predictions)
    if values.ndim == 2 and values.shape[1] == 2:
        return values[:, 1].astype("float64")
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0].astype("float64")
    if values.ndim == 1:
        return values.astype("float64")
    raise ValueError(f"model output of shape {values.shape}: expected one column or two class probabilities")


def map_unseen_levels(
    df: pd.DataFrame, reference: pd.DataFrame, columns: list[str], unseen_label: str = UNSEEN_LABEL
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Map text levels absent from the training data to ``unseen_label`` and count them.

    Only where ``unseen_label`` itself is a training level: otherwise there is
    nothing sensible to map to, the level is left for the model's own handling
    and still counted. Missing values are not "unseen".
    """
    out = df.copy()
    counts: dict[str, int] = {}
    for column in columns:
        if column not in reference.columns or not _is_text(reference[column]):
            continue
        known = set(reference[column].dropna().unique())
        unseen = out[column].notna() & ~out[column].isin(known)
        counts[column] = int(unseen.sum())
        if counts[column] and unseen_label in known:
            out.loc[unseen, column] = unseen_label
    return out, counts


def _is_text(series: pd.Series) -> bool:
    return (
        pd.api.types.is_object_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(series)
    )


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
    from mlflow.exceptions import MlflowException

    features = model_features(model, df, file)
    try:
        predictions = model.pyfunc.predict(features)
    except MlflowException as error:
        raise DataContractError(
            file, None, f"does not fit the input schema of {model.label}: {error.message}"
        ) from error
    return positive_class_scores(predictions)


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
    (a SparkSession, see :mod:`utils.spark_scoring`); both give the same numbers.
    """
    if engine == "pandas":
        scores = predict_scores(model, df, file)
    elif engine == "spark":
        from utils import spark_scoring

        if spark is None:
            raise ValueError("engine='spark' needs a SparkSession: spark_scoring.get_spark(master)")
        scores = spark_scoring.predict_scores_spark(model, df, spark, file)
    else:
        raise ValueError(f"unknown engine {engine!r}: use 'pandas' or 'spark'")
    return with_provenance(df, model, score_column, scores)


def with_provenance(df: pd.DataFrame, model: ScoringModel, score_column: str, scores: np.ndarray) -> pd.DataFrame:
    out = df.copy()
    out[score_column] = np.asarray(scores, dtype="float64")
    out["model_name"] = model.name or ""
    return out


# --- summaries used by the notebook and the dashboard ------------------------------------


def score_bands(scores: pd.Series | np.ndarray, edges: tuple[float, ...] = DEFAULT_BAND_EDGES) -> pd.Categorical:
    """Label each score with its band, e.g. "0.4-0.6" (left-closed; the top band includes 1)."""
    edges = tuple(float(e) for e in edges)
    if list(edges) != sorted(set(edges)):
        raise ValueError(f"band edges must increase strictly: {edges}")
    labels = [f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(edges)]
    values = np.asarray(scores, dtype="float64")
    # searchsorted puts a score equal to an inner edge in the upper band; clip keeps 1.0 in the top band.
    codes = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(labels) - 1)
    codes = np.where((values < edges[0]) | (values > edges[-1]) | np.isnan(values), -1, codes)
    return pd.Categorical.from_codes(codes, categories=labels, ordered=True)


def band_summary(scores: pd.Series | np.ndarray, edges: tuple[float, ...] = DEFAULT_BAND_EDGES) -> pd.DataFrame:
    """Leads per score band with the expected lead-to-application-complete rate (L2AC).

    The expected L2AC of a band is its mean predicted probability, and its
    expected completions the sum: what the band should yield if the model is calibrated.
    """
    values = np.asarray(scores, dtype="float64")
    frame = pd.DataFrame({"band": score_bands(values, edges), "score": values})
    grouped = frame.groupby("band", observed=False)["score"]
    summary = pd.DataFrame(
        {
            "leads": grouped.size(),
            "expected_l2ac": grouped.mean(),
            "expected_completions": grouped.sum(),
        }
    ).reset_index()
    summary["share_of_leads"] = summary["leads"] / max(len(values), 1)
    return summary[["band", "leads", "share_of_leads", "expected_l2ac", "expected_completions"]]


def value_deciles(values: pd.Series | np.ndarray) -> np.ndarray:
    """Decile of each value, 10 = the highest tenth; ties broken by row order so it is reproducible."""
    values = np.asarray(values, dtype="float64")
    n = len(values)
    if n == 0:
        return np.array([], dtype="int64")
    order = np.argsort(values, kind="stable")
    ranks = np.empty(n, dtype="int64")
    ranks[order] = np.arange(1, n + 1)
    return np.ceil(ranks * 10 / n).astype("int64")


def decile_summary(values: pd.Series | np.ndarray) -> pd.DataFrame:
    """Predicted value per decile and the cumulative share of all value from the top decile down."""
    values = np.asarray(values, dtype="float64")
    frame = pd.DataFrame({"decile": value_deciles(values), "value": values})
    summary = frame.groupby("decile")["value"].agg(customers="size", mean_predicted="mean", total_predicted="sum")
    summary = summary.reindex(range(1, 11), fill_value=0).reset_index()
    total = summary["total_predicted"].sum()
    summary["share_of_value"] = summary["total_predicted"] / total if total else 0.0
    summary["cumulative_share_from_top"] = summary["share_of_value"][::-1].cumsum()[::-1]
    return summary


def group_summary(df: pd.DataFrame, group_column: str, value_column: str, top: int = 15) -> pd.DataFrame:
    """Customers, mean and total predicted value per group, largest total first (the rest pooled)."""
    if group_column not in df.columns:
        raise DataContractError("<scored customers>", group_column, "missing: cannot summarise by it")
    groups = df[group_column].astype("object").where(df[group_column].notna(), "(missing)")
    summary = (
        df.assign(_group=groups)
        .groupby("_group")[value_column]
        .agg(customers="size", mean_predicted="mean", total_predicted="sum")
    )
    summary = summary.sort_values(["total_predicted", "customers"], ascending=False)
    if len(summary) > top:
        rest = summary.iloc[top:]
        pooled = pd.DataFrame(
            {"customers": [rest["customers"].sum()], "total_predicted": [rest["total_predicted"].sum()]},
            index=[f"other ({len(rest)})"],
        )
        pooled["mean_predicted"] = pooled["total_predicted"] / pooled["customers"]
        summary = pd.concat([summary.iloc[:top], pooled[summary.columns]])
    return summary.rename_axis(group_column).reset_index()


# --- writing -------------------------------------------------------------------------------


def write_scored(df: pd.DataFrame, folder: Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.parquet`` and ``<stem>.csv``; every provenance column must be there."""
    missing = [c for c in PROVENANCE_COLUMNS if c not in df.columns]
    if missing:
        raise DataContractError(stem, missing[0], "missing: a scored table must say which model scored it")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {"parquet": folder / f"{stem}.parquet", "csv": folder / f"{stem}.csv"}
    df.to_parquet(out["parquet"], index=False)
    df.to_csv(out["csv"], index=False)
    return out


def provenance_entry(
    model: ScoringModel, input_path: Path | None, outputs: dict[str, Path], rows: int, **extra: Any
) -> dict:
    """What one scored table came from: model identity, input and output hashes, row count."""
    entry: dict[str, Any] = dict(model.provenance())
    entry["rows"] = int(rows)
    if input_path is not None:
        entry["input"] = {"file": Path(input_path).name, "sha256": sha256_file(Path(input_path))}
    entry["outputs"] = {Path(p).name: sha256_file(Path(p)) for p in outputs.values()}
    entry.update(extra)
    return entry


def write_provenance(path: Path, tables: dict[str, dict], **extra: Any) -> Path:
    """Write ``scoring_provenance.json``: one entry per scored table plus run-level facts."""
    document = {"tables": tables, **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    return path
