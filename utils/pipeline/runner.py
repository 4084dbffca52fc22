"""The pipeline run behind ``run_all.py``: every step executed or reused, in catalog order.

It keeps the promise that nothing already produced is lost:

* a run writes only under ``outputs/runs/<run_id>/``;
* ``outputs/latest`` and the ``champion`` aliases move only when every step succeeded;
* one run at a time (:mod:`utils.pipeline.lock`);
* a step whose fingerprint matches a step of an earlier successful run is reused
  (its files hard-linked into the new run) instead of re-executed (:mod:`utils.pipeline.plan`).

The side effects go through three small interfaces, so the rules are unit-tested with
fakes: an :class:`~utils.pipeline.execute.Executor` (papermill), a :class:`Tracker`
(MLflow runs) and a :class:`~utils.pipeline.promotions.Registry` (the aliases).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from mlflow import MlflowClient

from utils.core import paths, tracking
from utils.core.hashing import sha256_bytes, sha256_file
from utils.pipeline import catalog, fingerprint, preflight, promotions
from utils.pipeline import params as params_mod
from utils.pipeline.execute import Executor, PapermillExecutor, StepFailed
from utils.pipeline.manifest import (
    RUN_LEVEL_FILES,
    StepRecord,
    base_manifest,
    file_set,
    git_state,
    link_or_copy,
    merge_metrics,
    new_run_id,
    update_latest,
    write_manifest,
    write_status,
)
from utils.pipeline.plan import Plan, RunOptions, find_reusable, fingerprint_step, forced, make_plan

class Tracker(Protocol):
    def start(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> str: ...

    def log_params(self, run_id: str, params: dict[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None: ...

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...

    def end(self, run_id: str, status: str) -> None: ...


class MlflowTracker:
    """One parent MLflow run per run_all.py invocation, one child per executed notebook."""

    def __init__(self) -> None:
        tracking.configure()
        self.client = MlflowClient()
        self.experiment_id = self.client.get_experiment_by_name(tracking.EXPERIMENT_NAME).experiment_id

    def start(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> str:
        if parent_id:
            tags = {**tags, "mlflow.parentRunId": parent_id}
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        for name, value in params.items():
            self.client.log_param(run_id, name, value)

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.client.log_metric(run_id, key, value)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)


def say(message: str) -> None:
    print(message, flush=True)


def run_pipeline(
    options: RunOptions,
    plan: Plan | None = None,
    executor: Executor | None = None,
    tracker: Tracker | None = None,
    registry: promotions.Registry | None = None,
    check_inputs: Callable[[dict], Any] | None = None,
) -> Path:
    """Run (or reuse) every step; return the run folder. Raises StepFailed, DataContractError, ParameterError."""
    started = time.time()
    plan = plan or make_plan(options)
    (check_inputs or check_user_inputs)(plan.resolved["00_data"])  # before any run folder or MLflow run exists
    executor = executor or PapermillExecutor()
    tracker = tracker or MlflowTracker()
    registry = registry or promotions.MlflowRegistry()

    run_id = new_run_id(options.profile)
    run = paths.RUNS_DIR / run_id
    run.mkdir(parents=True)
    write_status(run, "running")
    say(f"lead2value run {run_id} (profile {options.profile}) -> {run}")
    git = git_state()
    params_hash = sha256_bytes(json.dumps(plan.resolved, sort_keys=True).encode())
    manifest = base_manifest(run_id, options.profile, list(options.overrides), git, plan.resolved, params_hash,
                             plan.lock_hash, started)
    write_manifest(run, manifest)
    parent_id = tracker.start(f"run_all {run_id}", {
        "lead2value.run_id": run_id, "lead2value.profile": options.profile,
        "git.commit": git["commit"] or "unknown", "git.dirty": str(git["dirty"]), "params.hash": params_hash,
    })
    records: dict[str, StepRecord] = {}
    try:
        for index, step in enumerate(catalog.STEPS, start=1):
            record = fingerprint_step(step, plan, records)
            records[step.name] = record
            step_started = time.time()
            reusable, why = (None, "forced") if forced(step.name, options) else \
                find_reusable(step.name, record.fingerprint, record.parts, plan.manifests)
            if reusable is not None:
                reuse_step(run, reusable, record)
                say(f"[{index}/{len(catalog.STEPS)}] {step.name}: reused from {reusable['run_id']}")
            else:
                say(f"[{index}/{len(catalog.STEPS)}] {step.name}: executing ({why}) ...")
                record.reason = why
                execute_step(step, run, plan.resolved[step.name], record, executor, tracker, parent_id, options.progress)
                say(f"    done in {time.time() - step_started:.1f} s, peak kernel memory {record.peak_rss_mb or 0:.0f} MB "
                    f"(total elapsed {time.time() - started:.0f} s)")
            record.seconds = round(time.time() - step_started, 2)
            manifest["steps"][step.name] = record.to_manifest()
            write_manifest(run, manifest)
        fingerprint.save_hash_cache(plan.hash_cache)
    except BaseException as err:
        manifest["status"] = "failed"
        manifest["error"] = str(err)
        for name, record in records.items():
            if record.status == "pending":
                record.status = "failed"
            manifest["steps"][name] = record.to_manifest()
        write_manifest(run, manifest)
        write_status(run, "failed")
        tracker.end(parent_id, "FAILED")
        raise

    metrics = merge_metrics(run, [s.name for s in catalog.STEPS])
    tracker.log_metrics(parent_id, metrics)
    executed = [name for name, r in records.items() if r.status == "executed"]
    applied = promotions.apply_promotions(promotions.decisions(run, executed), registry)
    manifest["promotions"] = applied
    manifest["aliases"] = registry.champions()
    manifest["status"] = "succeeded"
    manifest["seconds"] = round(time.time() - started, 2)
    manifest["outputs"] = {rel: sha256_file(run / rel) for rel in sorted(file_set(run)) if rel not in RUN_LEVEL_FILES}
    write_manifest(run, manifest)
    tracker.log_artifact(parent_id, run / "manifest.json")
    tracker.log_artifact(parent_id, run / "metrics.json")
    tracker.end(parent_id, "FINISHED")
    write_status(run, "succeeded")
    update_latest(run)
    say(f"run {run_id} succeeded in {manifest['seconds']:.1f} s: executed {len(executed)}, "
        f"reused {len(records) - len(executed)}; outputs/latest -> runs/{run_id}")
    for decision in applied:
        say(f"    champion: {decision['name']} -> version {decision['version']} ({decision['reason']})")
    return run


def check_user_inputs(data_params: dict[str, Any]) -> None:
    """Read and check the user's files named by 00_data's parameters; print what was counted. Raises on a broken one."""
    for report in preflight.check_inputs(params_mod.with_defaults(catalog.step("00_data").notebook, data_params)):
        say(f"input check: {report.file}: {report.rows:,} rows, {report.n_warnings} counted warning(s)")
        for warning in report.warnings:
            say(f"    warning: {warning}")


def reuse_step(run: Path, reusable: dict, record: StepRecord) -> None:
    """Hard-link an earlier run's files of this step into ``run`` and take over its dataset hashes."""
    source = Path(reusable["_dir"])
    for rel in reusable["outputs"]:
        link_or_copy(source / rel, run / rel)
    record.status = "reused"
    record.reused_from = reusable["run_id"]
    record.outputs = dict(reusable["outputs"])
    record.datasets = dict(reusable.get("datasets", {}))


def execute_step(step: catalog.Step, run: Path, parameters: dict[str, Any], record: StepRecord, executor: Executor,
                 tracker: Tracker, parent_id: str, progress: bool) -> None:
    """Execute one notebook under its own child MLflow run; record the files and datasets it wrote."""
    child_id = tracker.start(step.name, {"lead2value.step": step.name, "lead2value.fingerprint": record.fingerprint},
                             parent_id)
    before = file_set(run)
    try:
        record.peak_rss_mb = executor.execute(step, run, {**parameters, "run_dir": str(run), "mlflow_run_id": child_id},
                                              progress)
    except BaseException:
        record.status = "failed"
        tracker.end(child_id, "FAILED")
        raise
    after = file_set(run)
    record.outputs = {rel: sha256_file(run / rel) for rel, sig in sorted(after.items())
                      if before.get(rel) != sig and rel not in RUN_LEVEL_FILES}
    missing = [d.name for d in catalog.produces(step.name) if not d.location(run).is_file()]
    if missing:
        tracker.end(child_id, "FAILED")
        record.status = "failed"
        raise StepFailed(step.name, f"{step.name} finished without writing its dataset(s) {', '.join(missing)} "
                                    f"(catalog: {', '.join(catalog.dataset(m).path for m in missing)})")
    record.datasets = {d.name: sha256_file(d.location(run)) for d in catalog.produces(step.name)}
    record.status = "executed"
    for suffix in (".ipynb", ".html"):
        executed_copy = run / "notebooks" / f"{step.name}{suffix}"
        if executed_copy.exists():
            tracker.log_artifact(child_id, executed_copy, artifact_path="notebook")
    tracker.end(child_id, "FINISHED")
