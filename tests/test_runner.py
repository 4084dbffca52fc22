import json

import pytest

from utils import paths, runner


def test_second_lock_holder_is_refused_with_a_clear_message(tmp_path):
    lock = tmp_path / "run.lock"
    with runner.run_lock(lock):
        with pytest.raises(runner.RunLockedError, match="another run_all.py is running \\(pid \\d+"):
            with runner.run_lock(lock):
                pass
    with runner.run_lock(lock):  # released: a later run proceeds
        pass


def test_update_latest_swaps_the_link(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "LATEST_LINK", tmp_path / "latest")
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "b").mkdir(parents=True)
    runner.update_latest(tmp_path / "runs" / "a")
    runner.update_latest(tmp_path / "runs" / "b")
    assert (tmp_path / "latest").resolve() == (tmp_path / "runs" / "b").resolve()


def manifest(folder, run_id, steps, status="succeeded", started="2026-01-01T00:00:00"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"run_id": run_id, "status": status, "started": started, "steps": steps}))


def test_find_reusable_needs_matching_fingerprint_and_files(tmp_path):
    run = tmp_path / "r1"
    (run / "data").mkdir(parents=True)
    (run / "data" / "x.parquet").write_text("x")
    manifest(run, "r1", {"00_data": {"fingerprint": "f1", "parts": {"parameters": "p1"}, "outputs": {"data/x.parquet": "h"}}})
    manifest(tmp_path / "r0", "r0", {"00_data": {"fingerprint": "f1", "outputs": {}}}, status="failed")
    found = runner.successful_manifests(tmp_path)
    assert [m["run_id"] for m in found] == ["r1"]
    record, _ = runner.find_reusable("00_data", "f1", {"parameters": "p1"}, found)
    assert record["run_id"] == "r1"
    record, why = runner.find_reusable("00_data", "f2", {"parameters": "p2"}, found)
    assert record is None and why == "changed since r1: parameters"
    (run / "data" / "x.parquet").unlink()
    record, why = runner.find_reusable("00_data", "f1", {"parameters": "p1"}, found)
    assert record is None and "its files are gone" in why
    assert runner.find_reusable("00_data", "f1", {}, [])[1] == "no earlier successful run"


def test_forced_steps():
    assert runner.forced("03_lead_model", runner.RunOptions(force=True))
    assert runner.forced("04_clv_model", runner.RunOptions(force_from="04"))
    assert runner.forced("05_scoring", runner.RunOptions(force_from="4"))
    assert not runner.forced("03_lead_model", runner.RunOptions(force_from="04_clv_model"))
    assert not runner.forced("00_data", runner.RunOptions())


def test_merge_metrics_flattens_every_step(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "03_lead_model.json").write_text('{"lead.auc_test": 0.8}')
    (tmp_path / "metrics" / "04_clv_model.json").write_text('{"clv.gini_test.rf": 0.4}')
    merged = runner.merge_metrics(tmp_path)
    assert merged == {"lead.auc_test": 0.8, "clv.gini_test.rf": 0.4}
    assert list(json.loads((tmp_path / "metrics.json").read_text())) == ["clv.gini_test.rf", "lead.auc_test"]


def test_compare_runs_reports_parameter_data_and_metric_changes(tmp_path):
    for name, n, auc, digest in (("A", 10, 0.8, "h1"), ("B", 20, 0.8, "h2")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({
            "run_id": name, "git": {"commit": "abc", "dirty": False}, "lock_sha256": "l",
            "parameters": {"00_data": {"n_leads": n}},
            "steps": {"00_data": {"parts": {"notebook": "nb", "utils": "u"}}},
            "outputs": {"data/leads_raw.parquet": digest},
        }))
        (folder / "metrics.json").write_text(json.dumps({"lead.auc_test": auc}))
    lines = runner.compare_runs(str(tmp_path / "A"), str(tmp_path / "B"))
    text = "\n".join(lines)
    assert "parameters: 1 differ" in text and "00_data.n_leads: 10  ->  20" in text
    assert "data outputs (sha256): 1 differ" in text
    assert "metrics: identical" in text and "code: identical" in text
    with pytest.raises(FileNotFoundError, match="no run 'nope'"):
        runner.compare_runs("nope", str(tmp_path / "A"))


def test_step_order_is_explicit_and_dependencies_point_backwards():
    names = [s.name for s in runner.STEPS]
    assert names == ["00_data", "01_eda", "02_cleaning", "03_lead_model", "04_clv_model", "05_scoring"]
    for index, step in enumerate(runner.STEPS):
        assert all(names.index(d) < index for d in step.depends_on)
