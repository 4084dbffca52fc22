"""What the lead2value DAGs share: where the project is, and running its commands in its own venv.

Airflow runs in its own virtualenv (`.venv-airflow`); the project's code runs in the
project's (`.venv`), as the same commands a person types (`run_all.py ...`), so every rule
of the project's runner holds under the scheduler too: fingerprints and reuse, the run lock,
the manifest, `outputs/latest` moving only on success, the gate deciding before promotion.

Read when a DAG file is parsed (set them for the scheduler and the workers alike):
    LEAD2VALUE_HOME    the project checkout (default: the folder above this dags/ folder)
    LEAD2VALUE_PYTHON  the project's Python (default: $LEAD2VALUE_HOME/.venv/bin/python)
    LEAD2VALUE_INBOX   where files to score are dropped (default: $LEAD2VALUE_HOME/inbox)
    LEAD2VALUE_RETRY_DELAY_SECONDS  wait before a retry (default 300; tests shorten it)
"""
from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

from airflow.exceptions import AirflowException, AirflowFailException

HOME = Path(os.environ.get("LEAD2VALUE_HOME") or Path(__file__).resolve().parents[1])
PYTHON = os.environ.get("LEAD2VALUE_PYTHON") or str(HOME / ".venv" / "bin" / "python")
INBOX = Path(os.environ.get("LEAD2VALUE_INBOX") or HOME / "inbox")
RETRY_DELAY = timedelta(seconds=int(os.environ.get("LEAD2VALUE_RETRY_DELAY_SECONDS", "300")))

# run_all.py's exit codes, and what a task does about them.
PERMANENT = {2: "bad parameters or bad input: fix them, a retry cannot help"}
TRANSIENT = {3: "another run holds the run lock: retried"}


def run_project(args: list[str]) -> str:
    """Run ``python <args>`` in the project's venv and folder; its output goes to the task log.

    Exit 0: returns the last line of its output (for XCom). A permanent failure (bad input)
    fails the task without retry; anything else fails it and lets Airflow retry.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AIRFLOW_HOME", None)  # the project never needs Airflow's settings
    proc = subprocess.run([PYTHON, *args], cwd=HOME, env=env, capture_output=True, text=True)
    print(proc.stdout, end="")
    print(proc.stderr, end="")
    if proc.returncode == 0:
        lines = proc.stdout.strip().splitlines()
        return lines[-1] if lines else ""
    meaning = PERMANENT.get(proc.returncode) or TRANSIENT.get(proc.returncode) or "failed"
    message = f"`python {' '.join(args)}` exited with {proc.returncode} ({meaning}): {proc.stderr.strip()[-400:]}"
    if proc.returncode in PERMANENT:
        raise AirflowFailException(message)
    raise AirflowException(message)
