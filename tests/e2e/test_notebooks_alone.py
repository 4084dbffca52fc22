"""Each notebook's "Run All" works on a fresh clone, on its own, as in JupyterLab.

A notebook run by hand writes to ``outputs/runs/interactive``; an input dataset that is
not there yet is built first by running the notebooks that make it (and the notebook
says so); a registered model it needs but nobody trained yet is named, with the notebook
that trains it. Nothing run by hand moves the champion alias.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from utils.core.paths import NOTEBOOKS_DIR, PROJECT_ROOT

pytestmark = pytest.mark.slow


def run_by_hand(name: str, outputs, tmp_path) -> subprocess.CompletedProcess:
    """papermill with the notebook's own defaults, in the notebook's folder (as JupyterLab runs it)."""
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri exports it to every later subprocess
    return subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOKS_DIR / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
         "--cwd", str(NOTEBOOKS_DIR), "--no-progress-bar"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )


def stream_text(executed) -> str:
    cells = json.loads(executed.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []) if o.get("name") == "stdout")


def test_a_model_notebook_alone_builds_its_inputs_first_and_scoring_names_the_missing_model(tmp_path):
    outputs = tmp_path / "outputs"
    result = run_by_hand("03_lead_model", outputs, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    said = stream_text(tmp_path / "03_lead_model.ipynb")
    assert "leads_clean is not in" in said and "running 00_data, 02_cleaning there first" in said
    interactive = outputs / "runs" / "interactive"
    assert (interactive / "models" / "lead_scoring.json").is_file()
    code = "import json; from utils.pipeline import promotions; print(json.dumps(promotions.MlflowRegistry().champions()))"
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri exports it to every later subprocess
    champions = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                               check=True).stdout.strip().splitlines()[-1]
    assert json.loads(champions) == {"lead_scoring": None, "clv": None}, "a notebook run by hand promotes nothing"

    scoring = run_by_hand("05_scoring", outputs, tmp_path)
    assert scoring.returncode != 0
    assert "no registered model models:/clv@champion" in scoring.stderr and "04_clv_model.ipynb" in scoring.stderr
