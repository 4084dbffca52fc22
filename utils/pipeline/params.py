"""Parameters: what each notebook declares, what params/ sets, and the checks between them.

A notebook declares its parameters in its one cell tagged ``parameters`` as
typed constants (``n_leads: int = 20_000  # rows generated``). ``params/base.yaml``
holds the full-scale values and ``params/<profile>.yaml`` overrides them; keys
equal parameter names, and a key applies to every notebook that declares it.
papermill only warns on an unknown name, so the checks here stop the run first.

The parameters cell is read with ``ast`` rather than papermill: it is exact for
typed constants and keeps ``run_all.py``'s no-op path free of heavy imports.
"""
from __future__ import annotations

import ast
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from utils.core import paths

# Set by run_all.py for each notebook (and by its scoring job), never by params files.
RUNNER_PARAMETERS = ("run_dir", "mlflow_run_id", "scoring_job")
BASE_PROFILE = "base"
DEFAULT_PROFILE = "default"
TYPES = {"int": int, "float": float, "str": str, "bool": bool}


class ParameterError(ValueError):
    """A parameters file, override or notebook parameters cell is wrong; the message says where."""


@dataclass(frozen=True)
class Declared:
    name: str
    type_name: str
    default: Any
    help: str


def parameters_cell(notebook: Path) -> str:
    """The source of the one cell tagged ``parameters``."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ParameterError(f"{notebook}: {len(tagged)} cells tagged 'parameters' (want exactly 1)")
    source = tagged[0]["source"]
    return "".join(source) if isinstance(source, list) else source


def declared_parameters(notebook: Path) -> dict[str, Declared]:
    """Name -> declaration for every ``name: type = constant`` in the parameters cell."""
    source = parameters_cell(notebook)
    comments = {i + 1: line.split("#", 1)[1].strip() for i, line in enumerate(source.splitlines()) if "#" in line}
    declared = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            raise ParameterError(f"{notebook}: parameters cell line {node.lineno}: only `name: type = constant` is allowed")
        type_name = ast.unparse(node.annotation)
        if type_name not in TYPES:
            raise ParameterError(f"{notebook}: parameter '{node.target.id}': type '{type_name}' is not one of {sorted(TYPES)}")
        try:
            default = ast.literal_eval(node.value)
        except ValueError as err:
            raise ParameterError(
                f"{notebook}: parameter '{node.target.id}': default must be a constant, not computed ({err})"
            ) from None
        declared[node.target.id] = Declared(node.target.id, type_name, default, comments.get(node.lineno, ""))
    return declared


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ParameterError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: must be a mapping of parameter: value")
    return data


def load_profile(profile: str, params_dir: Path | None = None) -> dict[str, Any]:
    """``base.yaml`` merged with ``<profile>.yaml`` (``default`` = base alone)."""
    folder = params_dir or paths.PARAMS_DIR
    merged = _read_yaml(folder / f"{BASE_PROFILE}.yaml")
    if profile != DEFAULT_PROFILE:
        profile_file = folder / f"{profile}.yaml"
        if not profile_file.exists():
            known = sorted([DEFAULT_PROFILE] + [p.stem for p in folder.glob("*.yaml") if p.stem != BASE_PROFILE])
            raise ParameterError(f"unknown profile '{profile}': known profiles are {', '.join(known)}")
        merged.update(_read_yaml(profile_file))
    return merged


def coerce(raw: str, type_name: str, name: str) -> Any:
    """A ``--set name=value`` string as the parameter's declared type."""
    if type_name == "str":
        return raw
    if type_name == "bool":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ParameterError(f"--set {name}={raw}: '{name}' is a bool (true/false)")
    try:
        return TYPES[type_name](raw.replace("_", "")) if type_name == "int" else float(raw)
    except ValueError:
        raise ParameterError(f"--set {name}={raw}: '{name}' is {type_name}, '{raw}' is not") from None


def _type_ok(value: Any, type_name: str) -> bool:
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def resolve(
    notebooks: list[Path], profile: str, overrides: list[str], params_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Notebook stem -> the parameters to inject, after every check. Raises ParameterError."""
    declared = {nb.stem: declared_parameters(nb) for nb in notebooks}
    all_declared: dict[str, Declared] = {}
    for decls in declared.values():
        all_declared.update(decls)
    values = load_profile(profile, params_dir)
    for item in overrides:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ParameterError(f"--set {item}: expected name=value")
        if name not in all_declared:
            raise ParameterError(_unknown(name, all_declared, "--set"))
        values[name] = coerce(raw, all_declared[name].type_name, name)
    for name, value in values.items():
        where = f"params/{profile}.yaml or params/base.yaml"
        if name in RUNNER_PARAMETERS:
            raise ParameterError(f"{where}: '{name}' is set by run_all.py, not by a params file")
        if name not in all_declared:
            raise ParameterError(_unknown(name, all_declared, where))
        decl = all_declared[name]
        if not _type_ok(value, decl.type_name):
            raise ParameterError(f"{where}: '{name}' must be {decl.type_name}, got {value!r} ({type(value).__name__})")
        if decl.type_name == "float":
            values[name] = float(value)
    return {stem: {n: values[n] for n in decls if n in values} for stem, decls in declared.items()}


def with_defaults(notebook: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of the notebook: its declared default unless ``values`` sets it."""
    return {name: values.get(name, decl.default) for name, decl in declared_parameters(notebook).items()}


def _unknown(name: str, declared: dict[str, Declared], where: str) -> str:
    close = difflib.get_close_matches(name, list(declared), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{where}: unknown parameter '{name}'{hint}: no notebook declares it"
