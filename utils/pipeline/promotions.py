"""Moving the ``champion`` aliases at the end of a successful run.

Notebooks only record their gate decision (the ``lead_model`` and ``clv_model``
datasets); the runner applies the decisions of the steps it *executed* in this run,
after every step succeeded. A reused step's decision was taken in an earlier run,
against the champion of that time: it is history, never applied again.
"""
from __future__ import annotations

from collections.abc import Iterable
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


def apply_promotions(gate_decisions: Iterable[dict], target: Registry) -> list[dict]:
    """Point ``champion`` at every version the gates promoted. Returns the decisions applied."""
    applied = []
    for decision in gate_decisions:
        if decision["promote"]:
            target.set_champion(decision["name"], decision["version"])
            applied.append(decision)
    return applied
