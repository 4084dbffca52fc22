import json
import os

from utils.pipeline import manifest as mf


def write_manifest(folder, run_id, steps=None, status="succeeded", started="2026-01-01T00:00:00"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"run_id": run_id, "status": status, "started": started,
                                                      "steps": steps or {}}))


def test_update_latest_swaps_the_link(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "b").mkdir(parents=True)
    mf.update_latest(tmp_path / "runs" / "a", tmp_path / "latest")
    mf.update_latest(tmp_path / "runs" / "b", tmp_path / "latest")
    assert (tmp_path / "latest").resolve() == (tmp_path / "runs" / "b").resolve()
    assert os.readlink(tmp_path / "latest") == "runs/b", "relative: the outputs folder can move"


def test_successful_manifests_newest_first_skipping_failed_and_broken(tmp_path):
    write_manifest(tmp_path / "r1", "r1", started="2026-01-01T00:00:00")
    write_manifest(tmp_path / "r2", "r2", started="2026-01-02T00:00:00")
    write_manifest(tmp_path / "r3", "r3", status="failed")
    (tmp_path / "r4").mkdir()
    (tmp_path / "r4" / "manifest.json").write_text("{broken")
    found = mf.successful_manifests(tmp_path)
    assert [m["run_id"] for m in found] == ["r2", "r1"] and found[0]["_dir"] == str(tmp_path / "r2")


def test_merge_metrics_flattens_every_step_in_order(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "03_lead_model.json").write_text('{"lead.auc_test": 0.8}')
    (tmp_path / "metrics" / "04_clv_model.json").write_text('{"clv.gini_test.rf": 0.4}')
    merged = mf.merge_metrics(tmp_path, ["03_lead_model", "04_clv_model", "05_scoring"])
    assert merged == {"clv.gini_test.rf": 0.4, "lead.auc_test": 0.8}
    assert list(json.loads((tmp_path / "metrics.json").read_text())) == ["clv.gini_test.rf", "lead.auc_test"]


def test_step_record_and_status_files(tmp_path):
    record = mf.StepRecord("03_lead_model", "fp", {"notebook": "n"}, status="executed", datasets={"lead_model": "h"})
    assert record.to_manifest()["datasets"] == {"lead_model": "h"} and "name" not in record.to_manifest()
    mf.write_status(tmp_path, "running")
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "running"
    mf.write_manifest(tmp_path, {"run_id": "x", "_dir": "hidden"})
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"run_id": "x"}


def test_file_set_and_link_or_copy(tmp_path):
    (tmp_path / "a" / "data").mkdir(parents=True)
    (tmp_path / "a" / "data" / "x.parquet").write_text("x")
    assert list(mf.file_set(tmp_path / "a")) == ["data/x.parquet"]
    mf.link_or_copy(tmp_path / "a" / "data" / "x.parquet", tmp_path / "b" / "data" / "x.parquet")
    assert (tmp_path / "b" / "data" / "x.parquet").read_text() == "x"
    assert os.stat(tmp_path / "b" / "data" / "x.parquet").st_nlink == 2, "hard-linked, not copied"


def test_new_run_ids_are_unique_and_git_state_is_read():
    assert mf.new_run_id("smoke") != mf.new_run_id("smoke") and "-smoke-" in mf.new_run_id("smoke")
    git = mf.git_state()
    assert set(git) == {"commit", "dirty"}


def test_load_manifest_names_a_missing_run(tmp_path):
    write_manifest(tmp_path / "r1", "r1")
    (tmp_path / "r1" / "metrics.json").write_text('{"a": 1}')
    assert mf.load_manifest(str(tmp_path / "r1"))["_metrics"] == {"a": 1}
    try:
        mf.load_manifest("nope")
    except FileNotFoundError as err:
        assert "no run 'nope'" in str(err)
    else:
        raise AssertionError("a missing run must raise")
