"""Every path in the project, built from the project root.

papermill runs a notebook in the caller's directory and nbval in the notebook's own,
so nothing of the project's own may rely on the current directory. The user's input
files are the exception (:func:`resolve_input`): a relative path means one relative to
where the user typed it.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PARAMS_DIR = PROJECT_ROOT / "params"
# LEAD2VALUE_OUTPUTS moves everything generated elsewhere (tests use it to stay isolated).
OUTPUTS_DIR = Path(os.environ.get("LEAD2VALUE_OUTPUTS") or PROJECT_ROOT / "outputs").resolve()
RUNS_DIR = OUTPUTS_DIR / "runs"
LATEST_LINK = OUTPUTS_DIR / "latest"
# The scoring job (`run_all.py score`): one folder per job; `latest` names the last job that succeeded.
SCORING_DIR = OUTPUTS_DIR / "scoring"
SCORING_LATEST = SCORING_DIR / "latest"
MLFLOW_DIR = OUTPUTS_DIR / "mlflow"
# Drift per scoring run; it outlives the run folders.
DRIFT_HISTORY = OUTPUTS_DIR / "monitoring" / "drift_history.csv"
LOCK_FILE = PROJECT_ROOT / "requirements-lock.txt"

# Where a notebook opened by hand in JupyterLab writes (run_dir parameter left empty).
INTERACTIVE_RUN_NAME = "interactive"


def run_dir(run_dir_param: str = "") -> Path:
    """The run directory a notebook writes to, created with its sub-folders.

    An empty value (a notebook run by hand) means ``outputs/runs/interactive``;
    a relative value is taken from the project root, not the current directory.
    """
    path = Path(run_dir_param) if run_dir_param else RUNS_DIR / INTERACTIVE_RUN_NAME
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    for sub in ("data", "figures", "tables"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def resolve_input(path_param: str, base: Path | None = None) -> Path:
    """A user-given input path, absolute: a relative one is taken from ``base``, else from the current directory.

    The current directory is where the user stands: the shell that ran ``run_all.py``
    (which passes notebooks absolute paths), or a notebook's folder in JupyterLab.
    """
    path = Path(path_param).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else (base or Path.cwd()) / path))
