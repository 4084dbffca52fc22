"""The pipeline engine behind ``run_all.py``.

Runs the numbered notebooks in order with papermill, each into the run's own
directory, and keeps the promise that nothing already produced is lost:

* a run writes only under ``outputs/runs/<run_id>/``;
* ``outputs/latest`` and the ``champion`` aliases move only when every step succeeded;
* one run at a time (a lock file), so two runs cannot corrupt outputs or the MLflow store;
* a step whose fingerprint matches a step of an earlier successful run is reused
  (its files hard-linked into the new run) instead of re-executed.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils import fingerprint, paths
from utils import params as params_mod


@dataclass(frozen=True)
class Step:
    name: str
    depends_on: tuple[str, ...] = ()

    @property
    def notebook(self) -> Path:
        return paths.NOTEBOOKS_DIR / f"{self.name}.ipynb"


# The explicit run order (never a glob) and what each step reads from upstream.
STEPS: tuple[Step, ...] = (
    Step("00_data"),
    Step("01_eda", ("00_data",)),
    Step("02_cleaning", ("00_data",)),
    Step("03_lead_model", ("02_cleaning",)),
    Step("04_clv_model", ("02_cleaning",)),
    Step("05_scoring", ("02_cleaning", "03_lead_model", "04_clv_model")),
)

LOCK_PATH = paths.OUTPUTS_DIR / ".run_all.lock"
# Files a run writes about itself; they belong to no step.
RUN_LEVEL_FILES = {"manifest.json", "metrics.json", "params.json", "status.json"}


class RunLockedError(RuntimeError):
    """Another run_all.py holds the lock."""


class StepFailed(RuntimeError):
    def __init__(self, step: str, message: str, executed_copy: Path):
        self.step, self.executed_copy = step, executed_copy
        super().__init__(message)


@dataclass
class StepRecord:
    name: str
    fingerprint: str
    parts: dict[str, str]
    status: str = "pending"  # executed | reused | failed
    reason: str = ""
    reused_from: str | None = None
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


def say(message: str) -> None:
    print(message, flush=True)


# --- the lock -------------------------------------------------------------------------------


@contextmanager
def run_lock(lock_path: Path = LOCK_PATH) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock for the whole run; released by the OS if we die."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunLockedError(
            f"another run_all.py is running ({holder}); wait for it to finish. "
            f"Lock file: {lock_path}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}")
    handle.flush()
    try:
        yield
    finally:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# --- git and small helpers --------------------------------------------------------------------


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=10)
            return out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            return ""

    sha = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if sha else None
    return {"commit": sha or None, "dirty": dirty}


def new_run_id(profile: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{profile}-{secrets.token_hex(2)}"


def file_set(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every file under root."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def update_latest(run: Path) -> None:
    """Point outputs/latest at run, atomically (a symlink swapped with rename)."""
    tmp = paths.LATEST_LINK.with_name(f".latest.{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(Path("runs") / run.name)
    os.replace(tmp, paths.LATEST_LINK)


def successful_manifests(runs_dir: Path = paths.RUNS_DIR) -> list[dict]:
    """Manifests of earlier successful runs, newest first."""
    found = []
    for manifest_file in runs_dir.glob("*/manifest.json"):
        try:
            manifest = json.loads(manifest_file.read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("status") == "succeeded":
            manifest["_dir"] = str(manifest_file.parent)
            found.append(manifest)
    return sorted(found, key=lambda m: m.get("started", ""), reverse=True)


def find_reusable(step: str, fp: str, parts: dict[str, str], manifests: list[dict]) -> tuple[dict | None, str]:
    """The newest earlier step with this fingerprint whose files are all still there, or why none."""
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
    changed = sorted(k for k in set(parts) | set(last.get("parts", {})) if parts.get(k) != last.get("parts", {}).get(k))
    return None, f"changed since {manifests[0]['run_id']}: " + (", ".join(changed) or "its files are gone")


# --- memory sampling --------------------------------------------------------------------------


class PeakMemory:
    """Samples the RSS of this process's children (the notebook kernel) while a step runs."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- executing one notebook -------------------------------------------------------------------


def execute_notebook(step: Step, run: Path, parameters: dict[str, Any], progress: bool) -> None:
    """Run one notebook with papermill into ``<run>/notebooks/``, then export HTML."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = run / "notebooks" / f"{step.name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            str(step.notebook), str(out), parameters=parameters, kernel_name="python3",
            progress_bar=progress, cwd=str(paths.PROJECT_ROOT), log_output=False,
        )
    except PapermillExecutionError as err:
        first_line = next((line for line in err.source.splitlines() if line.strip()), "")
        raise StepFailed(
            step.name,
            f"{step.name} failed in cell {err.exec_count}: `{first_line.strip()}`\n"
            f"    {err.ename}: {err.evalue}\n    executed copy: {out}",
            out,
        ) from None
    finally:
        if out.exists():
            export_html(out)


def export_html(notebook: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    notebook.with_suffix(".html").write_text(body, encoding="utf-8")


def kernel_environment() -> None:
    """Pin what makes numbers move between runs: thread counts and hashing."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "2")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    # Notebooks import `utils` from the project root whatever directory the kernel starts in.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(paths.PROJECT_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )


# --- the run ----------------------------------------------------------------------------------


@dataclass
class RunOptions:
    profile: str = params_mod.DEFAULT_PROFILE
    overrides: tuple[str, ...] = ()
    force: bool = False
    force_from: str | None = None
    progress: bool = True


Plan = tuple[dict[str, dict[str, Any]], dict[str, StepRecord], list[dict]]


def plan(options: RunOptions) -> Plan:
    """Check parameters and fingerprint every step, without executing anything."""
    resolved = params_mod.resolve([s.notebook for s in STEPS], options.profile, list(options.overrides))
    lock_hash = fingerprint.sha256_file(paths.LOCK_FILE)
    cache = fingerprint.load_hash_cache()
    records: dict[str, StepRecord] = {}
    for step in STEPS:
        upstream = {d: records[d].fingerprint for d in step.depends_on}
        fp, parts = fingerprint.step_fingerprint(step.notebook, resolved[step.name], upstream, lock_hash, cache)
        records[step.name] = StepRecord(step.name, fp, parts)
    fingerprint.save_hash_cache(cache)
    return resolved, records, successful_manifests()


def forced(step: str, options: RunOptions) -> bool:
    if options.force:
        return True
    if options.force_from:
        prefix = options.force_from.split("_")[0].zfill(2)
        return step.split("_")[0] >= prefix
    return False


def run_pipeline(options: RunOptions, planned: Plan | None = None) -> Path:
    """Run (or reuse) every step; returns the run directory. Raises on failure.

    ``planned`` is the result of :func:`plan` when the caller already made it.
    """
    kernel_environment()
    started = time.time()
    resolved, records, manifests = planned or plan(options)
    from utils import preflight  # reads the user's files: after the cheap parameter checks

    data_step = STEPS[0]
    for report in preflight.check_inputs(params_mod.with_defaults(data_step.notebook, resolved[data_step.name])):
        say(f"input check: {report.file}: {report.rows:,} rows, {report.n_warnings} counted warning(s)")
        for warning in report.warnings:
            say(f"    warning: {warning}")
    decisions: dict[str, tuple[dict | None, str]] = {}
    for step in STEPS:
        if forced(step.name, options):
            decisions[step.name] = (None, "forced")
        else:
            record = records[step.name]
            decisions[step.name] = find_reusable(step.name, record.fingerprint, record.parts, manifests)

    run_id = new_run_id(options.profile)
    run = paths.RUNS_DIR / run_id
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps(resolved, indent=2, sort_keys=True) + "\n")
    write_status(run, "running")
    say(f"lead2value run {run_id} (profile {options.profile}) -> {run}")

    from utils import tracking  # heavy import, after the cheap checks

    os.environ[tracking.DEFERRED_PROMOTION_ENV] = "1"
    tracking.configure()
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = mlflow.get_experiment_by_name(tracking.EXPERIMENT_NAME).experiment_id
    git = git_state()
    params_hash = fingerprint.sha256_bytes(json.dumps(resolved, sort_keys=True).encode())
    parent = client.create_run(
        experiment_id,
        run_name=run_id,
        tags={"git.commit": str(git["commit"]), "git.dirty": str(git["dirty"]),
              "params.hash": params_hash, "profile": options.profile, "lead2value.run_dir": str(run)},
    )
    parent_id = parent.info.run_id
    manifest = base_manifest(run_id, options, git, resolved, params_hash, started)
    total = len(STEPS)
    try:
        for index, step in enumerate(STEPS, start=1):
            record = records[step.name]
            reusable, reason = decisions[step.name]
            step_start = time.time()
            if reusable is not None:
                reuse_step(step, run, reusable, record)
                record.status, record.reused_from = "reused", reusable["run_id"]
                record.reason = f"fingerprint matches run {reusable['run_id']}"
                say(f"[{index}/{total}] {step.name}: reused from {reusable['run_id']} (unchanged)")
            else:
                say(f"[{index}/{total}] {step.name}: executing ({reason}) ...")
                record.reason = reason
                child = client.create_run(
                    experiment_id, run_name=step.name,
                    tags={"mlflow.parentRunId": parent_id, "lead2value.step": step.name},
                )
                before = file_set(run)
                parameters = dict(resolved[step.name], run_dir=str(run), mlflow_run_id=child.info.run_id)
                try:
                    with PeakMemory() as memory:
                        execute_notebook(step, run, parameters, options.progress)
                except BaseException:
                    record.status = "failed"
                    log_step_artifacts(client, child.info.run_id, run, step)
                    client.set_terminated(child.info.run_id, "FAILED")
                    raise
                record.peak_rss_mb = round(memory.peak / 2**20, 1)
                after = file_set(run)
                record.outputs = {
                    rel: fingerprint.sha256_file(run / rel)
                    for rel, sig in sorted(after.items())
                    if before.get(rel) != sig and rel not in RUN_LEVEL_FILES
                }
                record.status = "executed"
                for name, value in resolved[step.name].items():
                    client.log_param(child.info.run_id, name, value)
                log_step_artifacts(client, child.info.run_id, run, step)
                client.set_terminated(child.info.run_id, "FINISHED")
            record.seconds = round(time.time() - step_start, 2)
            if record.status == "executed":
                say(f"    done in {record.seconds:.1f} s, peak kernel memory {record.peak_rss_mb:.0f} MB "
                    f"(total elapsed {time.time() - started:.0f} s)")
            manifest["steps"][step.name] = step_manifest(record)
            write_json(run / "manifest.json", manifest)
    except BaseException as err:
        manifest["status"] = "failed"
        manifest["error"] = str(err)
        for name, record in records.items():
            manifest["steps"].setdefault(name, step_manifest(record))
        write_json(run / "manifest.json", manifest)
        write_status(run, "failed")
        client.set_terminated(parent_id, "FAILED")
        raise

    metrics = merge_metrics(run)
    for key, value in metrics.items():
        client.log_metric(parent_id, key, value)
    applied = tracking.apply_promotions(run)
    manifest["promotions"] = applied
    manifest["aliases"] = tracking.aliases_snapshot()
    manifest["status"] = "succeeded"
    manifest["seconds"] = round(time.time() - started, 2)
    manifest["outputs"] = {rel: fingerprint.sha256_file(run / rel) for rel in sorted(file_set(run))
                           if rel not in RUN_LEVEL_FILES}
    write_json(run / "manifest.json", manifest)
    client.log_artifact(parent_id, str(run / "manifest.json"))
    client.log_artifact(parent_id, str(run / "metrics.json"))
    client.set_terminated(parent_id, "FINISHED")
    write_status(run, "succeeded")
    update_latest(run)
    executed = [n for n, r in records.items() if r.status == "executed"]
    say(f"run {run_id} succeeded in {manifest['seconds']:.1f} s: executed {len(executed)}, "
        f"reused {len(records) - len(executed)}; outputs/latest -> runs/{run_id}")
    for decision in applied:
        say(f"    champion: {decision['name']} -> version {decision['version']} ({decision['reason']})")
    return run


def reuse_step(step: Step, run: Path, reusable: dict, record: StepRecord) -> None:
    source = Path(reusable["_dir"])
    for rel, digest in reusable["outputs"].items():
        link_or_copy(source / rel, run / rel)
    record.outputs = dict(reusable["outputs"])


def log_step_artifacts(client: Any, run_id: str, run: Path, step: Step) -> None:
    for suffix in (".ipynb", ".html"):
        executed = run / "notebooks" / f"{step.name}{suffix}"
        if executed.exists():
            client.log_artifact(run_id, str(executed), artifact_path="notebook")


def merge_metrics(run: Path) -> dict[str, float]:
    """Every step's metrics file merged into ``<run>/metrics.json`` (flat keys, sorted)."""
    merged: dict[str, float] = {}
    for step in STEPS:
        metrics_file = run / "metrics" / f"{step.name}.json"
        if metrics_file.exists():
            merged.update(json.loads(metrics_file.read_text()))
    write_json(run / "metrics.json", dict(sorted(merged.items())))
    return merged


def base_manifest(run_id: str, options: RunOptions, git: dict, resolved: dict, params_hash: str, started: float) -> dict:
    from utils import env

    return {
        "run_id": run_id,
        "status": "running",
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "profile": options.profile,
        "overrides": list(options.overrides),
        "git": git,
        "parameters": resolved,
        "parameters_hash": params_hash,
        "lock_sha256": fingerprint.sha256_file(paths.LOCK_FILE),
        "python": sys.version.split()[0],
        "packages": env.package_versions(),
        "steps": {},
    }


def step_manifest(record: StepRecord) -> dict:
    return {
        "status": record.status,
        "reason": record.reason,
        "reused_from": record.reused_from,
        "fingerprint": record.fingerprint,
        "parts": record.parts,
        "seconds": record.seconds,
        "peak_rss_mb": record.peak_rss_mb,
        "outputs": record.outputs,
    }


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def write_status(run: Path, status: str) -> None:
    write_json(run / "status.json", {"status": status, "at": dt.datetime.now().isoformat(timespec="seconds")})


def up_to_date(options: RunOptions, planned: Plan) -> dict | None:
    """The last successful run if every step would be reused from it (nothing to do), else None."""
    if options.force or options.force_from:
        return None
    _, records, manifests = planned
    if not manifests:
        return None
    last = manifests[0]
    steps = last.get("steps", {})
    source = Path(last["_dir"])
    for name, record in records.items():
        previous = steps.get(name)
        if not previous or previous.get("fingerprint") != record.fingerprint:
            return None
        if not all((source / rel).is_file() for rel in previous.get("outputs", {})):
            return None
    return last


# --- comparing two runs -----------------------------------------------------------------------


def load_manifest(run_ref: str) -> dict:
    candidate = Path(run_ref)
    folder = candidate if candidate.is_dir() else paths.RUNS_DIR / run_ref
    manifest_file = folder / "manifest.json"
    if not manifest_file.exists():
        raise FileNotFoundError(f"no run '{run_ref}' (looked for {manifest_file})")
    manifest = json.loads(manifest_file.read_text())
    metrics_file = folder / "metrics.json"
    manifest["_metrics"] = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return manifest


def compare_runs(run_a: str, run_b: str) -> list[str]:
    """Human-readable lines saying what differs between two runs: parameters, data, code, metrics."""
    a, b = load_manifest(run_a), load_manifest(run_b)
    lines = [f"comparing {a['run_id']} (A) with {b['run_id']} (B)"]

    def diff(title: str, left: dict, right: dict) -> None:
        keys = sorted(set(left) | set(right))
        changed = [k for k in keys if left.get(k) != right.get(k)]
        lines.append(f"{title}: {'identical' if not changed else f'{len(changed)} differ'}")
        for key in changed:
            lines.append(f"    {key}: {left.get(key, '—')}  ->  {right.get(key, '—')}")

    flat = lambda m: {f"{s}.{k}": v for s, ps in m.get("parameters", {}).items() for k, v in ps.items()}
    diff("parameters", flat(a), flat(b))
    diff("code", {"git.commit": a["git"].get("commit"), "git.dirty": a["git"].get("dirty"), "lock": a.get("lock_sha256")},
         {"git.commit": b["git"].get("commit"), "git.dirty": b["git"].get("dirty"), "lock": b.get("lock_sha256")})
    parts = lambda m, kind: {f"{s}.{k}": v for s, r in m.get("steps", {}).items() for k, v in r.get("parts", {}).items() if k.startswith(kind)}
    diff("step code (notebook + utils)", {**parts(a, "notebook"), **parts(a, "utils")}, {**parts(b, "notebook"), **parts(b, "utils")})
    diff("input data", parts(a, "input:"), parts(b, "input:"))
    data = lambda m: {k: v for k, v in m.get("outputs", {}).items() if k.startswith("data/")}
    diff("data outputs (sha256)", data(a), data(b))
    diff("metrics", a["_metrics"], b["_metrics"])
    return lines
