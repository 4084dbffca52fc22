"""Print what Airflow sees in this folder, as JSON (run with the Airflow venv's Python).

    .venv-airflow/bin/python dags/inspect_dags.py

{"import_errors": {...}, "dags": {dag_id: {"schedule", "catchup", "max_active_runs", "retries",
"tasks": {task_id: [downstream task ids]}}}}. The project's tests read it: DAG integrity is
checked from the project's own pytest, without importing Airflow into the project's venv.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.models import DagBag  # noqa: E402  (after the environment is set)


def main() -> None:
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parent), include_examples=False)
    report = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        report["dags"][dag_id] = {
            "schedule": str(dag.schedule_interval),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "retries": dag.default_args.get("retries"),
            "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
            "cycle_free": _acyclic(dag),
        }
    print(json.dumps(report, sort_keys=True))


def _acyclic(dag) -> bool:
    from airflow.utils.dag_cycle_tester import check_cycle

    try:
        check_cycle(dag)
    except Exception:  # AirflowDagCycleException
        return False
    return True


if __name__ == "__main__":
    main()
