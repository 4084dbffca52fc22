"""The Airflow DAGs, checked from the project's own tests without importing Airflow here.

Airflow lives in `.venv-airflow` (built by `make airflow`, and by `make test` before the tests);
these tests call its `airflow` command and `dags/inspect_dags.py` in a scratch AIRFLOW_HOME,
with the project's outputs in a scratch folder too. `airflow dags test` runs a DAG with no
scheduler; its exit code says whether the DAG run failed, and `tasks states-for-dag-run`
says which task did.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from utils.core.paths import PROJECT_ROOT
from utils.pipeline import catalog

AIRFLOW_VENV = PROJECT_ROOT / ".venv-airflow"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (AIRFLOW_VENV / "bin" / "airflow").exists(),
                       reason="no .venv-airflow: build it with `make airflow` (`make test` does)"),
]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """Run Airflow commands in a migrated scratch home; the project writes to a scratch outputs folder."""
    home, outputs = tmp_path_factory.mktemp("airflow-home"), tmp_path_factory.mktemp("outputs")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_TRACKING"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "LEAD2VALUE_HOME": str(PROJECT_ROOT),
        "LEAD2VALUE_OUTPUTS": str(outputs), "LEAD2VALUE_RETRY_DELAY_SECONDS": "1",
        "PATH": f"{AIRFLOW_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    })

    def run(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run([str(AIRFLOW_VENV / "bin" / args[0]), *args[1:]], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)

    migrated = run("airflow", "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    run.outputs = outputs
    run.env = env
    return run


def task_states(airflow, dag_id: str, date: str) -> dict[str, str]:
    listed = airflow("airflow", "tasks", "states-for-dag-run", dag_id, date, "-o", "json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    return {row["task_id"]: row["state"] for row in json.loads(listed.stdout.strip().splitlines()[-1])}


def project(airflow, code: str) -> str:
    """Run Python in the project's venv against the scratch outputs; returns its last output line."""
    env = {k: v for k, v in airflow.env.items() if not k.startswith("AIRFLOW")}
    done = subprocess.run([str(PROJECT_ROOT / ".venv" / "bin" / "python"), "-c", code], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_the_dags_import_cleanly_without_cycles_with_one_task_per_notebook(airflow):
    inspected = airflow("python", str(PROJECT_ROOT / "dags" / "inspect_dags.py"))
    assert inspected.returncode == 0, inspected.stderr[-2000:]
    report = json.loads(inspected.stdout.strip().splitlines()[-1])
    assert report["import_errors"] == {}
    training = report["dags"]["lead2value_training"]
    assert (training["schedule"], training["catchup"], training["max_active_runs"], training["retries"]) == \
        ("@monthly", False, 1, 1)
    assert training["cycle_free"]
    notebooks = [s.name for s in catalog.STEPS]
    assert set(training["tasks"]) == {"begin", *notebooks, "finish", "abandon"}
    for step in notebooks:  # each notebook task follows the steps the catalog says it reads from
        for upstream in catalog.upstream(step):
            assert step in training["tasks"][upstream], f"{upstream} -> {step}"
        assert {"finish", "abandon"} <= set(training["tasks"][step])


def test_the_training_dag_runs_every_notebook_through_the_runner(airflow):
    result = airflow("airflow", "dags", "test", "lead2value_training", "2026-01-01", "--conf", '{"profile": "smoke"}')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    states = task_states(airflow, "lead2value_training", "2026-01-01")
    assert states.pop("abandon") == "skipped" and set(states.values()) == {"success"}
    latest = (airflow.outputs / "latest").resolve()
    manifest = json.loads((latest / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["profile"] == "smoke"
    assert {name: step["status"] for name, step in manifest["steps"].items()} == \
        {s.name: "executed" for s in catalog.STEPS}
    champions = json.loads(project(airflow, "import json; from utils.pipeline import promotions; "
                                            "print(json.dumps(promotions.MlflowRegistry().champions()))"))
    assert champions == {"lead_scoring": "1", "clv": "1"}, "the gate decided, then the run promoted"
    assert not (airflow.outputs / ".run_all.lease").exists()


def test_a_failing_notebook_fails_its_task_and_the_run_moves_nothing(airflow):
    before = (airflow.outputs / "latest").resolve()
    broken = airflow.outputs.parent / "broken_levels.json"
    broken.write_text("{ not json")  # passes every check before the run; 02 fails reading it
    conf = json.dumps({"profile": "smoke", "overrides": [f"significant_levels_path={broken}"]})
    result = airflow("airflow", "dags", "test", "lead2value_training", "2026-02-01", "--conf", conf)
    assert result.returncode != 0, "the DAG run fails"
    states = task_states(airflow, "lead2value_training", "2026-02-01")
    assert states["02_cleaning"] == "failed" and states["abandon"] == "success", states
    assert states["03_lead_model"] == states["05_scoring"] == states["finish"] == "upstream_failed", states
    assert states["00_data"] == "success"
    assert (airflow.outputs / "latest").resolve() == before
    failed = [p for p in (airflow.outputs / "runs").iterdir()
              if json.loads((p / "status.json").read_text())["status"] == "failed"]
    assert len(failed) == 1
    steps = json.loads((failed[0] / "manifest.json").read_text())["steps"]
    assert steps["02_cleaning"]["status"] == "failed"
    assert steps["00_data"]["status"] == steps["01_eda"]["status"] == "reused", "unchanged steps are not re-run"
    assert not (airflow.outputs / ".run_all.lease").exists(), "abandon freed the outputs for the next run"
