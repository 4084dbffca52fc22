"""The Airflow DAGs, checked from the project's own tests without importing Airflow here.

Airflow lives in `.venv-airflow` (built by `make airflow`, and by `make test` before the tests);
these tests call its `airflow` command and `dags/inspect_dags.py` in a scratch AIRFLOW_HOME,
with the project's outputs in a scratch folder too. `airflow dags test` runs a DAG with no
scheduler; its exit code says whether the DAG run failed, and `tasks states-for-dag-run`
says which task did.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utils.clv.synth import generate_clv
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "LEAD2VALUE_HOME": str(PROJECT_ROOT),
        "LEAD2VALUE_OUTPUTS": str(outputs), "LEAD2VALUE_RETRY_DELAY_SECONDS": "1",
        "LEAD2VALUE_INBOX_SETTLE_SECONDS": "0",
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
    return {task_id: state for task_id, _, state in task_rows(airflow, dag_id, date)}


def task_rows(airflow, dag_id: str, date: str) -> list[tuple[str, int, str]]:
    """(task id, map index, state) of every task instance of a DAG run (mapped ones once per index)."""
    listed = airflow("airflow", "tasks", "states-for-dag-run", dag_id, date, "-o", "json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    return sorted((row["task_id"], int(row.get("map_index") or -1), row["state"])
                  for row in json.loads(listed.stdout.strip().splitlines()[-1]))


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
    scoring = report["dags"]["lead2value_scoring"]
    assert (scoring["schedule"], scoring["catchup"], scoring["max_active_runs"], scoring["cycle_free"]) == \
        ("@hourly", False, 1, True)
    assert scoring["tasks"] == {"list_inbox": ["score_file"], "score_file": []}
    training = report["dags"]["lead2value_training"]
    assert (training["schedule"], training["catchup"], training["max_active_runs"], training["retries"]) == \
        ("@monthly", False, 1, 1)
    assert training["cycle_free"]
    notebooks = [s.name for s in catalog.STEPS]
    assert set(training["tasks"]) == {"begin", *notebooks, "abandon", "done"}
    for step in notebooks:  # each notebook task follows the steps the catalog says it reads from
        for upstream in catalog.upstream(step):
            assert step in training["tasks"][upstream], f"{upstream} -> {step}"
        assert "abandon" in training["tasks"][step]
    last = notebooks[-1]  # its task finishes the run: after every other notebook
    assert all(last in training["tasks"][step] for step in notebooks[:-1])
    assert training["tasks"]["done"] == [] and "done" in training["tasks"][last], "the run's outcome: a leaf"


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
    assert states["03_lead_model"] == states["05_scoring"] == states["done"] == "upstream_failed", states
    assert states["00_data"] == "success"
    assert (airflow.outputs / "latest").resolve() == before
    failed = [p for p in (airflow.outputs / "runs").iterdir()
              if json.loads((p / "status.json").read_text())["status"] == "failed"]
    assert len(failed) == 1
    steps = json.loads((failed[0] / "manifest.json").read_text())["steps"]
    assert steps["02_cleaning"]["status"] == "failed"
    assert steps["00_data"]["status"] == steps["01_eda"]["status"] == "reused", "unchanged steps are not re-run"
    assert not (airflow.outputs / ".run_all.lease").exists(), "abandon freed the outputs for the next run"


# ---- the scoring DAG --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_leads(airflow) -> pd.DataFrame:
    """Champions to score with (the training DAG's, when its test ran first; else a smoke run's), and raw
    leads like the ones they were trained on (no drift hold), without id and target."""
    if not (airflow.outputs / "latest").exists():
        env = {k: v for k, v in airflow.env.items() if not k.startswith("AIRFLOW")}
        trained = subprocess.run([str(PROJECT_ROOT / ".venv" / "bin" / "python"), "run_all.py", "--profile", "smoke",
                                  "--no-progress"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    leads = pd.read_parquet(airflow.outputs / "latest" / "data" / "leads_clean.parquet")
    train = leads.sort_values("created_date", kind="stable").iloc[: int(0.8 * len(leads))]
    return train.drop(columns=["lead_id", "app_complete_flag"]).reset_index(drop=True)


def drop_leads(frame: pd.DataFrame, path: Path, first_id: int) -> Path:
    """A CRM export dropped in the inbox: the unnamed id column first, written aside and renamed in."""
    frame = frame.reset_index(drop=True)
    frame.index = np.arange(first_id, first_id + len(frame))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path.with_name(path.name + ".part"))
    os.replace(path.with_name(path.name + ".part"), path)
    return path


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but hidden ones (the claims' lock), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def inbox_jobs(airflow, stem: str) -> dict[str, str]:
    """The inbox's job folders for one file's stem, with their status."""
    return {p.name: json.loads((p / "status.json").read_text())["status"] if (p / "status.json").exists() else ""
            for p in sorted((airflow.outputs / "scoring").glob(f"inbox-{stem}-*"))}


def test_the_scoring_dag_files_a_good_a_broken_and_a_drifted_file_each_where_it_belongs(airflow, trained_leads):
    inbox = airflow.outputs / "inbox"
    for name, frame in generate_clv(300, 8).items():  # monday's customers, put in before the leads file
        (inbox / "customers" / "monday").mkdir(parents=True, exist_ok=True)
        frame.to_csv(inbox / "customers" / "monday" / f"{name}.csv", index=False)
    good = drop_leads(trained_leads.sample(120, random_state=3), inbox / "leads" / "monday.csv", 7000)
    broken = drop_leads(trained_leads.head(30).drop(columns=["first_utm_source_c"]), inbox / "leads" / "broken.csv", 1)
    shifted = trained_leads.sample(300, random_state=2).assign(first_utm_medium_c="Level999")  # held on drift
    drop_leads(shifted, inbox / "leads" / "shifted.csv", 8000)
    # a file another live run holds: left alone
    taken = drop_leads(trained_leads.head(10), inbox / "leads" / "taken.csv", 1)
    claim = taken.with_name("taken.csv.claim")
    claim.write_text(json.dumps({"dag_run": "elsewhere", "pid": os.getpid(), "host": os.uname().nodename,
                                 "since": time.time(), "stale_after": 3600}))
    dropped = files(inbox)

    result = airflow("airflow", "dags", "test", "lead2value_scoring", "2026-03-01T01:00:00+00:00")
    assert result.returncode != 0, "the refused and the held file fail their tasks, for someone to act"
    rows = task_rows(airflow, "lead2value_scoring", "2026-03-01T01:00:00+00:00")
    assert rows == [("list_inbox", -1, "success"), ("score_file", 0, "success"), ("score_file", 1, "failed"),
                    ("score_file", 2, "failed")], result.stdout[-3000:]
    assert "HELD on drift" in result.stdout + result.stderr

    after = files(inbox)
    customers = {name.replace("done/monday.customers/", "customers/monday/"): content
                 for name, content in after.items() if name.startswith("done/monday.customers/")}
    assert customers == {name: content for name, content in dropped.items() if name.startswith("customers/")} != {}, \
        "monday's customers moved along with it, every byte"
    after = {name: content for name, content in after.items() if not name.startswith("done/monday.customers/")}
    assert sorted(after) == ["done/monday.csv", "done/monday.csv.job.json", "failed/broken.csv",
                             "failed/broken.csv.reason.txt", "held/shifted.csv", "held/shifted.csv.job.json",
                             "leads/taken.csv", "leads/taken.csv.claim"]
    for name, moved in (("monday.csv", "done/monday.csv"), ("broken.csv", "failed/broken.csv"),
                        ("shifted.csv", "held/shifted.csv"), ("taken.csv", "leads/taken.csv")):
        assert after[moved] == dropped[f"leads/{name}"], f"{name}: nothing lost, nothing changed"
    reason = after["failed/broken.csv.reason.txt"].decode()
    assert "first_utm_source_c" in reason and "missing" in reason and str(broken) in reason
    assert list(inbox_jobs(airflow, "broken")) == [], "the broken file wrote no job folder"

    record = json.loads(after["done/monday.csv.job.json"])
    job = airflow.outputs / "scoring" / record["job_id"]
    assert record["job_folder"] == str(job) and record["source"] == str(good) and record["rows"] == 120
    assert json.loads((job / "status.json").read_text())["status"] == "succeeded"
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["inputs"]["leads"]["sha256"] == record["leads_sha256"] == \
        hashlib.sha256(after["done/monday.csv"]).hexdigest(), "the scores trace to the bytes in done/"
    scored = pd.read_csv(job / "data" / "leads_scored.csv")
    assert sorted(scored["lead_id"]) == list(range(7000, 7120)) and scored["p_app_complete"].between(0, 1).all()
    assert len(pd.read_parquet(job / "data" / "customers_scored.parquet")) > 0, "its customers were scored too"
    assert set(record["customers"]) >= {"customers", "purchases"}
    assert (airflow.outputs / "scoring" / "latest").resolve() == job, "the held job did not move latest"

    held = json.loads(after["held/shifted.csv.job.json"])
    assert held["status"] == "held" and inbox_jobs(airflow, "shifted") == {held["job_id"]: "held"}
    kept = pd.read_parquet(Path(held["job_folder"]) / "data" / "leads_scored.parquet")
    assert sorted(kept["lead_id"]) == list(range(8000, 8300)), "the held scores are kept in the job folder"


def test_a_scoring_task_killed_mid_way_leaves_its_file_in_the_inbox_and_the_next_run_scores_it_once(
        airflow, trained_leads):
    inbox = airflow.outputs / "inbox"
    leads_file = drop_leads(trained_leads.sample(80, random_state=4), inbox / "leads" / "tuesday.csv", 9000)
    claim = leads_file.with_name("tuesday.csv.claim")
    dag_test = subprocess.Popen([str(AIRFLOW_VENV / "bin" / "airflow"), "dags", "test", "lead2value_scoring",
                                 "2026-03-02T01:00:00+00:00"], cwd=PROJECT_ROOT, env=airflow.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and dag_test.poll() is None:
            if claim.exists() and "running" in inbox_jobs(airflow, "tuesday").values():
                break  # claimed, and its scoring job is under way
            time.sleep(0.1)
        assert dag_test.poll() is None, "the DAG run ended before it could be killed mid-way"
    finally:
        os.killpg(dag_test.pid, signal.SIGKILL)  # Airflow, its task and the scoring job, without a word
        dag_test.wait()
    killed = inbox_jobs(airflow, "tuesday")
    assert list(killed.values()) == ["running"], killed
    assert leads_file.exists() and claim.exists(), "the file stays, under its dead holder's claim"
    assert not (inbox / "done" / "tuesday.csv").exists()

    result = airflow("airflow", "dags", "test", "lead2value_scoring", "2026-03-02T02:00:00+00:00")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not leads_file.exists() and not claim.exists()
    record = json.loads((inbox / "done" / "tuesday.csv.job.json").read_text())
    (first,) = killed
    assert record["job_id"] == f"{first}-2", "the killed job's folder is kept, the retry takes the next id"
    assert inbox_jobs(airflow, "tuesday") == {first: "running", f"{first}-2": "succeeded"}, "scored once"
    scored = pd.read_parquet(airflow.outputs / "scoring" / record["job_id"] / "data" / "leads_scored.parquet")
    assert sorted(scored["lead_id"]) == list(range(9000, 9080))
