"""The scoring job: today's leads (and customers) scored by the registered models, without retraining.

    python run_all.py score --leads new_leads.csv
    python run_all.py score --leads new_leads.csv --transactions lines.parquet --lead-model models:/lead_scoring/3

It executes one notebook, ``05_scoring``, the same one a full run ends with, through the
same executor and under the same run lock, into ``outputs/scoring/<job_id>/``. It trains
nothing and registers nothing. In order:

1. the parameters of 05 (``params/`` and ``--set``) are checked, and the models are pinned:
   an alias (``champion``) is resolved to a version now, so every score traces to one
   version even if the alias moves during the job;
2. the input files are read and checked with the same contracts as a full run; customers
   become the CLV model's feature table, built with the feature window the model was
   trained with. A broken file stops here, naming file and column, before anything is written;
3. the inputs are written into the job folder as the catalog datasets 05 reads
   (``leads_new``, ``clv_score``, ``clv_customers``, ``raw_snapshot``): the job folder is a
   run folder whose inputs come from the job rather than from 00 and 02;
4. 05 scores, checks drift against the references logged with the models, and writes the
   scored tables (with each lead's id), drift tables and the dashboard;
5. the job's ``manifest.json`` records model versions, input hashes and output hashes.
   ``outputs/scoring/latest`` moves to the job only when it succeeded. Past the drift fail
   level the scores are still written, but the job is **held**: ``status.json`` says so,
   ``latest`` stays where it was, and the exit code is :data:`EXIT_HELD`.
"""
from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.models

from utils.core import paths, tracking
from utils.core.contracts import DataContractError
from utils.core.files import read_json, write_json
from utils.core.hashing import sha256_bytes, sha256_file
from utils.core.io import snapshot, write_parquet
from utils.pipeline import catalog
from utils.pipeline import params as params_mod
from utils.pipeline.execute import Executor, PapermillExecutor, StepFailed
from utils.pipeline.manifest import (
    RUN_LEVEL_FILES,
    file_set,
    git_state,
    update_latest,
    write_manifest,
    write_status,
)
from utils.pipeline.runner import MlflowTracker, Tracker, say
from utils.scoring import inputs
from utils.scoring.predict import TRAIN_COMMAND, NoModelError, resolve_model

SCORING_STEP = "05_scoring"
# What a scheduler can act on (documented in README and `run_all.py score --help`).
EXIT_OK = 0
EXIT_FAILED = 1  # the notebook stopped: nothing usable in the job folder
EXIT_BAD_INPUT = 2  # a file, column or parameter is wrong: nothing was written
EXIT_LOCKED = 3  # another run_all.py (a run or a job) holds the lock
EXIT_HELD = 4  # drift past the fail level: scores written in the job folder but held, latest unchanged
EXIT_NO_MODEL = 5  # no registered model (version, alias) to score with: train one first
# Parameters of 00_data the job needs too (the column names of a transaction file).
TX_PARAMETERS = ("tx_invoice_col", "tx_product_col", "tx_quantity_col", "tx_timestamp_col", "tx_unit_price_col",
                 "tx_customer_col", "tx_country_col")
TX_FIELDS = {name: name.removeprefix("tx_").removesuffix("_col") for name in TX_PARAMETERS}
# Set by the job, never by --set.
JOB_SET_PARAMETERS = ("lead_model_uri", "clv_model_uri", "score_customers")


@dataclass
class JobRequest:
    """What `run_all.py score` was asked: the input files, the models, the parameters."""

    leads: str
    customers: str = ""
    purchases: str = ""
    purchase_lines: str = ""
    web_actions: str = ""
    campaigns: str = ""
    transactions: str = ""
    lead_model: str = "models:/lead_scoring@champion"
    clv_model: str = "models:/clv@champion"
    lead_id_col: str = ""
    profile: str = params_mod.DEFAULT_PROFILE
    overrides: tuple[str, ...] = ()
    progress: bool = False
    job_id: str = ""

    @property
    def has_customers(self) -> bool:
        return bool(self.customers or self.purchases or self.purchase_lines or self.web_actions or self.campaigns
                    or self.transactions)


@dataclass
class PinnedModel:
    uri: str  # as asked (an alias, a version)
    name: str | None
    version: str | None
    pinned_uri: str
    run_id: str | None = None
    recipe: dict = field(default_factory=dict)
    input_columns: list[str] = field(default_factory=list)

    def to_manifest(self) -> dict:
        return {"asked": self.uri, "name": self.name, "version": self.version, "pinned_uri": self.pinned_uri,
                "run_id": self.run_id, "recipe": self.recipe}


@dataclass
class JobResult:
    job_id: str
    folder: Path
    status: str  # succeeded | held
    exit_code: int
    manifest: dict


def new_job_id() -> str:
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def job_parameters(request: JobRequest) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """(05's parameters, transaction column names, how the files are written) from params/ and ``--set``.

    Only 05's parameters, the ``tx_*_col`` and the reading parameters of 00_data
    (:data:`~utils.scoring.inputs.READING_PARAMETERS`) may be set.
    """
    scoring = catalog.step(SCORING_STEP).notebook
    declared = params_mod.declared_parameters(scoring)
    for item in request.overrides:
        name = item.partition("=")[0]
        if name in JOB_SET_PARAMETERS:
            raise params_mod.ParameterError(f"--set {item}: the scoring job sets '{name}' itself "
                                            f"(use --lead-model, --clv-model, --customers)")
        if name not in declared and name not in TX_PARAMETERS and name not in inputs.READING_PARAMETERS:
            raise params_mod.ParameterError(
                f"--set {item}: the scoring job runs {SCORING_STEP} only, and '{name}' is not one of its parameters "
                f"({', '.join(sorted(declared))}), nor a tx_*_col or a file-reading parameter "
                f"({', '.join(inputs.READING_PARAMETERS)})")
    resolved = params_mod.resolve([s.notebook for s in catalog.STEPS], request.profile, list(request.overrides))
    data = params_mod.with_defaults(catalog.step("00_data").notebook, resolved["00_data"])
    reading = {name: data[name] for name in inputs.READING_PARAMETERS}
    return resolved[SCORING_STEP], {TX_FIELDS[name]: str(data[name]) for name in TX_PARAMETERS}, reading


def pin_model(uri: str) -> PinnedModel:
    """The exact version ``uri`` names now, its recipe and input columns (read from its MLmodel file, not loaded)."""
    name, version, pinned = resolve_model(uri)
    info = mlflow.models.get_model_info(pinned)
    metadata = info.metadata or {}
    if "drift_reference" not in metadata:
        raise NoModelError(f"{uri} (version {version or '?'}) was logged before models carried their drift reference "
                           f"(and, for leads, took raw leads): train a new one with `{TRAIN_COMMAND}` "
                           f"(or `python run_all.py`), or name another with --lead-model / --clv-model")
    columns = info.signature.inputs.input_names() if info.signature is not None else []
    return PinnedModel(uri, name, version, pinned, info.run_id, dict(metadata.get("recipe") or {}), list(columns))


def run_scoring_job(request: JobRequest, executor: Executor | None = None, tracker: Tracker | None = None,
                    scoring_dir: Path | None = None, pin: Callable[[str], PinnedModel] | None = None) -> JobResult:
    """Check, score, record. Raises ParameterError, NoModelError, DataContractError before writing anything,
    StepFailed if the notebook stops (the job folder is then marked failed).

    ``executor``, ``tracker`` and ``pin`` (model lookup) default to papermill, MLflow and the
    registry; the unit tests pass fakes.
    """
    started = time.time()
    scoring_dir = Path(scoring_dir or paths.SCORING_DIR)
    parameters, tx_columns, reading = job_parameters(request)
    if pin is None:
        tracking.configure()
        pin = pin_model
    lead_model = pin(request.lead_model)
    clv_model = pin(request.clv_model) if request.has_customers else None
    say(f"scoring job: lead model {lead_model.name or lead_model.uri} v{lead_model.version or '?'}"
        + (f", CLV model {clv_model.name or clv_model.uri} v{clv_model.version or '?'}" if clv_model else ""))

    leads_file = str(paths.resolve_input(request.leads))
    leads = inputs.read_new_leads(leads_file, request.lead_id_col, reading)
    say(f"input check: {leads_file}: {len(leads.frame):,} leads, ids from {leads.id_source}, "
        f"{leads.report.n_warnings} counted warning(s)")
    for warning in leads.report.warnings:
        say(f"    warning: {warning}")
    customers = customer_sources = customer_summary = None
    source_files: dict[str, str] = {}
    if clv_model is not None:
        source_files = {name: str(paths.resolve_input(path)) for name, path in (
            ("customers", request.customers), ("purchases", request.purchases), ("web_actions", request.web_actions),
            ("campaigns", request.campaigns), ("purchase_lines", request.purchase_lines),
            ("transactions", request.transactions)) if path}
        customer_sources, report = inputs.read_customer_sources(
            {k: v for k, v in source_files.items() if k != "transactions"}, source_files.get("transactions", ""),
            tx_columns, reading)
        described = ", ".join(source_files.values())
        customers, customer_summary = inputs.customer_features(customer_sources, clv_model.recipe,
                                                               clv_model.input_columns, described)
        say(f"input check: {described}: {customer_summary['scored']:,} customers with a complete "
            f"{customer_summary['feature_window_days']}-day window to score "
            f"({customer_summary['window_incomplete']:,} not yet), {report.n_warnings} counted warning(s)")

    job_id = request.job_id or new_job_id()
    folder = scoring_dir / job_id
    if folder.exists():
        raise DataContractError(str(folder), None, f"a scoring job '{job_id}' exists already: choose another --job-id")
    folder.mkdir(parents=True)
    write_status(folder, "running")
    say(f"scoring job {job_id} -> {folder}")
    written = {"leads_new": (write_dataset(folder, "leads_new", leads.frame), leads_file)}
    if customers is not None:
        origin = source_files.get("transactions") or source_files.get("customers", "")
        written["clv_score"] = (write_dataset(folder, "clv_score", customers), origin)
        written["clv_customers"] = (write_dataset(folder, "clv_customers", customer_sources["customers"]), origin)
    raw_snapshot = snapshot(written)
    write_json_dataset(folder, "raw_snapshot", raw_snapshot)

    git = git_state()
    manifest: dict[str, Any] = {
        "job_id": job_id, "kind": "scoring job", "status": "running",
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "git": git, "profile": request.profile, "overrides": list(request.overrides), "parameters": parameters,
        "parameters_hash": sha256_bytes(repr(sorted(parameters.items())).encode()),
        "models": {"lead_scoring": lead_model.to_manifest(), **({"clv": clv_model.to_manifest()} if clv_model else {})},
        "inputs": {
            "leads": {"file": leads_file, "sha256": sha256_file(leads_file), "rows": len(leads.frame),
                      "id_source": leads.id_source, "target_column_ignored": leads.dropped_target,
                      "warnings": leads.report.warnings},
            **({"customers": {"files": {k: {"file": v, "sha256": sha256_file(v)} for k, v in source_files.items()},
                              **customer_summary}} if customer_summary else {}),
        },
        "notebook": SCORING_STEP,
    }
    write_manifest(folder, manifest)
    executor = executor or PapermillExecutor(html=False, kill_when_done=True)
    tracker = tracker or MlflowTracker()
    run_id = tracker.start(f"score {job_id}", {"lead2value.job_id": job_id, "lead2value.step": SCORING_STEP,
                                                "git.commit": git["commit"] or "unknown", "git.dirty": str(git["dirty"])})
    before = file_set(folder)
    checked = time.time()
    try:
        peak = executor.execute(catalog.step(SCORING_STEP), folder, {
            **parameters, "run_dir": str(folder), "mlflow_run_id": run_id, "scoring_job": job_id,
            "lead_model_uri": lead_model.pinned_uri, "clv_model_uri": clv_model.pinned_uri if clv_model else "",
            "score_customers": clv_model is not None,
        }, request.progress)
        missing = [d.path for d in expected_outputs(clv_model is not None) if not d.location(folder).is_file()]
        if missing:
            raise StepFailed(SCORING_STEP, f"{SCORING_STEP} finished without writing {', '.join(missing)}")
    except BaseException as err:
        manifest.update(status="failed", error=str(err), seconds=round(time.time() - started, 2))
        write_manifest(folder, manifest)
        write_status(folder, "failed")
        tracker.end(run_id, "FAILED")
        raise

    provenance = read_json(catalog.dataset("scoring_provenance").location(folder))
    drift = provenance.get("drift", {})
    held = drift.get("status") == "fail"
    status = "held" if held else "succeeded"
    after = file_set(folder)
    manifest.update(
        status=status, seconds=round(time.time() - started, 2), peak_kernel_rss_mb=peak, drift=drift,
        checks_seconds=round(checked - started, 2), notebook_seconds=round(time.time() - checked, 2),
        timings=provenance.get("timings", {}), mlflow_run_id=run_id,
        outputs={rel: sha256_file(folder / rel) for rel, sig in sorted(after.items())
                 if before.get(rel) != sig and rel not in RUN_LEVEL_FILES},
    )
    if held:
        manifest["held_because"] = drift.get("failures", [])
    write_manifest(folder, manifest)
    for name in ("manifest.json", f"notebooks/{SCORING_STEP}.ipynb"):
        if (folder / name).exists():
            tracker.log_artifact(run_id, folder / name, artifact_path="job")
    tracker.end(run_id, "FINISHED")
    write_status(folder, status)
    if not held:
        update_latest(folder, scoring_dir / "latest")
    return JobResult(job_id, folder, status, EXIT_HELD if held else EXIT_OK, manifest)


def expected_outputs(with_customers: bool) -> list[catalog.Dataset]:
    return [d for d in catalog.produces(SCORING_STEP) if with_customers or d.name != "customers_scored"]


def write_dataset(folder: Path, name: str, frame: Any) -> Path:
    return write_parquet(frame, catalog.dataset(name).location(folder))


def write_json_dataset(folder: Path, name: str, data: dict) -> Path:
    return write_json(catalog.dataset(name).location(folder), data)
