"""What the lead2value DAGs share: where the project is, and running its commands in its own venv.

Airflow runs in its own virtualenv (`.venv-airflow`); the project's code runs in the
project's (`.venv`), as the same commands a person types (`run_all.py ...`), so every rule
of the project's runner holds under the scheduler too: fingerprints and reuse, the run lock,
the manifest, `outputs/latest` moving only on success, the gate deciding before promotion.

Read when a DAG file is parsed (set them for the scheduler and the workers alike):
    LEAD2VALUE_HOME    the project checkout (default: the folder above this dags/ folder)
    LEAD2VALUE_PYTHON  the project's Python (default: $LEAD2VALUE_HOME/.venv/bin/python)
    LEAD2VALUE_OUTPUTS the project's outputs folder, as the project reads it (default: $LEAD2VALUE_HOME/outputs)
    LEAD2VALUE_RETRY_DELAY_SECONDS  wait before a retry (default 300; tests shorten it)
The scoring DAG's own settings (inbox, settle time, claims) are in lead2value_scoring.py.
"""
from __future__ import annotations

import os
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

from airflow.exceptions import AirflowException, AirflowFailException

HOME = Path(os.environ.get("LEAD2VALUE_HOME") or Path(__file__).resolve().parents[1])
PYTHON = os.environ.get("LEAD2VALUE_PYTHON") or str(HOME / ".venv" / "bin" / "python")
# As the project reads it; relative to the project's folder, where its commands run.
OUTPUTS = HOME / (os.environ.get("LEAD2VALUE_OUTPUTS") or "outputs")
RETRY_DELAY = timedelta(seconds=int(os.environ.get("LEAD2VALUE_RETRY_DELAY_SECONDS", "300")))

# run_all.py's exit codes, and what a task does about them.
PERMANENT = {2: "bad parameters or bad input: fix them, a retry cannot help"}
TRANSIENT = {3: "another run holds the run lock: retried"}


def run_project(args: list[str]) -> str:
    """Run ``python <args>`` in the project's venv and folder; its output goes to the task log.

    Exit 0: returns the last line of its output (for XCom). A permanent failure (bad input)
    fails the task without retry; anything else fails it and lets Airflow retry.
    """
    proc = call_project(args)
    if proc.returncode == 0:
        lines = proc.stdout.strip().splitlines()
        return lines[-1] if lines else ""
    meaning = PERMANENT.get(proc.returncode) or TRANSIENT.get(proc.returncode) or "failed"
    message = f"`python {' '.join(args)}` exited with {proc.returncode} ({meaning}): {proc.stderr.strip()[-400:]}"
    if proc.returncode in PERMANENT:
        raise AirflowFailException(message)
    raise AirflowException(message)


def call_project(args: list[str]) -> subprocess.CompletedProcess:
    """Run ``python <args>`` in the project's venv and folder; returns its exit code and output.

    Its output goes to the task log line by line as it comes (a long step shows its progress
    there), and is kept too: the caller reads the error message from stderr.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AIRFLOW_HOME", None)  # the project never needs Airflow's settings
    proc = subprocess.Popen([PYTHON, *args], cwd=HOME, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    kept: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def relay(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            print(line, end="", flush=True)

    readers = [threading.Thread(target=relay, args=(proc.stdout, kept["stdout"]), daemon=True),
               threading.Thread(target=relay, args=(proc.stderr, kept["stderr"]), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait()
    except BaseException:  # the task is being stopped (SIGTERM from Airflow): the job must not outlive it
        proc.kill()
        proc.wait()
        raise
    for reader in readers:
        reader.join()
    return subprocess.CompletedProcess(proc.args, code, "".join(kept["stdout"]), "".join(kept["stderr"]))
