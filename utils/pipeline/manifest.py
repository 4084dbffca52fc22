"""What a run records about itself, and the run folders' bookkeeping.

``<run>/manifest.json`` holds the git commit and dirty flag, the merged parameters and
their hash, the lock hash, package versions, and per step: fingerprint and its parts,
status (executed, reused, failed), why, wall time, peak kernel memory, the files it
wrote and the content hash of each catalog dataset it produced. ``status.json`` says
whether the run is running, succeeded, failed or killed (interrupted, or found "running"
by a later run after its process died); ``outputs/latest`` moves only on success.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from utils.core import paths, versions
from utils.core.files import write_json

# Files a run writes about itself; they belong to no step.
RUN_LEVEL_FILES = {"manifest.json", "metrics.json", "params.json", "status.json"}


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
    outputs: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 (every file the step wrote)
    datasets: dict[str, str] = field(default_factory=dict)  # catalog dataset -> sha256 of its content

    def to_manifest(self) -> dict:
        record = asdict(self)
        record.pop("name")
        return record


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


def base_manifest(run_id: str, profile: str, overrides: list[str], git: dict, resolved: dict, params_hash: str,
                  lock_sha256: str, started: float) -> dict:
    return {
        "run_id": run_id,
        "status": "running",
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="microseconds"),
        "profile": profile,
        "overrides": list(overrides),
        "git": git,
        "parameters": resolved,
        "parameters_hash": params_hash,
        "lock_sha256": lock_sha256,
        "python": sys.version.split()[0],
        "packages": versions.package_versions(),
        "steps": {},
    }


def write_manifest(run: Path, manifest: dict) -> None:
    write_json(Path(run) / "manifest.json", {k: v for k, v in manifest.items() if not k.startswith("_")})


def write_status(run: Path, status: str) -> None:
    """running, succeeded, failed or killed; with the pid, so a later run can tell a dead run from a live one."""
    write_json(Path(run) / "status.json", {"status": status, "at": dt.datetime.now().isoformat(timespec="seconds"),
                                           "pid": os.getpid()})


def successful_manifests(runs_dir: Path | None = None) -> list[dict]:
    """Manifests of earlier successful runs, newest first (``_dir`` holds each run's folder)."""
    found = []
    for manifest_file in (runs_dir or paths.RUNS_DIR).glob("*/manifest.json"):
        try:
            manifest = json.loads(manifest_file.read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("status") == "succeeded":
            manifest["_dir"] = str(manifest_file.parent)
            found.append(manifest)
    return sorted(found, key=lambda m: m.get("started", ""), reverse=True)


def load_manifest(run_ref: str) -> dict:
    """A run's manifest (by run id or folder) with its metrics under ``_metrics``."""
    candidate = Path(run_ref)
    folder = candidate if candidate.is_dir() else paths.RUNS_DIR / run_ref
    manifest_file = folder / "manifest.json"
    if not manifest_file.exists():
        raise FileNotFoundError(f"no run '{run_ref}' (looked for {manifest_file})")
    manifest = json.loads(manifest_file.read_text())
    metrics_file = folder / "metrics.json"
    manifest["_metrics"] = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return manifest


def file_set(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every file under root."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def update_latest(run: Path, latest: Path | None = None) -> None:
    """Point outputs/latest (or ``latest``) at run, atomically (a relative symlink swapped with rename)."""
    latest = latest or paths.LATEST_LINK
    tmp = latest.with_name(f".{latest.name}.{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(Path(run).resolve(), latest.parent.resolve()))
    os.replace(tmp, latest)


def merge_metrics(run: Path, steps: list[str]) -> dict[str, float]:
    """Every step's metrics file merged into ``<run>/metrics.json`` (flat keys, sorted)."""
    merged: dict[str, float] = {}
    for step in steps:
        metrics_file = Path(run) / "metrics" / f"{step}.json"
        if metrics_file.exists():
            merged.update(json.loads(metrics_file.read_text()))
    merged = dict(sorted(merged.items()))
    write_json(Path(run) / "metrics.json", merged)
    return merged
