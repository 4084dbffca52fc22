"""MLflow: where the store is, and logging figures, tables and models to the active run.

The store is local and embedded (SQLite under ``outputs/mlflow``) unless
``MLFLOW_TRACKING_URI`` says otherwise; the registry follows the same URI. Notebooks
reach MLflow through their step context (:mod:`utils.pipeline.steps`), which opens and
closes the run; the functions here only need an active run to log to.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from utils.core import drift, env, paths
from utils.core.files import write_json
from utils.core.parallel import predict_in_chunks
from utils.core.serving import NamedScore

EXPERIMENT_NAME = "lead2value"


# mlflow.sklearn warns on every cloudpickled model and recommends skops; cloudpickle is chosen on purpose
# (see pickled_by_value: skops cannot load the project's own classes without shipping them).
_CLOUDPICKLE_ADVICE = re.compile(r"pickle or cloudpickle format requires exercising caution")
# A fresh SQLite store announces its tables at INFO: on stderr, in red, in the first notebook of a new store.
_NEW_STORE_NEWS = re.compile(r"database tables")


class _DropMessage(logging.Filter):
    """Drops the records of one logger whose message matches a pattern; the rest pass."""

    def __init__(self, pattern: re.Pattern):
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


@contextmanager
def without_message(logger_name: str, pattern: re.Pattern) -> Iterator[None]:
    """While inside, the logger ``logger_name`` drops messages matching ``pattern`` (advice already acted on)."""
    logger, dropped = logging.getLogger(logger_name), _DropMessage(pattern)
    logger.addFilter(dropped)
    try:
        yield
    finally:
        logger.removeFilter(dropped)


def default_tracking_uri() -> str:
    return f"sqlite:///{paths.MLFLOW_DIR / 'mlflow.db'}"


def configure() -> str:
    """Point MLflow at the project store (or ``MLFLOW_TRACKING_URI``) and its experiment."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with without_message("mlflow.store.db.utils", _NEW_STORE_NEWS):
        experiment = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        # An explicit artifact location: the default (./mlruns) depends on the caller's directory.
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT_NAME)
    return uri


def create_run(name: str, tags: dict[str, str], parent_id: str | None = None, client: MlflowClient | None = None,
               experiment_id: str | None = None) -> str:
    """Create (not start) a run of the project's experiment named ``name``, a child of ``parent_id``; its id.

    Without a ``client`` the project store is configured first (:func:`configure`). The runner creates
    each notebook's run with it, in its own process or, under a scheduler, inside a kernel handed over
    warm (:mod:`utils.pipeline.handoff`).
    """
    if client is None:
        configure()
        client = MlflowClient()
    if experiment_id is None:
        experiment_id = client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id
    if parent_id:
        tags = {**tags, "mlflow.parentRunId": parent_id}
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


def log_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Log the file at ``path`` to run ``run_id`` of the project store (configured first); the runner's
    call inside a kernel handed over (:mod:`utils.pipeline.handoff`), whose process has MLflow loaded."""
    configure()
    MlflowClient().log_artifact(run_id, str(path), artifact_path=artifact_path)


def end_run(run_id: str, status: str) -> None:
    """Mark run ``run_id`` of the project store ended with ``status`` (FINISHED, FAILED, KILLED)."""
    configure()
    MlflowClient().set_terminated(run_id, status)


def end_stale_runs(client: MlflowClient | None = None, experiment_id: str | None = None) -> list[str]:
    """Mark KILLED the run_all MLflow runs (parents and their children) still RUNNING; their ids.

    Called holding the run lock before a run starts one of its own: any such run belongs to a
    run_all.py that died (kill -9, a lost machine). Runs of notebooks opened by hand are not
    touched: a JupyterLab session may still be using them.
    """
    if client is None:
        configure()
        client = MlflowClient()
    if experiment_id is None:
        experiment_id = client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    parents = {r.info.run_id for r in running if "lead2value.run_id" in r.data.tags}
    stale = [r for r in running if r.info.run_id in parents or r.data.tags.get("mlflow.parentRunId") in parents]
    for found in stale:
        client.set_terminated(found.info.run_id, "KILLED")
    return [r.info.run_id for r in stale]


def write_metrics(path: Path, metrics: dict[str, float]) -> dict[str, float]:
    """Merge ``metrics`` (flat keys, as floats) into the JSON file at ``path`` and log them to the active run."""
    clean = {key: float(value) for key, value in metrics.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing.update(clean)
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    if mlflow.active_run() is not None:
        mlflow.log_metrics(clean)
    return clean


# The resolution of the figures saved under a run's figures/ (and in MLflow).
SAVE_DPI = 110


def save_figure(fig: Any, folder: Path, name: str) -> Path:
    """Save a matplotlib (PNG) or plotly (HTML) figure as ``<folder>/<name>`` and log it to MLflow."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(fig, "savefig"):
        out = folder / f"{name}.png"
        # No timestamp in the PNG metadata, so reruns give byte-identical files.
        fig.savefig(out, dpi=SAVE_DPI, bbox_inches="tight", metadata={"Software": None})
    elif hasattr(fig, "write_html"):
        out = folder / f"{name}.html"
        # plotly.js inline: the figure opens offline.
        fig.write_html(out, include_plotlyjs=True, full_html=True)
    else:
        raise TypeError(f"save_figure: {type(fig).__name__} is neither matplotlib nor plotly")
    if mlflow.active_run() is not None:
        mlflow.log_artifact(str(out), artifact_path="figures")
    return out


def save_table(df: Any, folder: Path, name: str) -> Path:
    """Save a result table as ``<folder>/<name>.csv`` and log it to MLflow."""
    out = Path(folder) / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6g")
    if mlflow.active_run() is not None:
        mlflow.log_artifact(str(out), artifact_path="tables")
    return out


MODEL_PACKAGES = ("mlflow", "cloudpickle", "numpy", "pandas", "scipy", "scikit-learn", "lightgbm")


def model_requirements(packages: tuple[str, ...] = MODEL_PACKAGES) -> list[str]:
    """Pinned pip requirements for a logged model, read from the environment.

    Passing them explicitly spares MLflow its requirement inference, which loads the
    model in a subprocess and costs tens of seconds per logged model.
    """
    return [f"{name}=={version}" for name, version in env.package_versions(packages).items()
            if version != "not installed"]


# Inside every logged model's folder: the binned training distribution of its inputs and score.
DRIFT_REFERENCE_FILE = "drift_reference.json"


@contextmanager
def pickled_by_value(package_name: str = __name__.partition(".")[0]) -> Iterator[None]:
    """While logging, cloudpickle copies the project's classes and functions into the pickle.

    A client process then needs none of this project to load the model, and a package of
    its own named ``utils`` is neither needed nor shadowed (shipping ``utils`` as code
    would do both).
    """
    package = importlib.import_module(package_name)
    cloudpickle.register_pickle_by_value(package)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(package)


def input_schema(X: pd.DataFrame, optional: Iterable[str] = ()) -> Schema:
    """The model's input columns by name and type; ``optional`` ones may be left out of a request.

    Typed, not "any": MLflow checks an "any" column value by value (half a second per 20,000
    leads), a typed one by its dtype. A JSON request may still send 2 for a "double" column:
    the scoring server casts JSON to the signature's types first.
    """
    optional = set(optional)
    specs = []
    for column in X.columns:
        series = X[column]
        if drift.is_numeric(series):
            kind = "long" if pd.api.types.is_integer_dtype(series) else "double"
        elif pd.api.types.is_bool_dtype(series):
            kind = "boolean"
        elif pd.api.types.is_datetime64_any_dtype(series):
            kind = "datetime"
        else:
            kind = "string"
        specs.append(ColSpec(kind, str(column), required=column not in optional))
    return Schema(specs)


def scored_reference(model: Any, X_train: pd.DataFrame, score_column: str, method: str = "predict", n_bins: int = 10,
                     drift_exclude: Iterable[str] = ()) -> tuple[pd.DataFrame, NamedScore, dict[str, Any]]:
    """What :func:`log_model` logs besides the pickle: (the training rows with a 0..n-1 index, the model
    answering ``score_column``, the drift reference of every input but ``drift_exclude`` and of the score)."""
    # No copy of the training rows (190,000 leads: about 140 MB each, where a default run's memory peaks).
    X = X_train if X_train.index.equals(pd.RangeIndex(len(X_train))) else X_train.reset_index(drop=True)
    served = NamedScore(model, score_column, method)
    # Every training row is scored for the reference: in blocks, on every core (the same scores).
    scores = pd.Series(predict_in_chunks(lambda rows: served.predict(rows)[score_column], X, model=model),
                       name=score_column)
    excluded = set(drift_exclude)
    # The inputs' bins and then the score's, column by column: as one table of both, without building it.
    reference = drift.build_reference(X, columns=[c for c in X.columns if c not in excluded], n_bins=n_bins)
    reference["columns"][score_column] = drift.column_reference(scores, n_bins, reference["rare_share"])
    reference["score_column"] = score_column
    return X, served, reference


def log_model(model: Any, X_train: pd.DataFrame, score_column: str, *, method: str = "predict", name: str = "model",
              optional_columns: Iterable[str] = (), recipe: dict | None = None,
              n_bins: int = 10, drift_exclude: Iterable[str] = ()) -> str:
    """Log a fitted estimator to the active run as a model that answers one named column; returns its URI.

    * The input signature is ``X_train``'s columns (the raw schema for the lead model, the
      feature table for the CLV model), with five of its rows as the input example.
    * The pyfunc answers ``score_column`` (:class:`~utils.core.serving.NamedScore`; ``method``
      is the estimator's scoring method, P(class 1) of a ``predict_proba``).
    * Pickled with cloudpickle, the project's own classes by value: no code shipped, nothing
      to import on the client (:func:`pickled_by_value`).
    * ``drift_reference.json`` in the model's folder: every input and the score on ``X_train``
      (the training part), binned (:mod:`utils.core.drift`), for the scoring job's drift check;
      ``drift_exclude`` names inputs that are no distribution (a free-text basket: every value new).
    * ``recipe`` (e.g. the feature window a CLV feature table was built with) goes in the
      model's metadata, so a scoring job can build new rows the same way.
    """
    X, served, reference = scored_reference(model, X_train, score_column, method, n_bins, drift_exclude)
    signature = ModelSignature(inputs=input_schema(X, optional_columns),
                               outputs=Schema([ColSpec("double", score_column)]))
    metadata = {"score_column": score_column, "drift_reference": DRIFT_REFERENCE_FILE, "recipe": recipe or {}}
    with pickled_by_value(), without_message("mlflow.sklearn", _CLOUDPICKLE_ADVICE):
        info = mlflow.sklearn.log_model(
            served, name=name, signature=signature, input_example=X.head(5), pyfunc_predict_fn="predict",
            serialization_format="cloudpickle", pip_requirements=model_requirements(), metadata=metadata,
        )
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / DRIFT_REFERENCE_FILE
        write_json(local, reference)
        MlflowClient().log_model_artifact(info.model_id, str(local))
    return info.model_uri
