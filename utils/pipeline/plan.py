"""Deciding, step by step, whether to execute or reuse: the runner's rules without its side effects.

A step is fingerprinted by its notebook, parameters, utils code, lock and the content
hashes of the datasets it reads. Those hashes are known once the producing steps have
run or been reused, so decisions are taken in run order. A step is reused when an
earlier successful run holds a step with the same fingerprint whose files are all still
there; otherwise the reason says what changed since the last successful run.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.core import paths
from utils.core.hashing import sha256_file
from utils.pipeline import catalog, fingerprint
from utils.pipeline import params as params_mod
from utils.pipeline.manifest import StepRecord, successful_manifests


@dataclass
class RunOptions:
    profile: str = params_mod.DEFAULT_PROFILE
    overrides: tuple[str, ...] = ()
    force: bool = False
    force_from: str | None = None
    progress: bool = True


@dataclass
class Plan:
    """What is known before a run starts: checked parameters, earlier runs, the lock's hash."""

    resolved: dict[str, dict[str, Any]]
    manifests: list[dict]
    lock_hash: str
    hash_cache: dict
    notes: list[str] = field(default_factory=list)  # relative input paths made absolute, for the terminal


def make_plan(options: RunOptions, runs_dir: Path | None = None) -> Plan:
    """Check the parameters (raises ParameterError) and gather what decisions need; executes nothing."""
    notes: list[str] = []
    resolved = params_mod.resolve([s.notebook for s in catalog.STEPS], options.profile, list(options.overrides),
                                  notes=notes)
    return Plan(resolved, successful_manifests(runs_dir), sha256_file(paths.LOCK_FILE), fingerprint.load_hash_cache(),
                notes)


def forced(step: str, options: RunOptions) -> bool:
    if options.force:
        return True
    if options.force_from:
        prefix = options.force_from.split("_")[0].zfill(2)
        return step.split("_")[0] >= prefix
    return False


def read_hashes(step: catalog.Step, records: Mapping[str, StepRecord]) -> dict[str, str]:
    """sha256 of every dataset the step reads, from the records of the steps that produced them."""
    hashes = {}
    for name in step.reads:
        producer = records.get(catalog.dataset(name).step)
        if producer is None or name not in producer.datasets:
            raise RuntimeError(f"{step.name} reads {name}, which no earlier step of this run produced")
        hashes[name] = producer.datasets[name]
    return hashes


def fingerprint_step(step: catalog.Step, plan: Plan, records: Mapping[str, StepRecord]) -> StepRecord:
    fp, parts = fingerprint.step_fingerprint(step.notebook, plan.resolved[step.name], read_hashes(step, records),
                                             plan.lock_hash, plan.hash_cache)
    return StepRecord(step.name, fp, parts)


def find_reusable(step: str, fp: str, parts: Mapping[str, str], manifests: list[dict]) -> tuple[dict | None, str]:
    """The newest earlier step with this fingerprint whose files are all still there, or why there is none."""
    for manifest in manifests:
        record = manifest.get("steps", {}).get(step)
        if not record or record.get("fingerprint") != fp:
            continue
        source = Path(manifest["_dir"])
        if all((source / rel).is_file() for rel in record.get("outputs", {})):
            return record | {"run_id": manifest["run_id"], "_dir": manifest["_dir"]}, ""
    if not manifests:
        return None, "no earlier successful run"
    last = manifests[0].get("steps", {}).get(step)
    if not last:
        return None, f"not in the last successful run {manifests[0]['run_id']}"
    before = last.get("parts", {})
    changed = sorted(k for k in set(parts) | set(before) if parts.get(k) != before.get(k))
    return None, f"changed since {manifests[0]['run_id']}: " + (", ".join(changed) or "its files are gone")


def up_to_date(plan: Plan, options: RunOptions) -> dict | None:
    """The last successful run if every step would be reused from it (nothing to do), else None."""
    if options.force or options.force_from or not plan.manifests:
        return None
    last = plan.manifests[0]
    source = Path(last["_dir"])
    records: dict[str, StepRecord] = {}
    for step in catalog.STEPS:
        previous = last.get("steps", {}).get(step.name)
        if not previous:
            return None
        try:
            record = fingerprint_step(step, plan, records)
        except RuntimeError:  # an earlier manifest without dataset hashes
            return None
        if previous.get("fingerprint") != record.fingerprint:
            return None
        if not all((source / rel).is_file() for rel in previous.get("outputs", {})):
            return None
        record.datasets = dict(previous.get("datasets", {}))
        records[step.name] = record
    return last
