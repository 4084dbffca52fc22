"""Fingerprints: what a notebook step depends on, reduced to one hash.

A step's fingerprint covers its notebook source (outputs stripped), its merged
parameters, the hashes of the raw files its ``*_path`` parameters name, the
``utils`` modules it imports (and what they import in turn), the lock file, and
the fingerprints of the steps upstream of it. Equal fingerprints mean the step
would compute the same thing, so a previous result can be reused.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from utils import paths

_HASH_CACHE_FILE = paths.OUTPUTS_DIR / ".hash_cache.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, cache: dict | None = None) -> str:
    """sha256 of a file; with a cache dict, unchanged files (same size and mtime) are not re-read."""
    path = Path(path)
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if cache is not None and key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    if cache is not None:
        cache[key] = value
    return value


def load_hash_cache() -> dict:
    try:
        return json.loads(_HASH_CACHE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def save_hash_cache(cache: dict) -> None:
    _HASH_CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = _HASH_CACHE_FILE.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache))
    os.replace(tmp, _HASH_CACHE_FILE)


def notebook_source_hash(notebook: Path) -> str:
    """Hash of a notebook's cells (type, source, tags) with outputs and execution counts ignored."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    essence = [
        (c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
         sorted(c.get("metadata", {}).get("tags", [])))
        for c in cells
    ]
    return sha256_bytes(json.dumps(essence).encode())


def _utils_imports(source: str) -> set[str]:
    """Names of ``utils`` modules a piece of Python source imports."""
    found = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return found
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "utils":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("utils."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("utils."))
    return found


def notebook_code_source(notebook: Path) -> str:
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            # IPython magics are not Python; drop them so the rest parses.
            lines.extend(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
    return "\n".join(lines)


def utils_closure(source: str, utils_dir: Path | None = None) -> list[str]:
    """Every ``utils`` module the source needs, directly or through other utils modules, sorted."""
    folder = utils_dir or paths.PROJECT_ROOT / "utils"
    todo, seen = set(_utils_imports(source)), set()
    while todo:
        name = todo.pop()
        module = folder / f"{name}.py"
        if name in seen or not module.exists():
            continue
        seen.add(name)
        todo |= _utils_imports(module.read_text(encoding="utf-8")) - seen
    return sorted(seen)


def utils_hash(modules: list[str], utils_dir: Path | None = None) -> str:
    folder = utils_dir or paths.PROJECT_ROOT / "utils"
    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode())
        digest.update((folder / f"{name}.py").read_bytes())
    resources = folder / "resources"
    if resources.is_dir():
        # Mapping tables and calibration constants are code too: they change results.
        for file in sorted(p for p in resources.rglob("*") if p.is_file()):
            digest.update(file.relative_to(folder).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def input_files(params: dict[str, Any]) -> dict[str, Path]:
    """Parameter name -> file for every non-empty ``*_path`` parameter (user-given raw inputs)."""
    return {
        name: paths.resolve_input(value)
        for name, value in sorted(params.items())
        if name.endswith("_path") and isinstance(value, str) and value
    }


def step_fingerprint(
    notebook: Path,
    params: dict[str, Any],
    upstream: dict[str, str],
    lock_hash: str,
    hash_cache: dict | None = None,
) -> tuple[str, dict[str, str]]:
    """The step's fingerprint and its parts (so a rerun can say *why* it re-executes)."""
    modules = utils_closure(notebook_code_source(notebook))
    parts = {
        "notebook": notebook_source_hash(notebook),
        "parameters": sha256_bytes(json.dumps(params, sort_keys=True, default=str).encode()),
        "utils": utils_hash(modules),
        "lock": lock_hash,
        "upstream": sha256_bytes(json.dumps(upstream, sort_keys=True).encode()),
    }
    for name, file in input_files(params).items():
        parts[f"input:{name}"] = sha256_file(file, hash_cache) if file.exists() else "missing"
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode()), parts
