"""The model registry: which version is the champion, lineage on every version, and the gate's record.

Every trained model is registered, with tags saying what it was trained on, by which run
and code, and how it was judged (:mod:`utils.core.lineage`). The alias ``champion`` names
the version in use. A model step only *records* its gate decision (the run's ``lead_model``
or ``clv_model`` dataset, :func:`register_candidate`); the alias moves when the whole
``run_all.py`` run has succeeded, and only if the champion is still the one the gate
compared against (:mod:`utils.pipeline.promotions`). A notebook run by hand registers
(tagged ``lead2value.interactive``) but never moves the alias. The rules themselves are in
:mod:`utils.core.gate`. Stages are deprecated in MLflow: no stages.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from utils.core import gate, lineage, tracking
from utils.core.files import read_json, write_json
from utils.core.parallel import predict_in_chunks
from utils.core.serving import unwrap

CHAMPION_ALIAS = "champion"
# Versions registered before lineage tags existed: the parameters of their run's 00_data step
# that name the user's files (empty, "-" or "synthetic" meant the synthetic data).
LEGACY_SOURCE_PARAMETERS = {"lead_scoring": ("leads_path",),
                            "clv": ("transactions_path", "clv_customers_path", "clv_purchases_path")}
_NO_FILE = ("", "-", "synthetic")
_LOGGED_MODEL_URI = re.compile(r"^models:/(m-[0-9a-f]+)$")


def champion_version(name: str) -> str | None:
    """The registered version the ``champion`` alias points at, or None."""
    found = _champion(name)
    return None if found is None else str(found.version)


def _champion(name: str) -> ModelVersion | None:
    tracking.configure()
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def load_champion(name: str) -> Any | None:
    """The champion as its native (scikit-learn) object, or None without a champion."""
    if champion_version(name) is None:
        return None
    return unwrap(mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION_ALIAS}"))


def champion_score(champion: Any | None, X: Any, y: Any, metric: Callable[[Any, Any], float],
                   predict: Callable[[Any, Any], Any]) -> float | None:
    """``metric(y, predict(champion, X))`` on this run's holdout; None without a champion, or when the
    champion needs columns ``X`` lacks (it could not score these rows, nor the new ones)."""
    predictions, _ = _predict_on(champion, X, predict)
    return None if predictions is None else float(metric(y, predictions))


def _predict_on(model: Any | None, X: Any, predict: Callable[[Any, Any], Any]) -> tuple[Any | None, str]:
    """(predictions, "") or (None, why the model cannot score ``X``)."""
    if model is None:
        return None, "no model"
    needed = getattr(model, "feature_names_in_", None)
    if needed is not None:
        missing = [str(c) for c in needed if c not in X.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            return None, f"it needs columns this holdout lacks: {shown}"
    columns = list(needed) if needed is not None else list(X.columns)
    try:
        return predict_in_chunks(lambda rows: predict(model, rows), X[columns], model=model), ""
    except Exception as err:  # noqa: BLE001 - any failure means the same: it cannot score these rows
        return None, f"it fails on this holdout: {_first_line(err)}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200] if text else ''}"


# --- what a version was trained on ----------------------------------------------------------


def version_source(version: ModelVersion, client: MlflowClient | None = None) -> gate.Source:
    """The data a registered version was trained on: its lineage tags, else traced through its run, else unknown."""
    tags = version.tags or {}
    kind = tags.get(lineage.TAG + "data_kind")
    if kind in gate.KINDS:
        return gate.Source(kind, tags.get(lineage.TAG + "data_source", ""),
                           tags.get(lineage.TAG + "data_sha256") or None, tags.get(lineage.TAG + "data", ""))
    traced = trace_legacy_source(version, client or MlflowClient())
    return traced or gate.Source(gate.UNKNOWN, description="registered without lineage tags; its data cannot be traced")


def trace_legacy_source(version: ModelVersion, client: MlflowClient) -> gate.Source | None:
    """For a version registered before lineage tags: the data parameters of its run_all run's 00_data step.

    Returns None when the version was not made by a run_all.py run, or that run did not
    execute 00_data (it reused it), or the model name is not one of the project's.
    """
    keys = LEGACY_SOURCE_PARAMETERS.get(version.name)
    if not keys or not version.run_id:
        return None
    try:
        run = client.get_run(version.run_id)
        parent = run.data.tags.get("mlflow.parentRunId")
        if not parent:
            return None
        siblings = client.search_runs([run.info.experiment_id], filter_string=(
            f"tags.mlflow.parentRunId = '{parent}' and tags.`lead2value.step` = '00_data'"), max_results=1)
    except MlflowException:
        return None
    if not siblings:
        return None
    params = siblings[0].data.params
    if not any(key in params for key in keys):
        return None
    how = f"traced through run {parent}: its 00_data parameters"
    files = [params[key] for key in keys if params.get(key, "") not in _NO_FILE]
    if files:
        return gate.Source(gate.USER, files[0], None, f"your file {Path(files[0]).name} ({how})", inferred=how)
    return gate.Source(gate.SYNTHETIC, "synthetic", None, f"synthetic data ({how})", inferred=how)


def champion_for_gate(name: str, holdout: gate.Holdout, rule: gate.GateRule) -> gate.Champion | None:
    """The champion as it is now, with its predictions on the candidate's holdout when this project can make them."""
    found = _champion(name)
    if found is None:
        return None
    client = MlflowClient()
    source = version_source(found, client)
    try:
        model = mlflow.sklearn.load_model(f"models:/{name}/{found.version}")
    except Exception as err:  # noqa: BLE001 - e.g. pickled against modules this version of the project no longer has
        return gate.Champion(str(found.version), source, None, f"it cannot be loaded: {_first_line(err)}")
    predictions, problem = _predict_on(model, holdout.X, rule.predict)
    return gate.Champion(str(found.version), source, predictions, problem)


# --- registering a candidate and recording the decision --------------------------------------


def register_version(model_uri: str, name: str, tags: Mapping[str, str]) -> str:
    """A new version of the registered model ``name`` (created if need be) from ``model_uri``; its number.

    ``mlflow.register_model`` does the same but prints "Successfully registered model" and
    "Created version" to stderr: red lines in every executed notebook, for news the notebook
    prints itself. The client calls are silent; the version is the same (source, run, tags).
    ``model_uri`` is usually a logged model's ``models:/<model_id>`` (:func:`tracking.log_model`).
    """
    client = MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    logged = _LOGGED_MODEL_URI.match(model_uri)
    created = client.create_model_version(name, model_uri, tags=dict(tags), model_id=logged and logged.group(1))
    return str(created.version)


def register_candidate(model_uri: str, name: str, decision_file: Path, model: Any, holdout: gate.Holdout,
                       rule: gate.GateRule, source: Mapping[str, Any], context: Mapping[str, Any],
                       trained_on: str) -> dict:
    """Judge the candidate against the champion as it is now, register it with its lineage, record the decision.

    ``source``: the data set's source record (:func:`utils.core.lineage.data_source`);
    ``context``: run_id, profile, git_commit, git_dirty, interactive. The decision goes to
    ``decision_file`` (the step's gate dataset) and onto the version's tags. Every trained
    model is registered; the alias is never moved here (see the module docstring).
    """
    tracking.configure()
    champion = champion_for_gate(name, holdout, rule)
    candidate = predict_in_chunks(lambda rows: rule.predict(model, rows), holdout.X, model=model)
    verdict = gate.decide(lineage.source_of(source), candidate, holdout, rule, champion)
    held_out = holdout.describe()
    tags = lineage.version_tags(source, context, held_out, rule.metric_name, verdict.score, trained_on)
    version = register_version(model_uri, name, tags)
    served = champion.version if verdict.serves_champion else version
    decision = {
        "name": name,
        "version": version,
        "promote": bool(verdict.promote),
        "rule": verdict.rule,
        "reason": verdict.reason,
        "metric": rule.metric_name,
        "higher_is_better": rule.higher_is_better,
        "score": verdict.score,
        "holdout": held_out,
        "champion_version": champion.version if champion else None,
        "champion_source": champion.source.label() if champion else None,
        "champion_kind": champion.source.kind if champion else None,
        "champion_score": verdict.champion_score,
        "champion_problem": (champion.problem or None) if champion else None,
        "difference": verdict.difference,
        "serves": served,
        "serving_score": verdict.champion_score if verdict.serves_champion else verdict.score,
        "run_id": context.get("run_id"),
        "interactive": bool(context.get("interactive")),
        "source": dict(source),
        "lineage": {key.removeprefix(lineage.TAG): value for key, value in tags.items()},
    }
    decision["serving"] = serving_note(decision)
    client = MlflowClient()
    described = lineage.description(source, context, held_out, rule.metric_name, verdict.score, trained_on)
    client.update_model_version(name, version,
                                description=f"{described} · gate: {gate_word(decision)} ({verdict.rule})")
    for key, value in {"gate": gate_word(decision), "gate_rule": verdict.rule, "gate_reason": verdict.reason[:4900],
                       "gate_champion": decision["champion_version"] or "none"}.items():
        client.set_model_version_tag(name, version, lineage.TAG + key, value)
    write_json(decision_file, decision)
    if mlflow.active_run() is not None:
        mlflow.set_tags({**tags, f"gate.{name}": verdict.reason[:4900], f"gate.{name}.promote": str(verdict.promote),
                         f"gate.{name}.version": version})
    return decision


def gate_word(decision: Mapping[str, Any]) -> str:
    return "promote" if decision["promote"] else "reject"


def serving_note(decision: Mapping[str, Any]) -> str:
    """One sentence: which version this run serves, why, and its score on this run's holdout."""
    name, version, served = decision["name"], decision["version"], decision.get("serves")
    rows = (decision.get("holdout") or {}).get("rows")
    on_rows = f" on this run's holdout of {rows:,} rows" if rows is not None else " on this run's holdout"
    score = decision.get("serving_score")
    figure = f"{decision['metric']} {score:.4f}{on_rows}" if score is not None else "no score on this run's holdout"
    why = _short_reason(decision)
    if served == version:
        promoted = "promoted" if decision["promote"] else "not promoted"
        return f"serving {name} v{version}, this run's candidate, {promoted} ({why}); {figure}"
    return (f"serving {name} v{served}, the champion: candidate v{version} was not promoted ({why}); "
            f"v{served}: {figure}")


def _short_reason(decision: Mapping[str, Any]) -> str:
    rule, diff = decision.get("rule"), decision.get("difference")
    if rule == "paired_comparison" and diff:
        return (f"{decision['metric']} difference {diff['estimate']:+.4f}, interval [{diff['low']:+.4f}, "
                f"{diff['high']:+.4f}], margin {diff['margin']}")
    champion = f"champion v{decision.get('champion_version')}"
    whose = "your" if decision.get("champion_kind") == gate.USER else "untraced"
    short = {
        "no_champion": "no champion yet",
        "user_replaces_synthetic": f"trained on your data, replaces synthetic {champion}",
        "user_replaces_untraced": f"trained on your data, replaces untraced {champion}",
        "upgrade": f"{champion}, same data source, cannot be scored by this version of the project",
        "synthetic_never_replaces": f"trained on synthetic data; {champion} was trained on {whose} data",
        "not_comparable": f"{champion} was trained on other data and cannot be scored on this holdout",
        "too_little_evidence": f"holdout of {(decision.get('holdout') or {}).get('rows', 0):,} rows is too small",
    }
    return short.get(rule, decision.get("reason", ""))


def serving_model_uri(name: str, decision_file: Path | None = None) -> str:
    """The model version a run serves: the one its gate chose (``decision_file``), else the champion."""
    if decision_file is not None and Path(decision_file).exists():
        decision = read_json(decision_file)
        version = decision.get("serves")
        if version is None:  # a record written before the gate said what it serves
            version = decision["version"] if decision["promote"] else decision.get("champion_version")
        if version is not None:
            return f"models:/{name}/{version}"
    return f"models:/{name}@{CHAMPION_ALIAS}"


def serving_summary(name: str, decision_file: Path) -> str:
    """The serving sentence of a run's gate record; without one (a notebook run alone), the current champion."""
    if not Path(decision_file).exists():
        return f"serving {name} v{champion_version(name)}, the current champion (no gate decision in this run folder)"
    decision = read_json(decision_file)
    if decision.get("serving"):
        return decision["serving"]
    served = serving_model_uri(name, decision_file).rsplit("/", 1)[-1]
    return f"serving {name} v{served} ({decision.get('reason', 'no reason recorded')})"
