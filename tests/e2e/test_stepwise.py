"""run_all.py --run ID --step NN (a scheduler's task): its kernel starts early and never outlives it."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psutil
from mlflow import MlflowClient

from utils.core import tracking
from utils.core.paths import PROJECT_ROOT


def processes_marked(mark: str) -> list[psutil.Process]:
    """Processes whose environment holds ``LEAD2VALUE_TEST_MARK=mark`` (a kernel inherits it)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("LEAD2VALUE_TEST_MARK") == mark:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def run_all(tmp_path, mark: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(tmp_path), LEAD2VALUE_TEST_MARK=mark, **extra_env)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    return subprocess.run([sys.executable, "run_all.py", "--no-progress", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_step_refused_by_the_runner_leaves_no_kernel_behind(tmp_path):
    mark = uuid.uuid4().hex
    begun = run_all(tmp_path, mark, "--begin", "--profile", "smoke")
    assert begun.returncode == 0, begun.stderr
    run_id = begun.stdout.strip().splitlines()[-1].removeprefix("run_id=")
    # 03 before 00 and 02: its kernel starts at once, then the runner refuses the step.
    result = run_all(tmp_path, mark, "--run", run_id, "--step", "03_lead_model")
    assert result.returncode == 1, result.stderr
    assert "03_lead_model needs 00_data, 02_cleaning first" in result.stderr
    # Gone when run_all.py is: killed by it, not left to notice its parent's death (ipykernel does, within a second).
    assert processes_marked(mark) == []
    assert run_all(tmp_path, mark, "--run", run_id, "--abandon").returncode == 0


def test_kernels_left_for_the_next_task_end_with_the_run(tmp_path):
    mark = uuid.uuid4().hex
    begun = run_all(tmp_path, mark, "--begin", "--warm-next", "--profile", "smoke")
    assert begun.returncode == 0, begun.stderr
    run_id = begun.stdout.strip().splitlines()[-1].removeprefix("run_id=")
    assert len(processes_marked(mark)) == 1, "begin left one kernel, warming for 00_data"
    # A refused step claims that kernel (and kills it) and ends the one it had started for the step after.
    refused = run_all(tmp_path, mark, "--run", run_id, "--step", "03_lead_model", "--warm-next")
    assert refused.returncode == 1, refused.stderr
    assert processes_marked(mark) == []
    begun_again = run_all(tmp_path, mark, "--run", run_id, "--step", "00_data", "--warm-next")
    assert begun_again.returncode == 0, begun_again.stderr
    assert len(processes_marked(mark)) == 1, "00_data left a kernel for the next step"
    assert run_all(tmp_path, mark, "--run", run_id, "--abandon").returncode == 0
    assert processes_marked(mark) == [], "abandoning the run ended it"
    assert not (tmp_path / ".spares" / run_id).exists()


def test_a_step_given_a_warm_kernel_leaves_its_mlflow_work_to_it(tmp_path):
    """The task process never loads MLflow: the kernel handed over creates, completes and ends the notebook's run."""
    mark = uuid.uuid4().hex
    begun = run_all(tmp_path, mark, "--begin", "--warm-next", "--profile", "smoke")
    assert begun.returncode == 0, begun.stderr
    run_id = begun.stdout.strip().splitlines()[-1].removeprefix("run_id=")
    # Python lists every module it imports on stderr (threads' imports included).
    step = run_all(tmp_path, mark, "--run", run_id, "--step", "00_data", PYTHONPROFILEIMPORTTIME="1")
    assert step.returncode == 0, step.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in step.stderr.splitlines() if line.startswith("import time:")]
    assert "papermill" in imported and "mlflow" not in imported
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT_NAME).experiment_id
    [notebook_run] = client.search_runs([experiment], "tags.`lead2value.step` = '00_data'")
    assert notebook_run.info.status == "FINISHED"
    assert notebook_run.data.tags["mlflow.parentRunId"]
    assert {a.path for a in client.list_artifacts(notebook_run.info.run_id, "notebook")} == {
        "notebook/00_data.ipynb", "notebook/00_data.html"}
    assert processes_marked(mark) == []
    assert run_all(tmp_path, mark, "--run", run_id, "--abandon").returncode == 0
