"""``python run_all.py --compare RUN_A RUN_B``: what differs between two runs."""
from __future__ import annotations

from utils.pipeline.manifest import load_manifest


def _flat_parameters(manifest: dict) -> dict:
    return {f"{s}.{k}": v for s, ps in manifest.get("parameters", {}).items() for k, v in ps.items()}


def _parts(manifest: dict, *kinds: str) -> dict:
    return {f"{s}.{k}": v for s, r in manifest.get("steps", {}).items() for k, v in r.get("parts", {}).items()
            if k.startswith(kinds)}


def _code(manifest: dict) -> dict:
    git = manifest.get("git", {})
    return {"git.commit": git.get("commit"), "git.dirty": git.get("dirty"), "lock": manifest.get("lock_sha256")}


def _data_outputs(manifest: dict) -> dict:
    return {k: v for k, v in manifest.get("outputs", {}).items() if k.startswith("data/")}


def compare_runs(run_a: str, run_b: str) -> list[str]:
    """Human-readable lines saying what differs between two runs: parameters, code, data, metrics."""
    a, b = load_manifest(run_a), load_manifest(run_b)
    lines = [f"comparing {a['run_id']} (A) with {b['run_id']} (B)"]

    def diff(title: str, left: dict, right: dict) -> None:
        changed = [k for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)]
        lines.append(f"{title}: {'identical' if not changed else f'{len(changed)} differ'}")
        lines.extend(f"    {key}: {left.get(key, '—')}  ->  {right.get(key, '—')}" for key in changed)

    diff("parameters", _flat_parameters(a), _flat_parameters(b))
    diff("code", _code(a), _code(b))
    diff("step code (notebook + utils)", _parts(a, "notebook", "utils"), _parts(b, "notebook", "utils"))
    diff("input data", _parts(a, "input:"), _parts(b, "input:"))
    diff("data outputs (sha256)", _data_outputs(a), _data_outputs(b))
    diff("metrics", a["_metrics"], b["_metrics"])
    return lines
