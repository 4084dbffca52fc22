"""Fingerprints: what a notebook step depends on, reduced to one hash.

A step's fingerprint covers its notebook source (outputs stripped), its merged
parameters, the hashes of the raw files its ``*_path`` parameters name, the content
hashes of the catalog datasets it reads, the ``utils`` modules it imports (and what
they import in turn, with the resource files of their packages), and the lock file.
Equal fingerprints mean the step would compute the same thing, so an earlier result
can be reused; the parts say *why* a step re-executes.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from utils.core import paths
from utils.core.hashing import sha256_bytes, sha256_file

_HASH_CACHE_FILE = paths.OUTPUTS_DIR / ".hash_cache.json"
UTILS_DIR = paths.PROJECT_ROOT / "utils"


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


def _cells(notebook: Path) -> list[dict]:
    return json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def notebook_source_hash(notebook: Path) -> str:
    """Hash of a notebook's cells (type, source, tags) with outputs and execution counts ignored."""
    essence = [(c["cell_type"], _source(c), sorted(c.get("metadata", {}).get("tags", []))) for c in _cells(notebook)]
    return sha256_bytes(json.dumps(essence).encode())


def notebook_code_source(notebook: Path) -> str:
    """The code cells of a notebook as one Python source (IPython magics dropped so it parses)."""
    lines = []
    for cell in _cells(notebook):
        if cell["cell_type"] == "code":
            lines.extend(line for line in _source(cell).splitlines() if not line.lstrip().startswith(("%", "!")))
    return "\n".join(lines)


# --- which utils modules a piece of code needs -----------------------------------------------------


def module_file(module: str, utils_dir: Path = UTILS_DIR) -> Path | None:
    """The file of a dotted ``utils`` module (``utils.leads.model`` -> utils/leads/model.py), or None."""
    parts = module.split(".")
    if parts[0] != "utils":
        return None
    base = utils_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def utils_imports(source: str, utils_dir: Path = UTILS_DIR) -> set[str]:
    """Dotted names of the ``utils`` modules a piece of Python source imports (absolute imports)."""
    return set(_utils_imports(source, Path(utils_dir)))


@functools.lru_cache(maxsize=1024)
def _utils_imports(source: str, utils_dir: Path) -> frozenset[str]:
    # Parsed once per distinct source: every step's closure walks the same modules (a no-op
    # rerun fingerprints six steps; walking their syntax trees was most of its time).
    found: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "utils":
            # `from utils.leads import model` names a module; `from utils.leads.model import X` a name in one.
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if module_file(child, utils_dir) is not None else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "utils")
    return frozenset(name for name in found if module_file(name, utils_dir) is not None)


def _with_parents(module: str) -> list[str]:
    """``utils.leads.model`` -> [utils, utils.leads, utils.leads.model]: importing a module runs its packages."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def utils_closure(source: str, utils_dir: Path = UTILS_DIR) -> list[str]:
    """Every ``utils`` module the source needs, directly or through other utils modules, sorted."""
    todo = {parent for name in utils_imports(source, utils_dir) for parent in _with_parents(name)}
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        file = module_file(name, utils_dir)
        if file is None:
            continue
        seen.add(name)
        for found in utils_imports(file.read_text(encoding="utf-8"), utils_dir):
            todo.update(p for p in _with_parents(found) if p not in seen)
    return sorted(seen)


def utils_hash(modules: list[str], utils_dir: Path = UTILS_DIR) -> str:
    """Hash of the modules' source files and of the ``resources/`` folders of their packages.

    Mapping tables and calibration constants are code too: they change results.
    """
    digest = hashlib.sha256()
    resource_dirs = set()
    for name in modules:
        file = module_file(name, utils_dir)
        digest.update(name.encode())
        digest.update(file.read_bytes())
        resource_dirs.add(file.parent / "resources")
    for folder in sorted(d for d in resource_dirs if d.is_dir()):
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(file.relative_to(utils_dir).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


# --- the fingerprint -------------------------------------------------------------------------


def input_files(params: Mapping[str, Any]) -> dict[str, Path]:
    """Parameter name -> file for every non-empty ``*_path`` parameter (user-given raw inputs)."""
    return {
        name: paths.resolve_input(value)
        for name, value in sorted(params.items())
        if name.endswith("_path") and isinstance(value, str) and value
    }


def step_fingerprint(
    notebook: Path,
    params: Mapping[str, Any],
    dataset_hashes: Mapping[str, str],
    lock_hash: str,
    hash_cache: dict | None = None,
    utils_dir: Path = UTILS_DIR,
) -> tuple[str, dict[str, str]]:
    """The step's fingerprint and its parts (so a rerun can say *why* it re-executes).

    ``dataset_hashes`` maps each catalog dataset the step reads to the sha256 of its content.
    """
    modules = utils_closure(notebook_code_source(notebook), utils_dir)
    parts = {
        "notebook": notebook_source_hash(notebook),
        "parameters": sha256_bytes(json.dumps(dict(params), sort_keys=True, default=str).encode()),
        "utils": utils_hash(modules, utils_dir),
        "lock": lock_hash,
    }
    for name, file in input_files(params).items():
        parts[f"input:{name}"] = sha256_file(file, hash_cache) if file.exists() else "missing"
    for name, digest in sorted(dataset_hashes.items()):
        parts[f"dataset:{name}"] = digest
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode()), parts
