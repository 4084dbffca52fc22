"""MLflow tracking, metrics files, figures and the model promotion gate.

The store is local and embedded (SQLite under ``outputs/mlflow``) unless
``MLFLOW_TRACKING_URI`` says otherwise. ``run_all.py`` opens one parent run per
invocation and one child run per notebook; a notebook resumes its child run
through :func:`start_step`. A notebook opened by hand starts a run of its own.

Promotion is deferred: a notebook only *records* its decision under
``<run>/promotions/``; the ``champion`` alias moves when the whole run has
succeeded (:func:`apply_promotions`), so a run that dies half-way changes nothing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from utils import paths

EXPERIMENT_NAME = "lead2value"
CHAMPION_ALIAS = "champion"
# Set by run_all.py for every notebook it runs: promotions then wait for the whole run.
DEFERRED_PROMOTION_ENV = "LEAD2VALUE_DEFER_PROMOTION"


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


def start_step(mlflow_run_id: str, step: str) -> mlflow.ActiveRun:
    """Resume the child run ``run_all.py`` created, or start a standalone one."""
    configure()
    if mlflow.active_run() is not None:
        mlflow.end_run()
    if mlflow_run_id:
        return mlflow.start_run(run_id=mlflow_run_id)
    return mlflow.start_run(run_name=f"{step} (interactive)", tags={"lead2value.step": step})


def end_step() -> None:
    """Close the notebook's run. run_all.py sets the final status of its own child runs."""
    if mlflow.active_run() is not None:
        mlflow.end_run()


def record_metrics(run: Path, step: str, metrics: dict[str, float]) -> Path:
    """Write ``<run>/metrics/<step>.json`` (flat keys) and log them to the active MLflow run."""
    clean = {key: float(value) for key, value in metrics.items()}
    out = Path(run) / "metrics" / f"{step}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing.update(clean)
    out.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    if mlflow.active_run() is not None:
        mlflow.log_metrics(clean)
    return out


def save_figure(fig: Any, run: Path, name: str) -> Path:
    """Save a matplotlib (PNG) or plotly (HTML) figure under ``figures/`` and log it to MLflow."""
    folder = paths.figures_dir(Path(run))
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


def save_table(df: Any, run: Path, name: str) -> Path:
    """Save a result table as ``tables/<name>.csv`` and log it to MLflow."""
    out = paths.tables_dir(Path(run)) / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6g")
    if mlflow.active_run() is not None:
        mlflow.log_artifact(str(out), artifact_path="tables")
    return out


def model_requirements(
    packages: tuple[str, ...] = ("mlflow", "cloudpickle", "numpy", "pandas", "scipy", "scikit-learn", "lightgbm"),
) -> list[str]:
    """Pinned pip requirements for a logged model, read from the environment.

    Passing them explicitly spares MLflow its requirement inference, which loads the
    model in a subprocess and costs tens of seconds per logged model.
    """
    from utils.env import package_versions

    return [f"{name}=={version}" for name, version in package_versions(packages).items() if version != "not installed"]


# --- model registry -----------------------------------------------------------------------


def champion_version(name: str) -> str | None:
    """The registered version the ``champion`` alias points at, or None."""
    configure()
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:
        return None


def load_champion(name: str) -> Any | None:
    """The champion as its native (scikit-learn) object, to score it on a new holdout."""
    if champion_version(name) is None:
        return None
    import mlflow.sklearn

    return mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION_ALIAS}")


def gate_decision(score: float, champion_score: float | None, higher_is_better: bool = True) -> tuple[bool, str]:
    """Promote when there is no champion, or when the new score is not worse on the same holdout."""
    if champion_score is None:
        return True, "no champion yet"
    better_or_equal = score >= champion_score if higher_is_better else score <= champion_score
    verb = "not worse than" if better_or_equal else "worse than"
    return better_or_equal, f"new {score:.4f} is {verb} champion {champion_score:.4f} on the same holdout"


def register_candidate(
    model_uri: str,
    name: str,
    run: Path,
    score: float,
    champion_score: float | None,
    metric: str,
    higher_is_better: bool = True,
    champion_note: str | None = None,
) -> dict:
    """Register a model version, apply the promotion gate and record the decision.

    Every trained model is registered; only the alias depends on the gate. Under
    run_all.py the alias moves at the end of the run; standalone it moves now.
    """
    configure()
    current = champion_version(name)
    version = mlflow.register_model(model_uri, name).version
    promote, reason = gate_decision(score, champion_score, higher_is_better)
    if champion_score is None and current is not None:
        # e.g. the champion was trained on other features (another data source) and cannot score this holdout
        reason = f"champion version {current} could not be scored on this holdout ({champion_note or 'no score'})"
    decision = {
        "name": name,
        "version": str(version),
        "promote": bool(promote),
        "reason": reason,
        "metric": metric,
        "score": float(score),
        "champion_version": current,
        "champion_score": None if champion_score is None else float(champion_score),
    }
    client = MlflowClient()
    client.set_model_version_tag(name, version, "gate", "promote" if promote else "reject")
    client.set_model_version_tag(name, version, "gate_reason", reason)
    client.set_model_version_tag(name, version, metric, f"{score:.6f}")
    out = Path(run) / "promotions" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(decision, indent=2) + "\n")
    if mlflow.active_run() is not None:
        mlflow.set_tags({f"gate.{name}": decision["reason"], f"gate.{name}.promote": str(promote)})
    if not os.environ.get(DEFERRED_PROMOTION_ENV):
        apply_promotions(run)
    return decision


def serving_model_uri(name: str, run: Path) -> str:
    """The model version this run serves: the one its gate chose, else the champion."""
    decision_file = Path(run) / "promotions" / f"{name}.json"
    if decision_file.exists():
        decision = json.loads(decision_file.read_text())
        version = decision["version"] if decision["promote"] else decision["champion_version"]
        if version is not None:
            return f"models:/{name}/{version}"
    return f"models:/{name}@{CHAMPION_ALIAS}"


def apply_promotions(run: Path) -> list[dict]:
    """Point ``champion`` at every version this run's gates promoted. Returns the decisions applied."""
    configure()
    client = MlflowClient()
    applied = []
    for decision_file in sorted((Path(run) / "promotions").glob("*.json")):
        decision = json.loads(decision_file.read_text())
        if decision["promote"]:
            client.set_registered_model_alias(decision["name"], CHAMPION_ALIAS, decision["version"])
            applied.append(decision)
    return applied


def aliases_snapshot(names: tuple[str, ...] = ("lead_scoring", "clv")) -> dict[str, str | None]:
    """Which version each model's champion alias points at (for manifests and tests)."""
    return {name: champion_version(name) for name in names}
