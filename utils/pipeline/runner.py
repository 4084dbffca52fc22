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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from utils.core import paths
from utils.core.hashing import sha256_bytes, sha256_file
from utils.pipeline import book, catalog, fingerprint
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
    successful_manifests,
    update_latest,
    write_manifest,
    write_status,
)
from utils.pipeline.plan import Plan, RunOptions, find_reusable, fingerprint_step, forced, make_plan

if TYPE_CHECKING:  # imported where used: the registry needs MLflow, which a step's process loads off its way
    from utils.pipeline import promotions


class Tracker(Protocol):
    def start(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> str: ...

    def end_stale(self) -> list[str]: ...

    def log_params(self, run_id: str, params: dict[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None: ...

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...

    def end(self, run_id: str, status: str) -> None: ...


class MlflowTracker:
    """One parent MLflow run per run_all.py invocation, one child per executed notebook."""

    def __init__(self) -> None:
        # MLflow loads here, not with the module: a scheduler's step process loads it beside its kernel's
        # start (utils.pipeline.handoff.BackgroundTracker), off the way to the notebook.
        from mlflow import MlflowClient

        from utils.core import tracking

        tracking.configure()
        self.client = MlflowClient()
        self.experiment_id = self.client.get_experiment_by_name(tracking.EXPERIMENT_NAME).experiment_id

    def start(self, name: str, tags: dict[str, str], parent_id: str | None = None) -> str:
        from utils.core import tracking

        return tracking.create_run(name, tags, parent_id, self.client, self.experiment_id)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(name, str(value)) for name, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(run_id, params=items[start:start + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """All in a few batches: one write per metric cost 0.6 s for a smoke run's 227."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
        for start in range(0, len(items), 1000):  # MLflow takes at most 1,000 metrics per batch
            self.client.log_batch(run_id, metrics=items[start:start + 1000])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def end_stale(self) -> list[str]:
        """Mark KILLED the run_all MLflow runs still RUNNING (:func:`utils.core.tracking.end_stale_runs`)."""
        from utils.core import tracking

        return tracking.end_stale_runs(self.client, self.experiment_id)


class RunNotFound(LookupError):
    """A run id that names no run, or a run that is no longer running."""


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class RunState:
    """A run in progress: its folder and manifest, the plan, its MLflow parent run and the step records so far.

    One process (``run_pipeline``) or several (a scheduler's tasks: ``begin_run``, then ``run_step`` per
    step, then ``finish_run``) carry a run through the same functions; between processes the state
    lives in the run's manifest.
    """

    run: Path
    manifest: dict
    plan: Plan
    options: RunOptions
    parent_id: str
    records: dict[str, StepRecord] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]


def run_pipeline(
    options: RunOptions,
    plan: Plan | None = None,
    executor: Executor | None = None,
    tracker: Tracker | None = None,
    registry: promotions.Registry | None = None,
    *,
    check_inputs: Callable[[dict], Any],
) -> Path:
    """Run (or reuse) every step in one process; return the run folder. Raises StepFailed, DataContractError, ParameterError.

    ``check_inputs(resolved parameters)`` checks the user's files before anything exists
    (run_all.py passes :func:`utils.pipeline.preflight.check_run`; it is imported only by the
    processes that begin a run, not by each scheduler task's).
    """
    tracker = tracker or MlflowTracker()
    state = begin_run(options, plan, tracker, check_inputs=check_inputs)
    # One executor for the whole run: it starts the next step's kernel while a step executes.
    own_executor = executor is None
    executor = executor or PapermillExecutor(overlap=True)
    try:
        for step in catalog.STEPS:
            if step is catalog.STEPS[-1] and hasattr(tracker, "load_in_background"):
                tracker.load_in_background()  # for finish_run, while the last notebook runs
            run_step(state, step.name, executor, tracker, prepare_next=True)
    except BaseException as err:
        interrupted = isinstance(err, KeyboardInterrupt)
        fail_run(state, "interrupted (Ctrl-C)" if interrupted else str(err), tracker, killed=interrupted)
        raise
    finally:
        if own_executor:
            executor.close()
    return finish_run(state, tracker, registry)


def begin_run(options: RunOptions, plan: Plan | None = None, tracker: Tracker | None = None, *,
              check_inputs: Callable[[dict], Any]) -> RunState:
    """Check the inputs, then create the run folder, its manifest and its MLflow parent run."""
    started = time.time()
    plan = plan or make_plan(options)
    check_inputs(plan.resolved)  # before any run folder or MLflow run exists
    tracker = tracker or MlflowTracker()
    stale = tracker.end_stale()
    if stale:
        say(f"marked {len(stale)} MLflow run(s) KILLED: left RUNNING by a run_all.py that is gone")
    run_id = new_run_id(options.profile)
    run = paths.RUNS_DIR / run_id
    run.mkdir(parents=True)
    write_status(run, "running")
    say(f"lead2value run {run_id} (profile {options.profile}) -> {run}")
    git = git_state()
    params_hash = sha256_bytes(json.dumps(plan.resolved, sort_keys=True).encode())
    manifest = base_manifest(run_id, options.profile, list(options.overrides), git, plan.resolved, params_hash,
                             plan.lock_hash, started)
    manifest["options"] = {"force": options.force, "force_from": options.force_from}
    parent_id = tracker.start(f"run_all {run_id}", {
        "lead2value.run_id": run_id, "lead2value.profile": options.profile,
        "git.commit": git["commit"] or "unknown", "git.dirty": str(git["dirty"]), "params.hash": params_hash,
    })
    manifest["mlflow_run_id"] = parent_id
    write_manifest(run, manifest)
    return RunState(run, manifest, plan, options, parent_id)


def resume_run(run_id: str) -> RunState:
    """The state of a run begun by ``begin_run`` in another process, read back from its manifest."""
    run = paths.RUNS_DIR / run_id
    manifest_file = run / "manifest.json"
    if not manifest_file.is_file():
        raise RunNotFound(f"no run '{run_id}' (looked for {manifest_file})")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("status") != "running":
        raise RunNotFound(f"run {run_id} is {manifest.get('status')}: only a running run takes more steps")
    options = RunOptions(profile=manifest["profile"], overrides=tuple(manifest.get("overrides", [])),
                         force=manifest.get("options", {}).get("force", False),
                         force_from=manifest.get("options", {}).get("force_from"), progress=False)
    plan = Plan(manifest["parameters"], successful_manifests(), sha256_file(paths.LOCK_FILE),
                fingerprint.load_hash_cache())
    records = {name: StepRecord(name, **{k: v for k, v in record.items() if k in StepRecord.__dataclass_fields__})
               for name, record in manifest.get("steps", {}).items() if record.get("status") in ("executed", "reused")}
    return RunState(run, manifest, plan, options, manifest["mlflow_run_id"], records)


def run_step(state: RunState, name: str, executor: Executor | None = None, tracker: Tracker | None = None,
             prepare_next: bool = False) -> StepRecord:
    """Execute or reuse one step of the run; its upstream steps must be done already.

    ``prepare_next``: while this step executes, an executor that can (``prepare``) starts the
    kernel of the next step in run order, in case that one executes too.
    """
    step = catalog.step(name)
    name = step.name
    missing = [up for up in catalog.upstream(name) if up not in state.records]
    if missing:
        raise StepFailed(name, f"{name} needs {', '.join(missing)} first: this run has not done them yet")
    index = catalog.STEPS.index(step) + 1
    record = fingerprint_step(step, state.plan, state.records)
    started = time.time()
    reusable, why = (None, "forced") if forced(name, state.options) else \
        find_reusable(name, record.fingerprint, record.parts, state.plan.manifests)
    try:
        if reusable is not None:
            if hasattr(executor, "drop"):
                executor.drop(step)  # a kernel started for it is not needed
            reuse_step(state.run, reusable, record)
            say(f"[{index}/{len(catalog.STEPS)}] {name}: reused from {reusable['run_id']}")
        else:
            say(f"[{index}/{len(catalog.STEPS)}] {name}: executing ({why}) ...")
            record.reason = why
            following = catalog.following(name)
            if prepare_next and following is not None and hasattr(executor, "prepare"):
                executor.prepare(following, state.run)
            execute_step(step, state.run, state.plan.resolved[name], record, executor or PapermillExecutor(),
                         tracker or MlflowTracker(), state.parent_id, state.options.progress)
            say(f"    done in {time.time() - started:.1f} s, peak kernel memory {record.peak_rss_mb or 0:.0f} MB")
    finally:
        record.seconds = round(time.time() - started, 2)
        if record.status == "pending":
            record.status = "failed"
        state.manifest["steps"][name] = record.to_manifest()
        write_manifest(state.run, state.manifest)
    state.records[name] = record
    fingerprint.save_hash_cache(state.plan.hash_cache)
    return record


def fail_run(state: RunState, error: str, tracker: Tracker | None = None, killed: bool = False) -> None:
    """Mark the run failed (or killed: interrupted): its folder stays for inspection; latest and the aliases do not move."""
    state.manifest["status"] = "killed" if killed else "failed"
    state.manifest["error"] = error
    write_manifest(state.run, state.manifest)
    write_status(state.run, state.manifest["status"])
    (tracker or MlflowTracker()).end(state.parent_id, "KILLED" if killed else "FAILED")


def finish_run(state: RunState, tracker: Tracker | None = None, registry: promotions.Registry | None = None) -> Path:
    """Every step done: merge metrics, apply this run's promotions, point outputs/latest at the run."""
    from utils.pipeline import promotions  # the model registry: MLflow

    tracker = tracker or MlflowTracker()
    registry = registry or promotions.MlflowRegistry()
    run, manifest = state.run, state.manifest
    missing = [s.name for s in catalog.STEPS if s.name not in state.records]
    if missing:
        raise StepFailed(missing[0], f"run {state.run_id} cannot finish: {', '.join(missing)} not done")
    metrics = merge_metrics(run, [s.name for s in catalog.STEPS])
    tracker.log_metrics(state.parent_id, metrics)
    executed = [name for name, r in state.records.items() if r.status == "executed"]
    # Only decisions taken by this run's executed steps, against the champion as it is now (compare and set).
    outcomes = promotions.apply_promotions(promotions.decisions(run, executed), registry, state.run_id)
    aliases = registry.champions()
    manifest["promotions"] = [o for o in outcomes if o["applied"]]
    manifest["models"] = promotions.model_records(run, manifest["steps"], outcomes, aliases)
    manifest["aliases"] = aliases
    manifest["status"] = "succeeded"
    started = datetime.fromisoformat(manifest["started"]).timestamp()
    manifest["seconds"] = round(time.time() - started, 2)
    manifest["outputs"] = {rel: sha256_file(run / rel) for rel in sorted(file_set(run)) if rel not in RUN_LEVEL_FILES}
    write_manifest(run, manifest)
    tracker.log_artifact(state.parent_id, run / "manifest.json")
    tracker.log_artifact(state.parent_id, run / "metrics.json")
    tracker.end(state.parent_id, "FINISHED")
    write_status(run, "succeeded")
    update_latest(run)
    try:
        say(f"    book: {book.build_book(run)}")
    except Exception as err:  # the run's results stand without their book; `make book` writes it again
        say(f"    warning: the book of the run was not written ({type(err).__name__}: {err}); `make book` retries")
    say(f"run {state.run_id} succeeded in {manifest['seconds']:.1f} s: executed {len(executed)}, "
        f"reused {len(state.records) - len(executed)}; outputs/latest -> runs/{state.run_id}")
    for name, model in manifest["models"].items():
        say(f"    {name}: {model['outcome']}")
        if model.get("scores_from"):
            say(f"        this run's scores: {model['scores_from']}")
    for line in drift_lines(metrics):
        say(line)
    return run


DRIFT_STATUS = {1.0: "warn", 2.0: "FAIL"}


def drift_lines(metrics: dict[str, float]) -> list[str]:
    """What 05 found about drift, for the terminal: a run reports drift and goes on, so it must be said."""
    found = [f"{key.removeprefix('scoring.drift_status_')} {DRIFT_STATUS[value]}" for key, value in sorted(metrics.items())
             if key.startswith("scoring.drift_status_") and value in DRIFT_STATUS]
    if not found:
        return []
    return [f"    drift: {', '.join(found)}: the new data differ from the training data; see the banner of "
            f"dashboard.html and tables/drift_*.csv before acting on the scores"]


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
    except BaseException as err:
        record.status = "failed"
        tracker.end(child_id, "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
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
