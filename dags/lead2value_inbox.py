"""The scoring inbox: which files wait, who is scoring one, where each goes after its job.

Standard library only: the scoring DAG imports it in Airflow's venv, the project's tests in
the project's venv (tests/dags/test_lead2value_inbox.py), without Airflow.

    <inbox>/leads/<name>.csv | .parquet       a batch of leads to score (the trigger)
    <inbox>/customers/<stem>/                 optional: its customers, one file per source, named
                                              customers, purchases[, purchase_lines, web_actions, campaigns]
                                              (.csv or .parquet), or a single transactions file
    <inbox>/leads/<name>.claim                a job is scoring <name> (JSON: DAG run, pid, host, since)
    <inbox>/done/<name> + <name>.job.json     scored: the job id and folder its scores are in
    <inbox>/held/<name> + <name>.job.json     scored but held on drift: the scores wait in the job folder
    <inbox>/failed/<name> + <name>.reason.txt refused: what is wrong with it (the job's own message)

A file is claimed before it is scored, and stays in ``leads/`` until its job has ended: a
claim is a file created with ``O_CREAT | O_EXCL`` (only one process can create it), released
when the task ends however it ends, and broken by the next run when its holder is gone (same
host and the process is dead) or when it is older than ``stale_after`` seconds (a holder on
another host that died without a word). The job id is derived from the file's name and bytes
(:func:`job_base`), so a retry finds the job an earlier attempt ran: a file whose job already
succeeded is moved, not scored again. :func:`score_one` is one file's whole way, given the
command that runs the job; the DAG turns its :class:`Outcome` into a task state.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LEADS, CUSTOMERS, DONE, FAILED, HELD = "leads", "customers", "done", "failed", "held"
SUFFIXES = (".csv", ".parquet")
CLAIM_SUFFIX = ".claim"
# The companion files of a leads batch, by the `run_all.py score` option each is passed to.
CUSTOMER_SOURCES = ("customers", "purchases", "purchase_lines", "web_actions", "campaigns", "transactions")
# A job whose notebook failed this many times for the same bytes is not tried again: the file goes to failed/.
MAX_FAILED_ATTEMPTS = 3
# What each exit code of `run_all.py score` means for the file; any other code (1, 3, 5, killed) leaves it.
OUTCOMES = {0: DONE, 2: FAILED, 4: HELD}
STAYS, SKIPPED = "stays", "skipped"
# Why a file stays in the inbox, by the scoring job's exit code (run_all.py score --help).
TRANSIENT = {1: "the notebook failed", 3: "another run_all.py holds the run lock",
             5: "no registered model to score with: train one (the lead2value_training DAG)"}


@dataclass
class Batch:
    """One leads file and the customer files that came with it."""

    leads: Path
    customers: dict[str, Path] = field(default_factory=dict)

    @property
    def customers_dir(self) -> Path:
        return self.leads.parent.parent / CUSTOMERS / self.leads.stem

    def score_args(self) -> list[str]:
        """The `run_all.py score` arguments naming this batch's files."""
        args = ["--leads", str(self.leads)]
        for source, path in self.customers.items():
            args += [f"--{source.replace('_', '-')}", str(path)]
        return args


@dataclass
class Claim:
    path: Path
    owner: dict


@dataclass
class Outcome:
    """Where one file went: done, held, failed (filed away), stays (in the inbox), skipped (someone else's)."""

    kind: str
    message: str
    target: Path | None = None
    job_id: str | None = None
    job_folder: Path | None = None
    rows: int | None = None


# `run_all.py score` given its arguments and job id: (exit code, its stderr).
JobRunner = Callable[[list[str], str], tuple[int, str]]


def score_one(leads_file: Path, me: dict, scoring_dir: Path, run_job: JobRunner) -> Outcome:
    """Claim one file, score it unless an earlier attempt did, file it by the outcome, release the claim."""
    leads_file = Path(leads_file)
    held = claim(leads_file, me)
    if held is None:
        holder = read_claim(claim_path(leads_file))
        return Outcome(SKIPPED, f"{leads_file.name}: {describe(holder) if holder else 'claimed'}; left to that run")
    try:
        return _score_claimed(leads_file, me.get("dag_run", "?"), Path(scoring_dir), run_job)
    finally:
        release(held)


def _score_claimed(leads_file: Path, dag_run: str, scoring_dir: Path, run_job: JobRunner) -> Outcome:
    root = leads_file.parent.parent
    if not leads_file.exists():
        return Outcome(SKIPPED, f"{leads_file.name} left the inbox before it was claimed (another run filed it)")
    try:
        item = batch(leads_file)
    except InboxError as err:
        item = Batch(leads_file)
        target = file_away(root, item, FAILED, content_hash(item), reason=str(err))
        return Outcome(FAILED, f"{leads_file.name} refused, moved to {target}: {err}", target)
    leads_sha = sha256_file(leads_file)
    digest = content_hash(item)
    base = job_base(leads_file, digest)
    earlier = attempts(scoring_dir, base)
    record = {"dag_run": dag_run, "source": str(leads_file), "leads_sha256": leads_sha, "batch_sha256": digest,
              "customers": {source: str(path) for source, path in item.customers.items()}}

    already = settled(earlier)
    if already:
        outcome, job_id = already
        print(f"job {job_id} already scored {leads_file.name} (an earlier attempt ended before filing it): "
              f"filing it, not scoring it again")
        return _file_scored(item, outcome, scoring_dir / job_id, leads_sha, digest, record)
    running = still_running(earlier)
    if running:
        return Outcome(STAYS, f"job {running} for {leads_file.name} is still running (its task was killed, the job "
                              f"was not): the file stays in the inbox until it ends", job_id=running)
    failed = failed_attempts(earlier)
    if len(failed) >= MAX_FAILED_ATTEMPTS:
        reason = (f"the scoring notebook failed {len(failed)} times on these bytes: look at the executed notebooks of "
                  f"jobs {', '.join(failed)} in {scoring_dir}")
        target = file_away(root, item, FAILED, digest, reason=reason)
        return Outcome(FAILED, f"{leads_file.name} moved to {target}: {reason}", target)

    job_id = next_job_id(base, earlier)
    print(f"scoring {leads_file.name} as job {job_id}")
    code, stderr = run_job(item.score_args(), job_id)
    outcome = OUTCOMES.get(code)
    if outcome == FAILED:
        message = stderr.strip() or f"exit {code}"
        reason = f"`run_all.py score` refused {leads_file.name} (exit 2: bad input; DAG run {dag_run}):\n{message}"
        target = file_away(root, item, FAILED, digest, reason=reason)
        return Outcome(FAILED, f"{leads_file.name} refused, moved to {target} (reason beside it): "
                               f"{message.splitlines()[0]}", target, job_id)
    if outcome is None:
        meaning = TRANSIENT.get(code, "killed or crashed")
        return Outcome(STAYS, f"`run_all.py score` exited {code} ({meaning}): {leads_file.name} stays in the inbox "
                              f"for the next run. {stderr.strip()[-400:]}", job_id=job_id)
    return _file_scored(item, outcome, scoring_dir / job_id, leads_sha, digest, record)


def _file_scored(item: Batch, outcome: str, folder: Path, leads_sha: str, digest: str, record: dict) -> Outcome:
    """Move a scored file to done/ (or held/) once its job's scores are there, for the bytes it holds now."""
    status = (read_json(folder / "status.json") or {}).get("status")
    manifest = read_json(folder / "manifest.json") or {}
    wanted = "held" if outcome == HELD else "succeeded"
    if status != wanted or not (folder / "data" / "leads_scored.parquet").is_file():
        return Outcome(STAYS, f"job {folder.name} says '{status}' (not '{wanted}') or wrote no scores: "
                              f"{item.leads.name} stays in the inbox", job_id=folder.name, job_folder=folder)
    leads_input = manifest.get("inputs", {}).get("leads", {})
    if not (leads_input.get("sha256") == leads_sha == sha256_file(item.leads)):
        return Outcome(STAYS, f"{item.leads.name} changed while it was scored: it stays in the inbox and the next run "
                              f"scores what it holds then (job {folder.name} scored other bytes)",
                       job_id=folder.name, job_folder=folder)
    rows = leads_input.get("rows")
    record = {**record, "job_id": folder.name, "job_folder": str(folder), "status": status, "rows": rows,
              "filed": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    target = file_away(item.leads.parent.parent, item, outcome, digest, record=record)
    if outcome == HELD:
        return Outcome(HELD, f"HELD on drift: {'; '.join(manifest.get('held_because', [])) or 'see the dashboard'}. "
                             f"The scores of {item.leads.name} are kept in {folder} (look at "
                             f"{folder / 'dashboard.html'} before using them); outputs/scoring/latest is unchanged; "
                             f"the file is in {target} and will not be scored again", target, folder.name, folder, rows)
    return Outcome(DONE, f"{item.leads.name}: {rows} leads scored by job {folder.name} ({folder}); file moved to "
                         f"{target}", target, folder.name, folder, rows)


def pending(root: Path, settle_seconds: float = 0.0, now: float | None = None) -> tuple[list[Path], list[str]]:
    """The leads files to score, oldest first, and why others wait.

    Skipped: hidden and partial names (write ``x.csv.part`` then rename it), files changed less
    than ``settle_seconds`` ago (maybe still being copied in), files under a live claim.
    """
    now = time.time() if now is None else now
    folder = Path(root) / LEADS
    if not folder.is_dir():
        return [], []
    ready, waiting = [], []
    for path in sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime, p.name)):
        if path.name.startswith(".") or path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        if now - latest_change(path) < settle_seconds:
            waiting.append(f"{path.name}: changed less than {settle_seconds:g} s ago, maybe still being written")
            continue
        holder = read_claim(claim_path(path))
        if holder is not None and not is_stale(holder, now=now):
            waiting.append(f"{path.name}: {describe(holder)}")
            continue
        ready.append(path)
    return ready, waiting


def customer_files(leads_file: Path) -> dict[str, Path]:
    """The files in ``customers/<stem>/`` named after a source, by source; refuses an unknown or doubled name."""
    folder = Path(leads_file).parent.parent / CUSTOMERS / Path(leads_file).stem
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.stem not in CUSTOMER_SOURCES or path.suffix.lower() not in SUFFIXES:
            raise InboxError(f"{path}: not a customer source; name each file one of {', '.join(CUSTOMER_SOURCES)} "
                             f"with .csv or .parquet")
        if path.stem in found:
            raise InboxError(f"{folder}: two files for '{path.stem}' ({found[path.stem].name}, {path.name})")
        found[path.stem] = path
    return found


class InboxError(ValueError):
    """A batch laid out in a way the job cannot be given (names the file): it goes to failed/."""


def batch(leads_file: Path) -> Batch:
    return Batch(Path(leads_file), customer_files(Path(leads_file)))


def latest_change(leads_file: Path) -> float:
    """When the batch last changed: the leads file, its customers folder or a file in it."""
    folder = Path(leads_file).parent.parent / CUSTOMERS / Path(leads_file).stem
    companions = [folder, *folder.iterdir()] if folder.is_dir() else []
    return max(p.stat().st_mtime for p in [Path(leads_file), *companions])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(item: Batch) -> str:
    """One hash over the bytes of every file of the batch (and which source each is)."""
    digest = hashlib.sha256(sha256_file(item.leads).encode())
    for source in sorted(item.customers):
        digest.update(f"\n{source}:{sha256_file(item.customers[source])}".encode())
    return digest.hexdigest()


def job_base(leads_file: Path, digest: str) -> str:
    """The job id of a batch's first attempt: its name and the start of its hash (``inbox-new_leads-3fa2b1c4d5e6``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(leads_file).stem)[:60]
    return f"inbox-{stem}-{digest[:12]}"


def attempts(scoring_dir: Path, base: str) -> list[tuple[str, dict]]:
    """The jobs earlier attempts ran for this batch, in order, with their ``status.json`` (``{}`` if none)."""
    pattern = re.compile(rf"{re.escape(base)}(-(\d+))?")
    found = []
    if Path(scoring_dir).is_dir():
        for folder in Path(scoring_dir).iterdir():
            match = pattern.fullmatch(folder.name)
            if match and folder.is_dir():
                found.append((int(match.group(2) or 1), folder.name, read_json(folder / "status.json") or {}))
    return [(name, status) for _, name, status in sorted(found)]


def next_job_id(base: str, earlier: list[tuple[str, dict]]) -> str:
    """``base`` for the first attempt, ``base-2``, ``base-3`` ... after it (a job folder is never reused)."""
    taken = {name for name, _ in earlier}
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def settled(earlier: list[tuple[str, dict]]) -> tuple[str, str] | None:
    """(outcome, job id) when an earlier attempt already scored the batch: succeeded -> done, held -> held."""
    for wanted, outcome in (("succeeded", DONE), ("held", HELD)):
        for name, status in earlier:
            if status.get("status") == wanted:
                return outcome, name
    return None


def still_running(earlier: list[tuple[str, dict]]) -> str | None:
    """The job id of an attempt whose process still runs on this host (an orphan of a killed task), if any."""
    for name, status in earlier:
        if status.get("status") == "running" and status.get("pid") and pid_alive(int(status["pid"])):
            return name
    return None


def failed_attempts(earlier: list[tuple[str, dict]]) -> list[str]:
    return [name for name, status in earlier if status.get("status") == "failed"]


# ---- claims -----------------------------------------------------------------------------------

def claim_path(leads_file: Path) -> Path:
    return Path(leads_file).with_name(Path(leads_file).name + CLAIM_SUFFIX)


def owner(dag_run: str, task: str, stale_after: float) -> dict:
    """Who claims: the DAG run and task, this process (pid, its start, host), since when, stale after how long."""
    pid = os.getpid()
    return {"dag_run": dag_run, "task": task, "pid": pid, "pid_start": process_start(pid),
            "host": socket.gethostname(), "since": time.time(),
            "since_iso": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "stale_after": stale_after}


def claim(leads_file: Path, me: dict) -> Claim | None:
    """Claim a file for ``me``, or None when another live holder has it (read :func:`read_claim` for whom).

    A stale claim is broken under a short lock on the folder, so of two runs that find the same
    stale claim only one replaces it.
    """
    path = claim_path(leads_file)
    if _create(path, me):
        return Claim(path, me)
    with _folder_lock(path.parent):
        holder = read_claim(path)
        if holder is not None and not is_stale(holder):
            return None
        path.unlink(missing_ok=True)
        return Claim(path, me) if _create(path, me) else None


def release(held: Claim) -> None:
    """Remove the claim if it is still ours (a run that judged us stale may have replaced it)."""
    if read_claim(held.path) == held.owner:
        held.path.unlink(missing_ok=True)


def read_claim(path: Path) -> dict | None:
    """The claim's owner; a claim being written or unreadable counts as a fresh one of an unknown owner."""
    if not path.exists():
        return None
    owner_record = read_json(path)
    if owner_record is None:
        try:
            since = path.stat().st_mtime
        except FileNotFoundError:
            return None
        return {"dag_run": "?", "pid": None, "host": None, "since": since, "stale_after": 3600.0}
    return owner_record


def is_stale(holder: dict, now: float | None = None, host: str | None = None) -> bool:
    """Its holder is gone: on this host, its process is dead (or is another process now); anywhere, it is too old."""
    now = time.time() if now is None else now
    if now - float(holder.get("since", 0)) > float(holder.get("stale_after", 3600)):
        return True
    if holder.get("host") == (host or socket.gethostname()) and holder.get("pid"):
        pid = int(holder["pid"])
        if not pid_alive(pid):
            return True
        started = holder.get("pid_start")
        return started is not None and process_start(pid) not in (None, started)
    return False


def describe(holder: dict) -> str:
    since = holder.get("since_iso") or dt.datetime.fromtimestamp(float(holder.get("since", 0))).isoformat()
    return f"claimed by DAG run {holder.get('dag_run')} (pid {holder.get('pid')} on {holder.get('host')}) since {since}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def process_start(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (Linux), so a reused pid is not taken for the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _create(path: Path, content: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle)
    return True


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    with open(folder / ".claims.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---- filing -------------------------------------------------------------------------------------

def file_away(root: Path, item: Batch, outcome: str, digest: str, record: dict | None = None,
              reason: str | None = None) -> Path:
    """Move a batch out of the inbox into ``outcome`` (done, held, failed), beside what tells its story.

    The record (``<name>.job.json``) or reason (``<name>.reason.txt``) is written first and the
    files renamed after it, so a moved file always has its note; a name already taken in the
    folder gets the hash (``new_leads-3fa2b1c4d5e6.csv``). Returns the leads file's new path.
    """
    folder = Path(root) / outcome
    folder.mkdir(parents=True, exist_ok=True)
    target = free_name(folder, item.leads.name, digest)
    if record is not None:
        write_json(target.with_name(target.name + ".job.json"), record)
    if reason is not None:
        target.with_name(target.name + ".reason.txt").write_text(reason.rstrip() + "\n")
    if item.customers_dir.is_dir():
        os.rename(item.customers_dir, target.with_name(target.stem + ".customers"))
    os.rename(item.leads, target)
    return target


def free_name(folder: Path, name: str, digest: str) -> Path:
    stem, suffix = Path(name).stem, Path(name).suffix
    candidates = [name, f"{stem}-{digest[:12]}{suffix}"]
    number = 2
    while True:
        for candidate in candidates:
            target = folder / candidate
            if not target.exists() and not (folder / f"{Path(candidate).stem}.customers").exists():
                return target
        candidates = [f"{stem}-{digest[:12]}-{number}{suffix}"]
        number += 1


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)
