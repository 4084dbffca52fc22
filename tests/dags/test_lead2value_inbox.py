"""The scoring inbox's claims and filing (dags/lead2value_inbox.py), without Airflow."""
from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from utils.core.paths import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "dags"))
import lead2value_inbox as inbox  # noqa: E402  (dags/ is Airflow's import path, not a package)


def drop(root: Path, name: str, text: str = "lead_id,x\n1,2\n", age: float = 3600.0) -> Path:
    path = root / inbox.LEADS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def holder(**changes) -> dict:
    return {**inbox.owner("scheduled__2026-01-01T01:00:00+00:00", "score_file[0] try 1", 7200.0), **changes}


def job(scoring: Path, name: str, status: str | None, pid: int | None = None) -> None:
    (scoring / name).mkdir(parents=True)
    if status is not None:
        (scoring / name / "status.json").write_text(json.dumps({"status": status, "pid": pid or os.getpid()}))


# ---- what waits -------------------------------------------------------------------------------------

def test_pending_lists_data_files_oldest_first_and_skips_partial_hidden_and_other_names(tmp_path):
    newer, older = drop(tmp_path, "b.csv", age=100), drop(tmp_path, "a.parquet", age=200)
    for name in ("c.csv.part", ".d.csv", "notes.txt"):
        drop(tmp_path, name)
    ready, waiting = inbox.pending(tmp_path)
    assert ready == [older, newer] and waiting == []


def test_pending_is_empty_when_the_inbox_does_not_exist_yet(tmp_path):
    assert inbox.pending(tmp_path / "nowhere") == ([], [])


def test_a_file_changed_within_the_settle_time_waits_and_so_does_one_whose_customers_just_changed(tmp_path):
    settled_file, fresh = drop(tmp_path, "old.csv", age=120), drop(tmp_path, "new.csv", age=5)
    ready, waiting = inbox.pending(tmp_path, settle_seconds=30)
    assert ready == [settled_file] and waiting[0].startswith("new.csv: changed less than 30 s ago")
    companions = tmp_path / inbox.CUSTOMERS / "old"
    companions.mkdir(parents=True)
    (companions / "customers.csv").write_text("customer_id\n1\n")
    assert inbox.pending(tmp_path, settle_seconds=30)[0] == [], "its customers folder is still being filled"
    assert fresh.exists()


def test_a_file_under_a_live_claim_waits_and_one_under_a_dead_claim_is_listed(tmp_path):
    live, dead = drop(tmp_path, "live.csv"), drop(tmp_path, "dead.csv")
    live_holder = holder()  # one record: a second call may fall in the next second
    inbox.claim_path(live).write_text(json.dumps(live_holder))
    inbox.claim_path(dead).write_text(json.dumps(holder(pid=dead_pid())))
    ready, waiting = inbox.pending(tmp_path)
    assert ready == [dead]
    assert waiting == [f"live.csv: {inbox.describe(live_holder)}"] and "claimed by DAG run scheduled__" in waiting[0]


# ---- a batch: the leads file and its customers ----------------------------------------------------------

def test_a_batch_takes_the_customer_files_named_after_its_stem_and_passes_each_to_its_option(tmp_path):
    leads = drop(tmp_path, "monday.csv")
    folder = tmp_path / inbox.CUSTOMERS / "monday"
    folder.mkdir(parents=True)
    for name in ("customers.csv", "purchases.parquet", "purchase_lines.csv"):
        (folder / name).write_text("x\n")
    item = inbox.batch(leads)
    assert set(item.customers) == {"customers", "purchases", "purchase_lines"}
    assert item.score_args() == ["--leads", str(leads), "--customers", str(folder / "customers.csv"),
                                 "--purchase-lines", str(folder / "purchase_lines.csv"),
                                 "--purchases", str(folder / "purchases.parquet")]
    assert inbox.batch(drop(tmp_path, "tuesday.csv")).customers == {}


@pytest.mark.parametrize("names, message", [
    (["customers.csv", "orders.csv"], "orders.csv: not a customer source"),
    (["customers.csv", "customers.parquet"], "two files for 'customers'"),
    (["customers.xlsx"], "customers.xlsx: not a customer source"),
])
def test_a_customers_folder_with_a_file_the_job_cannot_take_is_refused_naming_it(tmp_path, names, message):
    leads = drop(tmp_path, "monday.csv")
    folder = tmp_path / inbox.CUSTOMERS / "monday"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("x\n")
    with pytest.raises(inbox.InboxError, match=message):
        inbox.batch(leads)


def test_the_job_id_follows_the_name_and_every_byte_of_the_batch(tmp_path):
    leads = drop(tmp_path, "new leads (1).csv")
    item = inbox.batch(leads)
    digest = inbox.content_hash(item)
    assert inbox.job_base(leads, digest) == f"inbox-new_leads_1_-{digest[:12]}"
    assert inbox.content_hash(inbox.batch(leads)) == digest, "the same bytes give the same id"
    folder = tmp_path / inbox.CUSTOMERS / leads.stem
    folder.mkdir(parents=True)
    (folder / "customers.csv").write_text("customer_id\n1\n")
    assert inbox.content_hash(inbox.batch(leads)) != digest, "other customers, another job"
    leads.write_text("lead_id,x\n1,3\n")
    assert inbox.content_hash(inbox.Batch(leads)) != digest
    assert inbox.sha256_file(leads) == inbox.sha256_file(leads) != inbox.sha256_file(drop(tmp_path, "other.csv"))


def test_latest_change_is_the_newest_of_the_leads_file_and_its_customers(tmp_path):
    leads = drop(tmp_path, "monday.csv", age=500)
    assert inbox.latest_change(leads) == pytest.approx(time.time() - 500, abs=5)
    folder = tmp_path / inbox.CUSTOMERS / "monday"
    folder.mkdir(parents=True)
    (folder / "customers.csv").write_text("x\n")
    assert inbox.latest_change(leads) == pytest.approx(time.time(), abs=5)


# ---- earlier attempts -------------------------------------------------------------------------------

def test_attempts_are_the_job_folders_of_the_same_batch_in_order(tmp_path):
    base = "inbox-monday-3fa2b1c4d5e6"
    for name, status in ((f"{base}-10", "failed"), (base, "running"), (f"{base}-2", "failed"),
                         (f"{base}-x", "succeeded"), ("inbox-monday-3fa2b1c4d5e7", "succeeded")):
        job(tmp_path, name, status)
    found = inbox.attempts(tmp_path, base)
    assert [name for name, _ in found] == [base, f"{base}-2", f"{base}-10"]
    assert inbox.next_job_id(base, found) == f"{base}-3"
    assert inbox.next_job_id(base, []) == base
    assert inbox.attempts(tmp_path / "none", base) == []
    assert inbox.failed_attempts(found) == [f"{base}-2", f"{base}-10"]


def test_an_earlier_success_or_hold_settles_the_batch_without_a_new_job(tmp_path):
    base = "inbox-monday-3fa2b1c4d5e6"
    job(tmp_path, base, "failed")
    assert inbox.settled(inbox.attempts(tmp_path, base)) is None
    job(tmp_path, f"{base}-2", "held")
    assert inbox.settled(inbox.attempts(tmp_path, base)) == (inbox.HELD, f"{base}-2")
    job(tmp_path, f"{base}-3", "succeeded")
    assert inbox.settled(inbox.attempts(tmp_path, base)) == (inbox.DONE, f"{base}-3"), "a success wins over a hold"


def test_a_job_left_running_by_a_killed_task_counts_only_while_its_process_lives(tmp_path):
    base = "inbox-monday-3fa2b1c4d5e6"
    job(tmp_path, base, "running", pid=dead_pid())
    job(tmp_path, f"{base}-2", None)  # created, status not written yet
    assert inbox.still_running(inbox.attempts(tmp_path, base)) is None
    job(tmp_path, f"{base}-3", "running", pid=os.getpid())
    assert inbox.still_running(inbox.attempts(tmp_path, base)) == f"{base}-3"


# ---- claims -----------------------------------------------------------------------------------------

def test_a_claim_is_exclusive_until_released_and_names_its_holder(tmp_path):
    leads = drop(tmp_path, "monday.csv")
    first = inbox.claim(leads, holder(dag_run="run-1"))
    assert first is not None and inbox.read_claim(first.path)["dag_run"] == "run-1"
    assert inbox.claim(leads, holder(dag_run="run-2")) is None, "the holder's process is alive"
    inbox.release(first)
    assert not inbox.claim_path(leads).exists()
    assert inbox.claim(leads, holder(dag_run="run-2")) is not None


def test_a_claim_whose_process_died_is_broken_by_the_next_run(tmp_path):
    leads = drop(tmp_path, "monday.csv")
    inbox.claim_path(leads).write_text(json.dumps(holder(dag_run="killed", pid=dead_pid())))
    taken = inbox.claim(leads, holder(dag_run="next"))
    assert taken is not None and inbox.read_claim(taken.path)["dag_run"] == "next"


def test_staleness_by_age_by_dead_or_reused_pid_and_only_by_age_on_another_host():
    now = time.time()
    assert not inbox.is_stale(holder(), now=now)
    assert inbox.is_stale(holder(since=now - 7201), now=now), "older than its stale_after"
    assert inbox.is_stale(holder(pid=dead_pid()), now=now)
    assert inbox.is_stale(holder(pid_start="1"), now=now), "the pid lives, but it is another process now"
    far = holder(host=socket.gethostname() + "-elsewhere", pid=dead_pid())
    assert not inbox.is_stale(far, now=now) and inbox.is_stale(far, now=now + 7201)


def test_a_claim_being_written_counts_as_fresh_and_release_leaves_a_claim_that_is_not_ours(tmp_path):
    leads = drop(tmp_path, "monday.csv")
    inbox.claim_path(leads).write_text("")  # created by O_EXCL, content not yet written
    assert inbox.claim(leads, holder()) is None
    assert not inbox.is_stale(inbox.read_claim(inbox.claim_path(leads)))
    mine = inbox.Claim(inbox.claim_path(leads), holder(dag_run="judged stale and replaced"))
    inbox.release(mine)
    assert inbox.claim_path(leads).exists()


def _race_for(leads: str, dag_run: str, results, everyone_tried) -> None:
    results.put((dag_run, inbox.claim(Path(leads), holder(dag_run=dag_run)) is not None))
    everyone_tried.wait(30)  # a winner that exited at once would leave a claim that is stale by right


def test_of_runs_racing_for_one_stale_claim_exactly_one_wins(tmp_path):
    leads = drop(tmp_path, "monday.csv")
    for round_ in range(5):
        inbox.claim_path(leads).write_text(json.dumps(holder(dag_run="killed", pid=dead_pid())))
        context = multiprocessing.get_context("fork")
        results, everyone_tried = context.Queue(), context.Event()
        racers = [context.Process(target=_race_for, args=(str(leads), f"run-{n}", results, everyone_tried))
                  for n in range(6)]
        for racer in racers:
            racer.start()
        won = [run for run, got in (results.get(timeout=30) for _ in racers) if got]
        everyone_tried.set()
        for racer in racers:
            racer.join(30)
        assert len(won) == 1, f"round {round_}: {won}"
        assert inbox.read_claim(inbox.claim_path(leads))["dag_run"] == won[0]
        inbox.claim_path(leads).unlink()


# ---- filing -----------------------------------------------------------------------------------------

def test_file_away_writes_the_note_then_moves_the_file_and_its_customers(tmp_path):
    leads = drop(tmp_path, "monday.csv")
    folder = tmp_path / inbox.CUSTOMERS / "monday"
    folder.mkdir(parents=True)
    (folder / "customers.csv").write_text("customer_id\n1\n")
    item = inbox.batch(leads)
    digest = inbox.content_hash(item)
    target = inbox.file_away(tmp_path, item, inbox.DONE, digest, record={"job_id": "inbox-monday-x"})
    assert target == tmp_path / "done" / "monday.csv" and target.read_text() == "lead_id,x\n1,2\n"
    assert json.loads((tmp_path / "done" / "monday.csv.job.json").read_text()) == {"job_id": "inbox-monday-x"}
    assert (tmp_path / "done" / "monday.customers" / "customers.csv").exists()
    assert not leads.exists() and not folder.exists()


def test_a_name_taken_in_done_gets_the_hash_and_then_a_number(tmp_path):
    names = []
    for day in range(3):
        leads = drop(tmp_path, "new_leads.csv", text="same bytes\n")
        target = inbox.file_away(tmp_path, inbox.Batch(leads), inbox.DONE, "3fa2b1c4d5e6ffff", record={"day": day})
        names.append(target.name)
        assert json.loads(target.with_name(target.name + ".job.json").read_text()) == {"day": day}
    assert names == ["new_leads.csv", "new_leads-3fa2b1c4d5e6.csv", "new_leads-3fa2b1c4d5e6-2.csv"]


def test_a_refused_file_goes_to_failed_beside_its_reason(tmp_path):
    leads = drop(tmp_path, "broken.csv")
    target = inbox.file_away(tmp_path, inbox.Batch(leads), inbox.FAILED, "ab" * 32,
                             reason="error: bad input: broken.csv: column 'first_utm_source_c' is missing\n\n")
    assert target == tmp_path / "failed" / "broken.csv"
    assert (tmp_path / "failed" / "broken.csv.reason.txt").read_text() == \
        "error: bad input: broken.csv: column 'first_utm_source_c' is missing\n"


def test_json_notes_are_written_whole_and_unreadable_ones_read_as_none(tmp_path):
    inbox.write_json(tmp_path / "note.json", {"b": 1, "a": [2]})
    assert inbox.read_json(tmp_path / "note.json") == {"a": [2], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["note.json"]
    (tmp_path / "bad.json").write_text("{")
    assert inbox.read_json(tmp_path / "bad.json") is None and inbox.read_json(tmp_path / "none.json") is None


def test_process_start_tells_a_live_process_from_a_missing_one():
    assert inbox.process_start(os.getpid()) == inbox.process_start(os.getpid()) is not None
    assert inbox.process_start(dead_pid()) is None
    assert inbox.pid_alive(os.getpid()) and not inbox.pid_alive(dead_pid())
    assert inbox.owner("r", "t", 60.0)["pid_start"] == inbox.process_start(os.getpid())


# ---- one file's whole way (score_one), with a fake `run_all.py score` -------------------------------------

class FakeJob:
    """Stands for `run_all.py score`: writes the job folder a real job would, then answers an exit code."""

    def __init__(self, scoring: Path, code: int = 0, status: str | None = None, stderr: str = "",
                 scores: bool = True, then=None):
        self.scoring, self.code, self.stderr, self.scores, self.then = scoring, code, stderr, scores, then
        self.status = status or {0: "succeeded", 4: "held", 1: "failed"}.get(code)
        self.calls: list[tuple[list[str], str]] = []

    def __call__(self, args: list[str], job_id: str) -> tuple[int, str]:
        self.calls.append((args, job_id))
        leads = Path(args[args.index("--leads") + 1])
        if self.status is not None:
            folder = self.scoring / job_id
            (folder / "data").mkdir(parents=True)
            (folder / "status.json").write_text(json.dumps({"status": self.status, "pid": os.getpid()}))
            (folder / "manifest.json").write_text(json.dumps({
                "inputs": {"leads": {"sha256": inbox.sha256_file(leads), "rows": 1}},
                "held_because": ["leads: first_utm_medium_c PSI 4.1 > 0.25"] if self.status == "held" else []}))
            if self.scores:
                (folder / "data" / "leads_scored.parquet").write_bytes(b"scores")
        if self.then:
            self.then(leads)
        return self.code, self.stderr


def inbox_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_a_scored_file_goes_to_done_beside_the_record_of_its_job(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    fake = FakeJob(scoring)
    outcome = inbox.score_one(leads, holder(), scoring, fake)
    base = inbox.job_base(leads, inbox.content_hash(inbox.Batch(root / "done" / "monday.csv")))
    assert (outcome.kind, outcome.job_id, outcome.rows) == (inbox.DONE, base, 1)
    assert outcome.target == root / "done" / "monday.csv" and outcome.job_folder == scoring / base
    assert fake.calls == [(["--leads", str(leads)], base)]
    assert inbox_files(root) == ["done/monday.csv", "done/monday.csv.job.json"]
    record = json.loads((root / "done" / "monday.csv.job.json").read_text())
    assert record["job_id"] == base and record["job_folder"] == str(scoring / base) and record["status"] == "succeeded"
    assert record["source"] == str(leads) and record["dag_run"] == holder()["dag_run"]


def test_a_refused_file_goes_to_failed_with_the_jobs_message(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "broken.csv")
    message = f"error: bad input: {leads}: column 'first_utm_source_c': missing\nnothing was written"
    outcome = inbox.score_one(leads, holder(), scoring, FakeJob(scoring, code=2, stderr=message))
    assert outcome.kind == inbox.FAILED and "column 'first_utm_source_c': missing" in outcome.message
    assert inbox_files(root) == ["failed/broken.csv", "failed/broken.csv.reason.txt"]
    assert message in (root / "failed" / "broken.csv.reason.txt").read_text()


def test_a_file_held_on_drift_goes_to_held_and_says_why_and_where_its_scores_are(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "shifted.csv")
    outcome = inbox.score_one(leads, holder(), scoring, FakeJob(scoring, code=4))
    assert outcome.kind == inbox.HELD and outcome.message.startswith("HELD on drift: leads: first_utm_medium_c PSI")
    assert str(outcome.job_folder / "dashboard.html") in outcome.message
    assert inbox_files(root) == ["held/shifted.csv", "held/shifted.csv.job.json"]
    assert json.loads((root / "held" / "shifted.csv.job.json").read_text())["status"] == "held"


@pytest.mark.parametrize("code, meaning", [(1, "the notebook failed"), (3, "another run_all.py holds the run lock"),
                                           (5, "no registered model"), (-9, "killed or crashed")])
def test_a_transient_failure_leaves_the_file_in_the_inbox_without_a_claim(tmp_path, code, meaning):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    outcome = inbox.score_one(leads, holder(), scoring, FakeJob(scoring, code=code, stderr="why"))
    assert outcome.kind == inbox.STAYS and meaning in outcome.message and "stays in the inbox" in outcome.message
    assert inbox_files(root) == ["leads/monday.csv"]


def test_a_task_stopped_during_the_job_releases_its_claim_and_leaves_the_file(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")

    def stopped(args, job_id):
        assert inbox.claim_path(leads).exists(), "the job runs under the claim"
        raise KeyboardInterrupt  # as Airflow's SIGTERM handler raises in the task

    with pytest.raises(KeyboardInterrupt):
        inbox.score_one(leads, holder(), scoring, stopped)
    assert inbox_files(root) == ["leads/monday.csv"]


def test_a_retry_after_the_scores_landed_files_the_file_without_scoring_it_again(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    base = inbox.job_base(leads, inbox.content_hash(inbox.batch(leads)))
    FakeJob(scoring)(["--leads", str(leads)], base)  # the first attempt's job ended; its task died before the move
    again = FakeJob(scoring)
    outcome = inbox.score_one(leads, holder(), scoring, again)
    assert again.calls == [] and (outcome.kind, outcome.job_id) == (inbox.DONE, base)
    assert inbox_files(root) == ["done/monday.csv", "done/monday.csv.job.json"]


def test_after_a_killed_job_the_next_attempt_takes_the_next_id_but_not_while_it_still_runs(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    base = inbox.job_base(leads, inbox.content_hash(inbox.batch(leads)))
    job(scoring, base, "running", pid=os.getpid())  # an orphan job, still running
    waiting = FakeJob(scoring)
    outcome = inbox.score_one(leads, holder(), scoring, waiting)
    assert outcome.kind == inbox.STAYS and "still running" in outcome.message and waiting.calls == []
    (scoring / base / "status.json").write_text(json.dumps({"status": "running", "pid": dead_pid()}))
    retry = FakeJob(scoring)
    assert inbox.score_one(leads, holder(), scoring, retry).job_id == f"{base}-2"
    assert [job_id for _, job_id in retry.calls] == [f"{base}-2"]


def test_a_file_whose_notebook_failed_three_times_goes_to_failed_naming_the_jobs(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    for attempt in range(inbox.MAX_FAILED_ATTEMPTS):
        fake = FakeJob(scoring, code=1)
        assert inbox.score_one(leads, holder(), scoring, fake).kind == inbox.STAYS
    last = FakeJob(scoring)
    outcome = inbox.score_one(leads, holder(), scoring, last)
    assert outcome.kind == inbox.FAILED and last.calls == []
    base = inbox.job_base(root / "failed" / "monday.csv", inbox.content_hash(inbox.Batch(root / "failed" / "monday.csv")))
    assert f"{base}, {base}-2, {base}-3" in (root / "failed" / "monday.csv.reason.txt").read_text()


@pytest.mark.parametrize("fake_args, expected", [
    ({"code": 0, "status": "failed"}, "says 'failed' (not 'succeeded')"),
    ({"code": 0, "scores": False}, "wrote no scores"),
    ({"code": 0, "then": lambda leads: leads.write_text("lead_id,x\n1,9\n")}, "changed while it was scored"),
])
def test_exit_0_without_the_scores_of_these_bytes_leaves_the_file(tmp_path, fake_args, expected):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    outcome = inbox.score_one(leads, holder(), scoring, FakeJob(scoring, **fake_args))
    assert outcome.kind == inbox.STAYS and expected in outcome.message
    assert inbox_files(root) == ["leads/monday.csv"]


def test_a_file_another_live_run_holds_is_skipped_untouched(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    theirs = inbox.claim(leads, holder(dag_run="scheduled__other"))
    fake = FakeJob(scoring)
    outcome = inbox.score_one(leads, holder(), scoring, fake)
    assert outcome.kind == inbox.SKIPPED and "scheduled__other" in outcome.message and fake.calls == []
    assert inbox.read_claim(theirs.path) == theirs.owner and inbox_files(root) == ["leads/monday.csv",
                                                                                  "leads/monday.csv.claim"]
    theirs.path.unlink()
    leads.unlink()
    assert inbox.score_one(leads, holder(), scoring, fake).kind == inbox.SKIPPED, "filed by the other run meanwhile"
    assert inbox_files(root) == []


def test_customers_go_to_the_job_and_along_with_their_leads(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    folder = root / inbox.CUSTOMERS / "monday"
    folder.mkdir(parents=True)
    for name in ("customers.csv", "purchases.csv"):
        (folder / name).write_text("customer_id\n1\n")
    fake = FakeJob(scoring)
    assert inbox.score_one(leads, holder(), scoring, fake).kind == inbox.DONE
    assert fake.calls[0][0] == ["--leads", str(leads), "--customers", str(folder / "customers.csv"),
                                "--purchases", str(folder / "purchases.csv")]
    assert inbox_files(root) == ["done/monday.csv", "done/monday.csv.job.json",
                                 "done/monday.customers/customers.csv", "done/monday.customers/purchases.csv"]


def test_a_customers_folder_the_job_cannot_take_sends_the_batch_to_failed_naming_the_file(tmp_path):
    root, scoring = tmp_path / "inbox", tmp_path / "scoring"
    leads = drop(root, "monday.csv")
    folder = root / inbox.CUSTOMERS / "monday"
    folder.mkdir(parents=True)
    (folder / "orders.csv").write_text("x\n")
    fake = FakeJob(scoring)
    outcome = inbox.score_one(leads, holder(), scoring, fake)
    assert outcome.kind == inbox.FAILED and fake.calls == []
    assert "orders.csv: not a customer source" in (root / "failed" / "monday.csv.reason.txt").read_text()
    assert inbox_files(root) == ["failed/monday.csv", "failed/monday.csv.reason.txt",
                                 "failed/monday.customers/orders.csv"]
