"""Parameters: what each notebook declares, what params/ sets, and the checks between them.

A notebook declares its parameters in its one cell tagged ``parameters`` as
typed constants (``n_leads: int = 20_000  # rows generated``). ``params/base.yaml``
holds the full-scale values and ``params/<profile>.yaml`` overrides them; keys
equal parameter names, and a key applies to every notebook that declares it.
papermill only warns on an unknown name, so the checks here stop the run first.

The parameters cell is read with ``ast`` rather than papermill: it is exact for
typed constants and keeps ``run_all.py``'s no-op path free of heavy imports.

Ranges and allowed values are declared once, next to the parameter, at the start of
its comment (the house convention)::

    n_leads: int = 20_000  # [100, 10_000_000] synthetic labelled leads
    train_share: float = 0.8  # (0, 1) earliest share of leads to train on
    psi_warn: float = 0.1  # [0, ] PSI above this: a prominent warning
    engine: str = "pandas"  # {pandas, spark} how to score

``[a, b]`` inclusive, ``(a, b)`` exclusive, ``[a, b)`` / ``(a, b]`` mixed, an empty side
unbounded; ``{a, b}`` the allowed values of a str. Rules between parameters
(``psi_warn <= psi_fail``) and the allowed items of comma-separated lists are declared
once below (:data:`CROSS_RULES`, :data:`LIST_ITEMS`). Every value is checked before a
notebook starts; a notebook's own default must satisfy its declaration.

Relative ``*_path`` values become absolute here: from the current directory for a
``--set`` (where the user typed it), from the project root for a ``params/*.yaml`` file.
"""
from __future__ import annotations

import ast
import difflib
import json
import operator
import re
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


CLV_FROM_ONE_PLACE = "the CLV data comes from a transactions file or from the four CLV files, not both"
# Rules between parameters, checked on the values a run will use (defaults included):
# (left, relation, right, why). "excludes": not both set (non-empty).
CROSS_RULES: tuple[tuple[str, str, str, str], ...] = (
    ("psi_warn", "<=", "psi_fail", "drift must warn before it fails the run"),
    ("junk_threshold", "<=", "decision_threshold", "a lead scored as junk cannot also be passed to sales"),
    ("compare_folds", "<=", "compare_sample_size", "every fold of the pycaret screen needs leads"),
    *(("transactions_path", "excludes", name, CLV_FROM_ONE_PLACE)
      for name in ("clv_customers_path", "clv_web_actions_path", "clv_campaigns_path", "clv_purchases_path")),
)
# Comma-separated list parameters and the items each may hold.
PYCARET_CLASSIFIERS = ("lr", "knn", "nb", "dt", "svm", "rbfsvm", "gpc", "mlp", "ridge", "rf", "qda", "ada", "gbc",
                       "lda", "et", "lightgbm", "dummy")
# utils.leads.model.FAMILIES (a test keeps the two equal): importing it would load scikit-learn on the no-op path.
LEAD_MODEL_FAMILIES = ("lightgbm", "lr")
LIST_ITEMS: dict[str, tuple[str, ...]] = {"compare_candidates": PYCARET_CLASSIFIERS,
                                          "model_families": LEAD_MODEL_FAMILIES}

_RELATIONS = {"<=": operator.le, "<": operator.lt}
_RANGE = re.compile(r"^([\[(])\s*([^\s,\[\]()]*)\s*,\s*([^\s,\[\]()]*)\s*([\])])(?=\s|$)")
_ALLOWED = re.compile(r"^\{([^{}]*)\}(?=\s|$)")


class ParameterError(ValueError):
    """A parameters file, override or notebook parameters cell is wrong; the message says where."""


@dataclass(frozen=True)
class Domain:
    """A parameter's declared range (``[a, b)`` ...) or allowed values (``{a, b}``)."""

    text: str
    low: float | None = None
    high: float | None = None
    low_closed: bool = True
    high_closed: bool = True
    allowed: tuple[str, ...] | None = None

    def violation(self, value: Any) -> str | None:
        """Why ``value`` is outside the domain, or None."""
        if self.allowed is not None:
            if value in self.allowed:
                return None
            close = difflib.get_close_matches(str(value), list(self.allowed), n=1, cutoff=0.75)
            return f"must be one of {self.text}{f' (did you mean {close[0]!r}?)' if close else ''}"
        below = self.low is not None and (value < self.low if self.low_closed else value <= self.low)
        above = self.high is not None and (value > self.high if self.high_closed else value >= self.high)
        return f"must be in {self.text}" if below or above else None


@dataclass(frozen=True)
class Declared:
    name: str
    type_name: str
    default: Any
    help: str
    domain: Domain | None = None
    notebook: str = ""


def parameters_cell(notebook: Path) -> str:
    """The source of the one cell tagged ``parameters``."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ParameterError(f"{notebook}: {len(tagged)} cells tagged 'parameters' (want exactly 1)")
    source = tagged[0]["source"]
    return "".join(source) if isinstance(source, list) else source


def parse_domain(comment: str, type_name: str, where: str) -> tuple[Domain | None, str]:
    """The domain declared at the start of a parameter's comment, and the rest of the comment."""
    allowed = _ALLOWED.match(comment)
    if allowed:
        if type_name != "str":
            raise ParameterError(f"{where}: {{...}} lists the allowed values of a str, not of a {type_name}")
        values = tuple(v.strip() for v in allowed.group(1).split(","))
        return Domain(allowed.group(0), allowed=values), comment[allowed.end():].strip()
    bounds = _RANGE.match(comment)
    if not bounds:
        if comment.startswith(("[", "{")):
            raise ParameterError(f"{where}: the comment starts with {comment[:1]!r} but is not a range such as "
                                 f"[0, 1], (0, 1], [1, ] or a set such as {{a, b}}: {comment!r}")
        return None, comment
    if type_name not in ("int", "float"):
        raise ParameterError(f"{where}: a range needs an int or float parameter, not a {type_name}")
    opening, low_text, high_text, closing = bounds.groups()
    low, high = (_bound(text, where) for text in (low_text, high_text))
    if low is not None and high is not None and low > high:
        raise ParameterError(f"{where}: range {bounds.group(0)} is empty")
    domain = Domain(bounds.group(0), low, high, opening == "[", closing == "]")
    return domain, comment[bounds.end():].strip()


def _bound(text: str, where: str) -> float | None:
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ParameterError(f"{where}: range bound {text!r} is not a number")
    return value


def parameter_comments(source: str) -> dict[int, str]:
    """Line number -> the comment ending that line, joined with the indented comment-only lines under it.

    A comment too long for one line goes on below, indented under its ``#``::

        n_leads: int = 20_000  # [100, 10_000_000] synthetic labelled leads (when leads_path
                               # is empty)

    A comment line that starts at the margin is a comment of its own, never a continuation.
    """
    lines = source.splitlines()
    comments = {}
    for number, line in enumerate(lines, start=1):
        if "#" not in line or line.lstrip().startswith("#"):
            continue
        parts = [line.split("#", 1)[1].strip()]
        for following in lines[number:]:
            if not (following[:1].isspace() and following.lstrip().startswith("#")):
                break
            parts.append(following.lstrip()[1:].strip())
        comments[number] = " ".join(part for part in parts if part)
    return comments


def declared_parameters(notebook: Path) -> dict[str, Declared]:
    """Name -> declaration for every ``name: type = constant`` in the parameters cell."""
    source = parameters_cell(notebook)
    comments = parameter_comments(source)
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
        where = f"{notebook}: parameter '{node.target.id}'"
        domain, help_text = parse_domain(comments.get(node.lineno, ""), type_name, where)
        if domain is not None and _type_ok(default, type_name) and domain.violation(default):
            raise ParameterError(f"{where}: its default {default!r} {domain.violation(default)}")
        declared[node.target.id] = Declared(node.target.id, type_name, default, help_text, domain,
                                            Path(notebook).name)
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
    notebooks: list[Path], profile: str, overrides: list[str], params_dir: Path | None = None,
    notes: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Notebook stem -> the parameters to inject, after every check. Raises ParameterError.

    ``notes`` (if given) receives one line per relative path made absolute.
    """
    declared = {nb.stem: declared_parameters(nb) for nb in notebooks}
    by_name: dict[str, list[Declared]] = {}
    for decls in declared.values():
        for name, decl in decls.items():
            by_name.setdefault(name, []).append(decl)
    all_declared = {name: decls[0] for name, decls in by_name.items()}
    folder = params_dir or paths.PARAMS_DIR
    values, origins = load_profile_with_origins(profile, folder)
    for item in overrides:
        name, sep, raw = item.partition("=")
        if not sep:
            raise ParameterError(f"--set {item}: expected name=value")
        if name not in all_declared:
            raise ParameterError(_unknown(name, all_declared, "--set"))
        values[name] = coerce(raw, all_declared[name].type_name, name)
        origins[name] = f"--set {name}={raw}"
    for name, value in values.items():
        where = origins[name]
        if name in RUNNER_PARAMETERS:
            raise ParameterError(f"{where}: '{name}' is set by run_all.py, not by a params file")
        if name not in all_declared:
            raise ParameterError(_unknown(name, all_declared, where))
        decl = all_declared[name]
        if not _type_ok(value, decl.type_name):
            raise ParameterError(f"{where}: '{name}' must be {decl.type_name}, got {value!r} ({type(value).__name__})")
        if decl.type_name == "float":
            values[name] = value = float(value)
        for each in by_name[name]:
            problem = each.domain.violation(value) if each.domain else None
            if problem:
                raise ParameterError(f"{where}: '{name}' {problem} (declared in notebooks/{each.notebook}), "
                                     f"got {value!r}")
    check_lists(values, origins)
    check_cross_rules({**{n: d.default for n, d in all_declared.items()}, **values}, origins)
    for name, value in list(values.items()):
        if name.endswith("_path") and isinstance(value, str) and value:
            from_set = origins[name].startswith("--set")
            absolute = paths.resolve_input(value, base=None if from_set else paths.PROJECT_ROOT)
            if str(absolute) != value and notes is not None:
                base = f"your working directory {Path.cwd()}" if from_set else f"the project root {paths.PROJECT_ROOT}"
                notes.append(f"{name}: {value} -> {absolute} (relative to {base})")
            values[name] = str(absolute)
    return {stem: {n: values[n] for n in decls if n in values} for stem, decls in declared.items()}


def check_lists(values: dict[str, Any], origins: dict[str, str]) -> None:
    """Every item of a comma-separated list parameter (:data:`LIST_ITEMS`) is one it may hold."""
    for name, allowed in LIST_ITEMS.items():
        if name not in values:
            continue
        items = [item.strip() for item in str(values[name]).split(",")]
        unknown = [item for item in items if item not in allowed]
        if unknown or not any(items):
            raise ParameterError(f"{origins[name]}: '{name}' is a comma-separated list of {', '.join(allowed)}; "
                                 f"{'got ' + repr(unknown[0]) if unknown else 'it is empty'}")


def check_cross_rules(values: dict[str, Any], origins: dict[str, str] | None = None) -> None:
    """The rules between parameters (:data:`CROSS_RULES`) on the values a run will use."""
    origins = origins or {}
    for left, relation, right, why in CROSS_RULES:
        if left not in values or right not in values:
            continue
        a, b = values[left], values[right]
        broken = bool(a and b) if relation == "excludes" else not _RELATIONS[relation](a, b)
        if broken:
            where = "; ".join(dict.fromkeys(origins[n] for n in (left, right) if n in origins)) or "the defaults"
            rule = f"'{left}' and '{right}' cannot both be set" if relation == "excludes" else \
                f"'{left}' ({a!r}) must be {relation} '{right}' ({b!r})"
            raise ParameterError(f"{where}: {rule}: {why}")


def load_profile_with_origins(profile: str, params_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """``load_profile`` and, per key, the file it came from (for messages)."""
    folder = params_dir or paths.PARAMS_DIR
    base = _read_yaml(folder / f"{BASE_PROFILE}.yaml")
    merged = load_profile(profile, folder)
    origins = {name: f"params/{BASE_PROFILE}.yaml" for name in base}
    if profile != DEFAULT_PROFILE:
        origins.update({name: f"params/{profile}.yaml" for name in _read_yaml(folder / f"{profile}.yaml")})
    return merged, origins


def with_defaults(notebook: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of the notebook: its declared default unless ``values`` sets it."""
    return {name: values.get(name, decl.default) for name, decl in declared_parameters(notebook).items()}


def _unknown(name: str, declared: dict[str, Declared], where: str) -> str:
    close = difflib.get_close_matches(name, list(declared), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{where}: unknown parameter '{name}'{hint}: no notebook declares it"
