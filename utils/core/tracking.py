"""MLflow: where the store is, and logging figures, tables and models to the active run.

The store is local and embedded (SQLite under ``outputs/mlflow``) unless
``MLFLOW_TRACKING_URI`` says otherwise; the registry follows the same URI. Notebooks
reach MLflow through their step context (:mod:`utils.pipeline.steps`), which opens and
closes the run; the functions here only need an active run to log to.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature

from utils.core import env, paths

EXPERIMENT_NAME = "lead2value"


def default_tracking_uri() -> str:
    return f"sqlite:///{paths.MLFLOW_DIR / 'mlflow.db'}"


def configure() -> str:
    """Point MLflow at the project store (or ``MLFLOW_TRACKING_URI``) and its experiment."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        # An explicit artifact location: the default (./mlruns) depends on the caller's directory.
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT_NAME)
    return uri


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


def save_figure(fig: Any, folder: Path, name: str) -> Path:
    """Save a matplotlib (PNG) or plotly (HTML) figure as ``<folder>/<name>`` and log it to MLflow."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(fig, "savefig"):
        out = folder / f"{name}.png"
        # No timestamp in the PNG metadata, so reruns give byte-identical files.
        fig.savefig(out, dpi=110, bbox_inches="tight", metadata={"Software": None})
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


def log_sklearn_model(model: Any, X_example: Any, predict_fn: str = "predict", name: str = "model") -> str:
    """Log a fitted scikit-learn estimator to the active MLflow run; returns the model URI to register.

    The signature names the input columns, so scoring knows which columns to pass; the
    pyfunc flavour calls ``predict_fn`` (``predict_proba`` for a classifier's probabilities).
    Pickled with cloudpickle and shipped with the project's ``utils`` package
    (``code_paths``), so classes defined here unpickle anywhere; skops, MLflow's default,
    refuses classes it was not told to trust.
    """
    example = X_example.head(5).reset_index(drop=True)
    signature = infer_signature(example, getattr(model, predict_fn)(example))
    info = mlflow.sklearn.log_model(
        model, name=name, signature=signature, input_example=example, pyfunc_predict_fn=predict_fn,
        code_paths=[str(paths.PROJECT_ROOT / "utils")], serialization_format="cloudpickle",
        pip_requirements=model_requirements(),
    )
    return info.model_uri
