"""The model registry: which version is the champion, and the promotion gate.

Every trained model is registered; the alias ``champion`` names the version in use.
A notebook only *records* its gate decision (the run's ``<name>_gate`` dataset); the
alias moves when the whole run has succeeded (:mod:`utils.pipeline.promotions`), so a
run that dies half-way changes nothing. Stages are deprecated in MLflow: no stages.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from utils.core import tracking
from utils.core.files import read_json, write_json
from utils.core.serving import unwrap

CHAMPION_ALIAS = "champion"


def champion_version(name: str) -> str | None:
    """The registered version the ``champion`` alias points at, or None."""
    tracking.configure()
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:
        return None


def load_champion(name: str) -> Any | None:
    """The champion as its native (scikit-learn) estimator, to score it on a new holdout."""
    if champion_version(name) is None:
        return None
    return unwrap(mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION_ALIAS}"))


def champion_score(champion: Any | None, X: Any, y: Any, metric: Callable[[Any, Any], float],
                   predict: Callable[[Any, Any], Any]) -> float | None:
    """``metric(y, predict(champion, X))`` on this run's holdout; None without a champion, or when the
    champion needs columns ``X`` lacks (it could not score these rows, nor the new ones)."""
    if champion is None:
        return None
    needed = getattr(champion, "feature_names_in_", None)
    if needed is not None and not set(needed) <= set(X.columns):
        return None
    columns = list(needed) if needed is not None else list(X.columns)
    return metric(y, predict(champion, X[columns]))


def gate_decision(score: float, champion_score: float | None, higher_is_better: bool = True) -> tuple[bool, str]:
    """Promote when there is no champion, or when the new score is not worse on the same holdout."""
    if champion_score is None:
        return True, "no champion yet"
    better_or_equal = score >= champion_score if higher_is_better else score <= champion_score
    verb = "not worse than" if better_or_equal else "worse than"
    return better_or_equal, f"new {score:.4f} is {verb} champion {champion_score:.4f} on the same holdout"


def register_candidate(model_uri: str, name: str, decision_file: Path, score: float, champion_score: float | None,
                       metric: str, higher_is_better: bool = True, champion_note: str | None = None) -> dict:
    """Register a model version, apply the promotion gate and record the decision in ``decision_file``.

    Every trained model is registered; only the alias depends on the gate, and the
    alias itself moves later (:func:`utils.pipeline.promotions.apply_promotions`).
    """
    tracking.configure()
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
    write_json(decision_file, decision)
    if mlflow.active_run() is not None:
        mlflow.set_tags({f"gate.{name}": decision["reason"], f"gate.{name}.promote": str(promote)})
    return decision


def serving_model_uri(name: str, decision_file: Path | None = None) -> str:
    """The model version a run serves: the one its gate chose (``decision_file``), else the champion."""
    if decision_file is not None and Path(decision_file).exists():
        decision = read_json(decision_file)
        version = decision["version"] if decision["promote"] else decision["champion_version"]
        if version is not None:
            return f"models:/{name}/{version}"
    return f"models:/{name}@{CHAMPION_ALIAS}"
