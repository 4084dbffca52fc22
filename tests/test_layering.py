"""The house rules of ``utils/``: layers import one way, no cycles, imports at the top.

    core <- leads, clv <- scoring <- pipeline

A module may import its own package and the layers below it; ``leads`` and ``clv``
never import each other. Imports inside functions are kept for heavy optional extras only.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from utils.core.paths import PROJECT_ROOT

UTILS = PROJECT_ROOT / "utils"
LAYER = {"core": 0, "leads": 1, "clv": 1, "scoring": 2, "pipeline": 3}
# Imported inside the one function that needs them: slow to import, and not needed by every caller.
LAZY_ALLOWED = {
    "pycaret": "5 s to import, only for the candidate screen",
    "papermill": "only to execute notebooks, never inside one",
    "nbclient": "papermill's notebook client: only to execute notebooks (and after skip_iri_grammar)",
    "nbformat": "only to export an executed notebook",
    "nbconvert": "only to export an executed notebook",
    "pyspark": "the optional Spark engine (needs Java)",
    "mlflow": "2 s to import: a scheduler's step process loads it in a thread beside its kernel's start",
}
# The project's modules that import MLflow at their top, lazily imported for the same reason.
LAZY_PROJECT_MODULES = {
    "utils.core.tracking": "MLflow tracking and logging",
    "utils.pipeline.promotions": "the MLflow model registry",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in UTILS.rglob("*.py"):
        parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported_utils_modules(path: Path, known: set[str]) -> set[str]:
    """The utils modules a file imports, anywhere in it (resolved to the longest known module name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import; use absolute `utils.` imports"
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            if name.split(".")[0] != "utils":
                continue
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imported_utils_modules(path, set(mods)) - {name} for name, path in mods.items()}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_lives_in_a_layer():
    assert {layer_of(m) for m in modules()} - {None} == set(LAYER)


def test_layers_import_one_way():
    wrong = []
    for module, imports in graph().items():
        mine = layer_of(module)
        for other in imports:
            theirs = layer_of(other)
            if mine is None or theirs is None or theirs == mine:
                continue
            if LAYER[theirs] >= LAYER[mine]:
                wrong.append(f"{module} imports {other} ({mine} may not import {theirs})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_imports_sit_at_the_top_except_heavy_optional_extras():
    inside = []
    for module, path in modules().items():
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [f"{node.module}.{a.name}" for a in node.names]
                else:
                    continue
                inside += [f"{module}.{fn.name} imports {n}" for n in names if not lazy_allowed(n)]
    assert not inside, "\n".join(inside)


def lazy_allowed(name: str) -> bool:
    return name.split(".")[0] in LAZY_ALLOWED or any(
        name == m or name.startswith(m + ".") for m in LAZY_PROJECT_MODULES
    )


def test_the_lazily_imported_project_modules_do_load_mlflow_at_their_top():
    """The exemption above holds only while it is true: each of those modules imports MLflow at module level."""
    mods = modules()
    for module in LAZY_PROJECT_MODULES:
        top = ast.parse(mods[module].read_text(encoding="utf-8")).body
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert any(n.split(".")[0] == "mlflow" for n in names), f"{module} no longer imports MLflow: drop its exemption"


def test_the_lazy_import_rule_names_what_it_allows():
    assert lazy_allowed("mlflow.MlflowClient") and lazy_allowed("utils.core.tracking")
    assert lazy_allowed("utils.pipeline.promotions") and not lazy_allowed("utils.pipeline.catalog")
    assert not lazy_allowed("utils.core") and not lazy_allowed("pandas")


def test_the_checks_catch_a_violation(tmp_path, monkeypatch):
    """The rules above can fail: an upward import, a sideways import and a cycle are all found."""
    fake = tmp_path / "utils"
    for rel, source in {
        "__init__.py": "", "core/__init__.py": "", "core/a.py": "from utils.scoring import s\n",
        "leads/__init__.py": "", "leads/l.py": "from utils.clv import c\n",
        "clv/__init__.py": "", "clv/c.py": "", "scoring/__init__.py": "", "scoring/s.py": "from utils.core import a\n",
        "pipeline/__init__.py": "",
    }.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(source)
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "UTILS", fake)
    monkeypatch.setattr(this, "PROJECT_ROOT", tmp_path)
    with pytest.raises(AssertionError, match="utils.core.a imports utils.scoring.s"):
        test_layers_import_one_way()
    with pytest.raises(AssertionError, match="utils.leads.l imports utils.clv.c"):
        test_layers_import_one_way()
    with pytest.raises(AssertionError, match="utils.core.a -> utils.scoring.s -> utils.core.a"):
        test_no_import_cycles()
