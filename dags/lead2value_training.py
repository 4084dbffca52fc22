"""lead2value_training: the monthly reproduction, one task per notebook, through the project's runner.

    begin -> 00_data -> 01_eda, 02_cleaning -> 03_lead_model, 04_clv_model -> 05_scoring -> done
                                         (any failure) -> abandon

`begin` checks parameters and inputs and opens a run (`run_all.py --begin`); each notebook task
executes or reuses its step in that run (`--run ID --step NN`), so the Airflow UI shows which
notebook failed, and a retry re-executes only that step. The last one, 05_scoring, then finishes
the run in the same process (`--finish`: this run's gate decisions applied, `outputs/latest`
moved; a retry after its notebook succeeded only finishes). `abandon` marks a failed run failed
and frees the lock for the next one. Each task leaves a kernel warmed for the next (`--warm-next`,
utils/pipeline/handoff.py): a process per task would otherwise start every notebook's kernel
cold; unclaimed, it ends itself. Trigger it with another profile:
`airflow dags test lead2value_training --conf '{"profile": "smoke"}'`.
"""
from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.decorators import task
from airflow.operators.empty import EmptyOperator
from airflow.utils.trigger_rule import TriggerRule

from lead2value_common import RETRY_DELAY, run_project

# The notebooks in the catalog's order with what each reads (utils/pipeline/catalog.py; a test checks they agree).
STEPS = {
    "00_data": (),
    "01_eda": ("00_data",),
    "02_cleaning": ("00_data",),
    "03_lead_model": ("00_data", "02_cleaning"),  # 00: leads_source, the model's lineage
    "04_clv_model": ("00_data", "02_cleaning"),  # 00: clv_source
    "05_scoring": ("00_data", "02_cleaning", "03_lead_model", "04_clv_model"),
}

with DAG(
    dag_id="lead2value_training",
    description="the numbered notebooks 00..05 through run_all.py: train, gate, promote, score",
    schedule="@monthly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,  # one step at a time: the steps of a run share the project's run lock
    default_args={"retries": 1, "retry_delay": RETRY_DELAY},
    params={"profile": "default", "overrides": []},
    tags=["lead2value"],
) as dag:

    @task(task_id="begin", retries=0)
    def begin(params=None) -> str:
        overrides = [item for value in params["overrides"] for item in ("--set", value)]
        last_line = run_project(["run_all.py", "--begin", "--warm-next", "--profile", params["profile"],
                                 "--no-progress", *overrides])
        return last_line.removeprefix("run_id=")

    @task
    def notebook(run: str, step: str, finish: bool = False) -> None:
        run_project(["run_all.py", "--run", run, "--step", step, "--warm-next", "--no-progress",
                     *(["--finish"] if finish else [])])

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def abandon(run: str | None) -> None:
        if run:  # no id: `begin` itself failed, and no run was opened
            run_project(["run_all.py", "--run", run, "--abandon"])

    run = begin()  # the lead2value run id (not Airflow's own run_id)
    last = list(STEPS)[-1]
    tasks = {name: notebook.override(task_id=name)(run, name, finish=name == last) for name in STEPS}
    for name, upstream in STEPS.items():
        for up in upstream:
            tasks[up] >> tasks[name]
    for name in STEPS:  # the last one finishes the run: every other notebook comes before it
        if name != last and name not in STEPS[last]:
            tasks[name] >> tasks[last]
    list(tasks.values()) >> abandon(run)
    # The run's outcome for Airflow: the last leaf ("abandon" succeeds after abandoning a failed run).
    tasks[last] >> EmptyOperator(task_id="done")
