"""Benchmark: what Airflow costs on top of the project's own commands. Prints figures; asserts nothing about time.

In scratch outputs folders and a scratch AIRFLOW_HOME (built with `make airflow` first):
  1. training: `run_all.py --profile smoke` (the baseline) and `airflow dags test lead2value_training` on the
     smoke profile, each into fresh outputs, alternated when repeated; prints the DAG's wall time as a ratio
     of the baseline (target at most 1.3);
  2. the inbox: a leads file dropped into the inbox, `airflow dags test lead2value_scoring` started at once;
     prints the time from the drop to the scores landing (the job's folder says succeeded) and to the file
     filed in done/, against `run_all.py score` on the same file (the baseline of the same run).

`airflow dags test` runs a DAG without a scheduler: the hourly schedule adds up to an hour (and the settle
time, here 0) before a run starts; that wait is by design and not measured.

    .venv/bin/python bench/bench_airflow.py                # one of each
    .venv/bin/python bench/bench_airflow.py --repeats 2    # alternated: baseline, DAG, DAG, baseline
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from utils.core.io import read_parquet  # the project's reader: no abort at exit

AIRFLOW_BIN = PROJECT_ROOT / ".venv-airflow" / "bin"


def project_env(outputs: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
    env["LEAD2VALUE_OUTPUTS"] = str(outputs)
    return env


def airflow_env(home: Path, outputs: Path) -> dict[str, str]:
    return {**project_env(outputs), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "LEAD2VALUE_HOME": str(PROJECT_ROOT),
            "LEAD2VALUE_INBOX_SETTLE_SECONDS": "0", "PATH": f"{AIRFLOW_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def timed(command: list[str], env: dict[str, str], what: str, log: Path | None = None) -> float:
    """Wall seconds of ``command``; its output kept in ``log`` (a retried task's first error is read there)."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds


def retried_tasks(home: Path, logical_date: str) -> list[str]:
    """Tasks of the training DAG's run on ``logical_date`` that needed more than one try (a retry waits
    LEAD2VALUE_RETRY_DELAY_SECONDS, 300 by default: it would swamp the timing, so it is named)."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT ti.task_id, ti.try_number FROM task_instance ti JOIN dag_run dr "
                          "ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
                          "WHERE ti.dag_id = 'lead2value_training' AND date(dr.execution_date) = ? "
                          "AND ti.try_number > 1", (logical_date,)).fetchall()
    return [f"{task} (try {tries})" for task, tries in rows]


def step_seconds(outputs: Path) -> float:
    manifest = json.loads(((outputs / "latest").resolve() / "manifest.json").read_text())
    return sum(step.get("seconds", 0.0) for step in manifest["steps"].values())


def training(scratch: Path, home: Path, repeats: int) -> tuple[list[float], list[float], Path]:
    baseline, dag, trained = [], [], None
    for repeat in range(repeats):
        order = ("baseline", "dag") if repeat % 2 == 0 else ("dag", "baseline")
        for kind in order:
            outputs = scratch / f"{kind}-{repeat}"
            if kind == "baseline":
                seconds = timed([sys.executable, "run_all.py", "--profile", "smoke", "--no-progress"],
                                project_env(outputs), "run_all.py --profile smoke")
                baseline.append(seconds)
            else:
                logical_date = f"2026-0{repeat + 1}-01"
                log = scratch / f"dag-{repeat}.log"
                seconds = timed([str(AIRFLOW_BIN / "airflow"), "dags", "test", "lead2value_training",
                                 logical_date, "--conf", '{"profile": "smoke"}'],
                                airflow_env(home, outputs), "airflow dags test lead2value_training", log)
                dag.append(seconds)
                trained = outputs
                retried = retried_tasks(home, logical_date)
                if retried:
                    print(f"  warning: retried {', '.join(retried)}: the time includes the retry delay; "
                          f"the first error is in {log}", flush=True)
            print(f"  {kind:8s} run {repeat + 1}: {seconds:7.1f} s wall, {step_seconds(outputs):7.1f} s in the "
                  f"notebooks", flush=True)
    return baseline, dag, trained


def inbox_latency(home: Path, outputs: Path, rows: int) -> tuple[float, float, float]:
    """(drop -> scores landed, drop -> filed in done/, `run_all.py score` on the same file) in seconds."""
    leads = read_parquet((outputs / "latest").resolve() / "data" / "leads_clean.parquet")
    batch = leads.sort_values("created_date", kind="stable").iloc[: int(0.8 * len(leads))]
    batch = batch.drop(columns=["lead_id", "app_complete_flag"]).sample(rows, random_state=0, replace=rows > len(batch))
    batch.index = np.arange(1, rows + 1)
    aside = outputs / "bench-leads.csv"
    batch.to_csv(aside)
    baseline = timed([sys.executable, "run_all.py", "score", "--no-progress", "--leads", str(aside),
                      "--job-id", "bench-direct"], project_env(outputs), "run_all.py score")

    inbox = outputs / "inbox" / "leads"
    inbox.mkdir(parents=True, exist_ok=True)
    dropped = time.perf_counter()
    os.replace(aside, inbox / "bench.csv")
    dag_test = subprocess.Popen([str(AIRFLOW_BIN / "airflow"), "dags", "test", "lead2value_scoring",
                                 "2026-06-01T01:00:00+00:00"], cwd=PROJECT_ROOT, env=airflow_env(home, outputs),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    landed = filed = None
    while filed is None:
        for status in (outputs / "scoring").glob("inbox-bench-*/status.json"):
            if landed is None and json.loads(status.read_text()).get("status") == "succeeded":
                landed = time.perf_counter() - dropped
        if (outputs / "inbox" / "done" / "bench.csv.job.json").exists():
            filed = time.perf_counter() - dropped
        if dag_test.poll() is not None and filed is None:
            sys.exit(f"the scoring DAG ended without filing the file:\n{dag_test.stdout.read()[-3000:]}")
        time.sleep(0.05)
    dag_test.communicate()
    return landed or filed, filed, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="training pairs (baseline and DAG), alternated")
    parser.add_argument("--rows", type=int, default=2000, help="leads in the inbox file")
    args = parser.parse_args()
    if not (AIRFLOW_BIN / "airflow").exists():
        sys.exit("no .venv-airflow: build it with `make airflow`")
    scratch = Path(tempfile.mkdtemp(prefix="lead2value-bench-airflow-"))
    home = scratch / "airflow-home"
    load_before = os.getloadavg()
    migrate = timed([str(AIRFLOW_BIN / "airflow"), "db", "migrate"], airflow_env(home, scratch / "none"), "db migrate")
    print(f"scratch {scratch}; load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} "
          f"on {os.cpu_count()} cores; airflow db migrate (once, not counted) {migrate:.1f} s", flush=True)

    print("training, smoke profile:", flush=True)
    baseline, dag, trained = training(scratch, home, args.repeats)
    ratios = [d / b for d, b in zip(dag, baseline)]
    print(f"run_all.py --profile smoke            median {statistics.median(baseline):7.1f} s")
    print(f"airflow dags test lead2value_training median {statistics.median(dag):7.1f} s")
    print(f"ratio DAG / run_all.py = {statistics.median(ratios):.2f} (target <= 1.3; each pair: "
          f"{', '.join(f'{r:.2f}' for r in ratios)})", flush=True)

    landed, filed, direct = inbox_latency(home, trained, args.rows)
    print(f"inbox, {args.rows} leads, under `airflow dags test lead2value_scoring` (settle 0, no scheduler wait):")
    print(f"  drop -> scores landed (job succeeded)  {landed:7.1f} s")
    print(f"  drop -> file filed in done/            {filed:7.1f} s")
    print(f"  run_all.py score on the same file      {direct:7.1f} s   (ratio landed / direct = {landed / direct:.2f})")
    load_after = os.getloadavg()
    print(f"load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")


if __name__ == "__main__":
    main()
