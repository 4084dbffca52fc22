import json

import pytest

from utils.pipeline.compare import compare_runs


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
    text = "\n".join(compare_runs(str(tmp_path / "A"), str(tmp_path / "B")))
    assert "parameters: 1 differ" in text and "00_data.n_leads: 10  ->  20" in text
    assert "data outputs (sha256): 1 differ" in text
    assert "metrics: identical" in text and "code: identical" in text
    with pytest.raises(FileNotFoundError, match="no run 'nope'"):
        compare_runs("nope", str(tmp_path / "A"))
