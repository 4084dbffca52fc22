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

import datetime as dt
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
# Why a file stays in the inbox, by the scoring job's exit code (run_all.py score --help).
TRANSIENT = {1: "the notebook failed", 3: "another run_all.py holds the run lock",
             5: "no registered model to score with: train one (the lead2value_training DAG)"}


def inbox_root() -> Path:
    configured = Variable.get("lead2value_inbox", default_var=None) or os.environ.get("LEAD2VALUE_INBOX")
    return HOME / (configured or OUTPUTS / "inbox")


def scoring_dir() -> Path:
    return OUTPUTS / "scoring"


def score_claimed(root: Path, leads_file: Path, dag_run: str) -> dict:
    """Score one claimed file (unless an earlier attempt did), then file it by the outcome."""
    if not leads_file.exists():
        raise AirflowSkipException(f"{leads_file.name} left the inbox before this task claimed it (another run filed it)")
    try:
        item = inbox.batch(leads_file)
    except inbox.InboxError as err:
        item = inbox.Batch(leads_file)
        target = inbox.file_away(root, item, inbox.FAILED, inbox.content_hash(item), reason=str(err))
        raise AirflowFailException(f"{leads_file.name} refused, moved to {target}: {err}") from None
    leads_sha = inbox.sha256_file(leads_file)
    digest = inbox.content_hash(item)
    base = inbox.job_base(leads_file, digest)
    earlier = inbox.attempts(scoring_dir(), base)
    record = {"dag_run": dag_run, "source": str(leads_file), "leads_sha256": leads_sha, "batch_sha256": digest,
              "customers": {source: str(path) for source, path in item.customers.items()}}

    already = inbox.settled(earlier)
    if already:
        outcome, job_id = already
        print(f"job {job_id} already scored {leads_file.name} (an earlier attempt ended before filing it): "
              f"filing it, not scoring it again")
        return file_scored(root, item, outcome, job_id, leads_sha, digest, record)
    running = inbox.still_running(earlier)
    if running:
        raise AirflowException(f"job {running} for {leads_file.name} is still running (its task was killed, "
                               f"the job was not): the file stays in the inbox until it ends")
    failed = inbox.failed_attempts(earlier)
    if len(failed) >= inbox.MAX_FAILED_ATTEMPTS:
        reason = (f"the scoring notebook failed {len(failed)} times on these bytes: look at the executed notebooks of "
                  f"jobs {', '.join(failed)} in {scoring_dir()}")
        target = inbox.file_away(root, item, inbox.FAILED, digest, reason=reason)
        raise AirflowFailException(f"{leads_file.name} moved to {target}: {reason}")

    job_id = inbox.next_job_id(base, earlier)
    print(f"scoring {leads_file.name} as job {job_id}")
    proc = call_project(["run_all.py", "score", "--no-progress", *item.score_args(), "--job-id", job_id])
    outcome = inbox.OUTCOMES.get(proc.returncode)
    if outcome == inbox.FAILED:
        message = proc.stderr.strip() or proc.stdout.strip()
        reason = f"`run_all.py score` refused {leads_file.name} (exit 2: bad input; DAG run {dag_run}):\n{message}"
        target = inbox.file_away(root, item, inbox.FAILED, digest, reason=reason)
        raise AirflowFailException(f"{leads_file.name} refused, moved to {target} (reason beside it): "
                                   f"{message.splitlines()[0] if message else ''}")
    if outcome is None:
        meaning = TRANSIENT.get(proc.returncode, "killed or crashed")
        raise AirflowException(f"`run_all.py score` exited {proc.returncode} ({meaning}): {leads_file.name} stays in "
                               f"the inbox for the next run. {proc.stderr.strip()[-400:]}")
    return file_scored(root, item, outcome, job_id, leads_sha, digest, record)


def file_scored(root: Path, item: inbox.Batch, outcome: str, job_id: str, leads_sha: str, digest: str,
                record: dict) -> dict:
    """Move a scored file to done/ (or held/) once its job's scores are there, for the bytes it holds now."""
    folder = scoring_dir() / job_id
    status = (inbox.read_json(folder / "status.json") or {}).get("status")
    manifest = inbox.read_json(folder / "manifest.json") or {}
    wanted = "held" if outcome == inbox.HELD else "succeeded"
    if status != wanted or not (folder / "data" / "leads_scored.parquet").is_file():
        raise AirflowException(f"job {job_id} says '{status}' (not '{wanted}') or wrote no scores: "
                               f"{item.leads.name} stays in the inbox")
    scored_sha = manifest.get("inputs", {}).get("leads", {}).get("sha256")
    if not (scored_sha == leads_sha == inbox.sha256_file(item.leads)):
        raise AirflowException(f"{item.leads.name} changed while it was scored: it stays in the inbox and the next run "
                               f"scores what it holds then (job {job_id} scored other bytes)")
    record = {**record, "job_id": job_id, "job_folder": str(folder), "status": status,
              "rows": manifest.get("inputs", {}).get("leads", {}).get("rows"),
              "filed": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    target = inbox.file_away(root, item, outcome, digest, record=record)
    if outcome == inbox.HELD:
        raise AirflowFailException(
            f"HELD on drift: {'; '.join(manifest.get('held_because', [])) or 'see the dashboard'}. The scores of "
            f"{item.leads.name} are kept in {folder} (look at {folder / 'dashboard.html'} before using them); "
            f"outputs/scoring/latest is unchanged; the file is in {target} and will not be scored again")
    print(f"{item.leads.name}: {record['rows']} leads scored by job {job_id} ({folder}); file moved to {target}")
    return {"file": str(target), "job_id": job_id, "job_folder": str(folder), "rows": record["rows"]}


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
        claim = inbox.claim(leads_file, me)
        if claim is None:
            holder = inbox.read_claim(inbox.claim_path(leads_file))
            raise AirflowSkipException(f"{leads_file.name}: {inbox.describe(holder) if holder else 'claimed'}; "
                                       f"left to that run")
        try:
            return score_claimed(leads_file.parent.parent, leads_file, context["run_id"])
        finally:
            inbox.release(claim)

    score_file.expand(path=list_inbox())
