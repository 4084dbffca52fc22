"""lead2value_scoring: every hour, each file dropped in the inbox scored by its own scoring job.

    list_inbox -> score_file[new_leads.csv], score_file[other.csv], ...   (one mapped task per file)

Drop leads into ``<inbox>/leads/`` (CSV or parquet, the CRM export's columns); customers to score
with them, if any, into ``<inbox>/customers/<the leads file's stem>/`` (``customers.csv``,
``purchases.csv`` and optionally ``purchase_lines``, ``web_actions``, ``campaigns``; or one
``transactions`` file) before the leads file, which is the trigger. Each file goes through
``run_all.py score`` in the project's venv, under a claim (lead2value_inbox.py), and then:

    exit 0 (scored)            -> <inbox>/done/<name>, with <name>.job.json naming its job folder
    exit 2 (bad input)         -> <inbox>/failed/<name>, with <name>.reason.txt: the job's message
    exit 4 (held on drift)     -> <inbox>/held/<name> + .job.json, and the task FAILS: someone must look
                                  at the job's dashboard; the scores wait in its folder, not re-scored hourly
    exit 1, 3, 5, or killed    -> stays in <inbox>/leads/ and the task fails; the next run (or retry) tries again
    the notebook failed 3 times on the same bytes -> failed/, with the job folders to look at

Settings, read when a task runs (set them for the scheduler and the workers alike):
    inbox     Airflow Variable ``lead2value_inbox`` (or AIRFLOW_VAR_LEAD2VALUE_INBOX), else LEAD2VALUE_INBOX,
              else $LEAD2VALUE_OUTPUTS/inbox (default outputs/inbox); a relative path is under LEAD2VALUE_HOME
    LEAD2VALUE_INBOX_SETTLE_SECONDS  a file changed more recently than this waits for the next run (default 30)
    LEAD2VALUE_CLAIM_STALE_SECONDS   a claim older than this is broken whoever holds it (default 7200,
              twice the task's time limit); on the same host a claim whose process died is broken at once
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow import DAG
from airflow.decorators import task
from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from airflow.models import Variable
from airflow.operators.python import get_current_context

import lead2value_inbox as inbox
from lead2value_common import HOME, OUTPUTS, RETRY_DELAY, call_project

JOB_TIME_LIMIT = timedelta(hours=1)
SETTLE_SECONDS = float(os.environ.get("LEAD2VALUE_INBOX_SETTLE_SECONDS", "30"))
CLAIM_STALE_SECONDS = float(os.environ.get("LEAD2VALUE_CLAIM_STALE_SECONDS", str(2 * JOB_TIME_LIMIT.total_seconds())))


def inbox_root() -> Path:
    configured = Variable.get("lead2value_inbox", default_var=None) or os.environ.get("LEAD2VALUE_INBOX")
    return HOME / (configured or OUTPUTS / "inbox")


def scoring_dir() -> Path:
    return OUTPUTS / "scoring"


def run_job(args: list[str], job_id: str) -> tuple[int, str]:
    proc = call_project(["run_all.py", "score", "--no-progress", *args, "--job-id", job_id])
    return proc.returncode, proc.stderr


with DAG(
    dag_id="lead2value_scoring",
    description="each file dropped in the inbox scored by `run_all.py score`, then filed: done, failed or held",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": RETRY_DELAY},
    tags=["lead2value"],
) as dag:

    @task
    def list_inbox() -> list[str]:
        root = inbox_root()
        for folder in (inbox.LEADS, inbox.CUSTOMERS):
            (root / folder).mkdir(parents=True, exist_ok=True)  # so that people see where to drop files
        ready, waiting = inbox.pending(root, SETTLE_SECONDS)
        for line in waiting:
            print(f"not now: {line}")
        print(f"{len(ready)} file(s) to score in {root / inbox.LEADS}: {', '.join(p.name for p in ready) or '-'}")
        return [str(path) for path in ready]

    # One at a time: every scoring job takes the project's run lock.
    @task(execution_timeout=JOB_TIME_LIMIT, max_active_tis_per_dagrun=1, map_index_template="{{ inbox_file }}")
    def score_file(path: str) -> dict:
        context = get_current_context()
        leads_file = Path(path)
        context["inbox_file"] = leads_file.name
        ti = context["ti"]
        me = inbox.owner(context["run_id"], f"{ti.task_id}[{ti.map_index}] try {ti.try_number}", CLAIM_STALE_SECONDS)
        outcome = inbox.score_one(leads_file, me, scoring_dir(), run_job)
        if outcome.kind == inbox.SKIPPED:
            raise AirflowSkipException(outcome.message)
        if outcome.kind == inbox.STAYS:  # transient: fail, and let the retry or the next run try again
            raise AirflowException(outcome.message)
        if outcome.kind in (inbox.FAILED, inbox.HELD):  # filed away: someone must act, a retry cannot help
            raise AirflowFailException(outcome.message)
        print(outcome.message)
        return {"file": str(outcome.target), "job_id": outcome.job_id, "job_folder": str(outcome.job_folder),
                "rows": outcome.rows}

    score_file.expand(path=list_inbox())
