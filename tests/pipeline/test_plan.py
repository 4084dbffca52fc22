import json

from utils.pipeline import plan
from utils.pipeline.plan import RunOptions


def manifest(folder, run_id, steps, status="succeeded", started="2026-01-01T00:00:00"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"run_id": run_id, "status": status, "started": started,
                                                      "steps": steps}))


def test_find_reusable_needs_matching_fingerprint_and_files(tmp_path):
    run = tmp_path / "r1"
    (run / "data").mkdir(parents=True)
    (run / "data" / "x.parquet").write_text("x")
    manifest(run, "r1", {"00_data": {"fingerprint": "f1", "parts": {"parameters": "p1"},
                                     "outputs": {"data/x.parquet": "h"}}})
    found = plan.successful_manifests(tmp_path)
    record, _ = plan.find_reusable("00_data", "f1", {"parameters": "p1"}, found)
    assert record["run_id"] == "r1" and record["_dir"] == str(run)
    record, why = plan.find_reusable("00_data", "f2", {"parameters": "p2"}, found)
    assert record is None and why == "changed since r1: parameters"
    (run / "data" / "x.parquet").unlink()
    record, why = plan.find_reusable("00_data", "f1", {"parameters": "p1"}, found)
    assert record is None and "its files are gone" in why
    assert plan.find_reusable("00_data", "f1", {}, [])[1] == "no earlier successful run"
    assert plan.find_reusable("01_eda", "f1", {}, found)[1] == "not in the last successful run r1"


def test_forced_steps():
    assert plan.forced("03_lead_model", RunOptions(force=True))
    assert plan.forced("04_clv_model", RunOptions(force_from="04"))
    assert plan.forced("05_scoring", RunOptions(force_from="4"))
    assert not plan.forced("03_lead_model", RunOptions(force_from="04_clv_model"))
    assert not plan.forced("00_data", RunOptions())


def test_make_plan_checks_parameters_and_reads_nothing_else(tmp_path):
    made = plan.make_plan(RunOptions(profile="smoke"), runs_dir=tmp_path)
    assert made.resolved["00_data"]["n_leads"] == 6000 and made.manifests == [] and len(made.lock_hash) == 64
    assert plan.up_to_date(made, RunOptions(profile="smoke")) is None
