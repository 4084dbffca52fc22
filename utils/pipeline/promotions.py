"""Moving the ``champion`` aliases at the end of a successful run, by decisions made in this run only.

Notebooks only record their gate decision (the ``lead_model`` and ``clv_model`` datasets).
After every step succeeded, the runner applies the decisions of the steps it *executed*
in this run. A reused step's decision was taken in an earlier run, against the champion
of that time: it is history, never applied again. A decision is applied only if the
champion is still the version its gate compared against (compare and set: if the alias
moved in between, by another run or by hand, the candidate was judged against the wrong
model, and it is not promoted). Every model's outcome, applied or not, is said in the
run's manifest and on the terminal.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from mlflow import MlflowClient

from utils.core import registry, tracking
from utils.core.files import read_json
from utils.pipeline import catalog

MODEL_NAMES = tuple(d.model for d in catalog.GATE_DATASETS)


class Registry(Protocol):
    def set_champion(self, name: str, version: str) -> None: ...

    def champions(self) -> dict[str, str | None]: ...


class MlflowRegistry:
    """The MLflow model registry at the configured tracking URI."""

    def set_champion(self, name: str, version: str) -> None:
        tracking.configure()
        MlflowClient().set_registered_model_alias(name, registry.CHAMPION_ALIAS, version)

    def champions(self) -> dict[str, str | None]:
        return {name: registry.champion_version(name) for name in MODEL_NAMES}


def decisions(run: Path, executed_steps: Iterable[str]) -> list[dict]:
    """The gate decisions recorded by the steps executed in this run (reused steps' decisions are history)."""
    executed = set(executed_steps)
    found = []
    for ds in catalog.GATE_DATASETS:
        if ds.step in executed and ds.location(run).exists():
            found.append(read_json(ds.location(run)))
    return found


def apply_promotions(gate_decisions: Iterable[dict], target: Registry, run_id: str | None = None) -> list[dict]:
    """Point ``champion`` at every version a gate of this run promoted, if the champion is still the one it compared
    against. Returns one outcome per decision: the decision with ``applied`` and ``outcome`` (a sentence)."""
    outcomes = []
    for decision in gate_decisions:
        name, version = decision["name"], decision["version"]
        current = target.champions().get(name)
        compared = decision.get("champion_version")
        if not decision["promote"]:
            applied, outcome = False, f"not promoted: {decision['reason']}"
        elif run_id is not None and decision.get("run_id") != run_id:
            applied, outcome = False, (f"not promoted: the decision was taken in run {decision.get('run_id')}, "
                                       f"not in this run {run_id}")
        elif current != compared:
            applied, outcome = False, (f"not promoted: the champion moved from {_v(compared)} to {_v(current)} since "
                                       f"this run's gate compared against {_v(compared)}; run again to judge "
                                       f"version {version} against the champion as it is now")
        else:
            target.set_champion(name, version)
            applied, outcome = True, f"champion -> version {version} ({decision['reason']})"
        outcomes.append({**decision, "applied": applied, "outcome": outcome})
    return outcomes


def _v(version: str | None) -> str:
    return "no champion" if version is None else f"version {version}"


def model_records(run: Path, steps: Mapping[str, Mapping], outcomes: Iterable[dict],
                  aliases: Mapping[str, str | None]) -> dict[str, dict]:
    """Per registered model, for the manifest: the version this run's files come from, its lineage and gate
    decision, what happened to the alias, and which version serves now."""
    by_name = {o["name"]: o for o in outcomes}
    records = {}
    for ds in catalog.GATE_DATASETS:
        location = ds.location(run)
        step = steps.get(ds.step, {})
        if not location.exists():
            continue
        decision = read_json(location)
        record = {key: decision.get(key) for key in ("version", "promote", "rule", "reason", "metric", "score",
                                                    "holdout", "champion_version", "champion_score", "difference",
                                                    "serves", "serving", "source", "lineage", "run_id")}
        record["champion_now"] = aliases.get(ds.model)
        if ds.model in by_name:
            record.update(decided="in this run", applied=by_name[ds.model]["applied"],
                          outcome=by_name[ds.model]["outcome"], scores_from=decision.get("serving"))
        else:
            origin = step.get("reused_from") or decision.get("run_id")
            record.update(decided=f"in run {origin} (step reused)", applied=False,
                          outcome=(f"champion stays {_v(aliases.get(ds.model))}: {ds.step} was reused from run "
                                   f"{origin}; its gate decision (version {decision.get('version')}) is history, "
                                   f"not applied again"),
                          scores_from=f"as decided in run {origin}: "
                                      f"{decision.get('serving') or decision.get('reason')}")
        records[ds.model] = record
    return records
