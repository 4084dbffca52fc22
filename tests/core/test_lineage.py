"""Source records from 00_data's snapshot, and the tags and description of a model version."""
import json

import pytest

from utils.core import gate, lineage

SNAPSHOT_SYNTHETIC = {
    "leads_raw": {"sha256": "a" * 64, "rows": 6000, "source": "synthetic"},
    "leads_new": {"sha256": "b" * 64, "rows": 1000, "source": "synthetic"},
}
SNAPSHOT_FILES = {
    "leads_raw": {"sha256": "c" * 64, "rows": 22492, "source": "/data/leads.csv", "source_sha256": "d" * 64},
    "clv_customers": {"sha256": "e" * 64, "rows": 4300, "source": "/data/retail.parquet", "source_sha256": "f" * 64},
    "clv_purchases": {"sha256": "1" * 64, "rows": 18000, "source": "/data/retail.parquet", "source_sha256": "f" * 64},
    "clv_web_actions": {"sha256": "2" * 64, "rows": 0, "source": "(not given: empty)"},
}
CONTEXT = {"run_id": "20260101-120000-smoke-abcd", "profile": "smoke", "git_commit": "0123456789abcdef",
           "git_dirty": True, "interactive": False}
HOLDOUT = {"definition": "latest 20% of leads by created_date", "rows": 1195, "period": "2022-01-03 .. 2022-02-14",
           "sha256": "9" * 64}


def test_synthetic_source_names_the_generator_and_its_parameters():
    record = lineage.data_source(SNAPSHOT_SYNTHETIC, ["leads_raw"], "utils.leads.synth.generate_leads",
                                 {"n_leads": 6000, "random_seed": 42}, "leads")
    assert record["kind"] == gate.SYNTHETIC and record["source"] == "utils.leads.synth.generate_leads"
    assert record["rows"] == 6000 and record["sha256"] == "a" * 64 and record["files"] == {}
    assert record["description"] == "synthetic leads from utils.leads.synth.generate_leads (n_leads=6000, random_seed=42)"
    json.dumps(record)  # a dataset: it must be JSON


def test_user_files_give_name_sha256_and_rows_and_ignore_what_was_not_given():
    leads = lineage.data_source(SNAPSHOT_FILES, ["leads_raw"], "gen", {"n_leads": 1}, "leads")
    assert leads["kind"] == gate.USER and leads["source"] == "/data/leads.csv" and leads["sha256"] == "d" * 64
    assert leads["parameters"] == {}, "generator parameters mean nothing for your file"
    assert leads["description"] == f"your file leads.csv (sha256 {'d' * 12}, 22,492 leads)"
    clv = lineage.data_source(SNAPSHOT_FILES, ["clv_customers", "clv_purchases", "clv_web_actions"], "gen", {}, "customers")
    assert list(clv["files"]) == ["/data/retail.parquet"]
    assert clv["files"]["/data/retail.parquet"]["tables"] == {"clv_customers": 4300, "clv_purchases": 18000}
    assert clv["rows"] == 4300 and lineage.source_of(clv) == gate.Source(gate.USER, "/data/retail.parquet", "f" * 64,
                                                                         clv["description"])


def test_a_missing_snapshot_entry_is_named():
    with pytest.raises(KeyError, match="no clv_customers"):
        lineage.data_source(SNAPSHOT_SYNTHETIC, ["clv_customers"], "gen", {}, "customers")


def test_version_tags_are_text_and_say_data_run_code_and_holdout():
    record = lineage.data_source(SNAPSHOT_FILES, ["leads_raw"], "gen", {}, "leads")
    tags = lineage.version_tags(record, CONTEXT, HOLDOUT, "lead.auc_test", 0.81234567, "lightgbm on 4,779 leads")
    assert all(key.startswith("lead2value.") and isinstance(value, str) for key, value in tags.items())
    assert tags["lead2value.data_kind"] == "user" and tags["lead2value.data_sha256"] == "d" * 64
    assert tags["lead2value.data_rows"] == "22492" and tags["lead2value.profile"] == "smoke"
    assert tags["lead2value.git_commit"] == "0123456789abcdef" and tags["lead2value.interactive"] == "false"
    assert tags["lead2value.holdout_rows"] == "1195" and tags["lead2value.holdout_score"] == "0.812346"
    line = lineage.description(record, CONTEXT, HOLDOUT, "lead.auc_test", 0.81234567, "lightgbm on 4,779 leads")
    assert "\n" not in line and "your file leads.csv" in line and "lead.auc_test 0.8123" in line
    assert "run 20260101-120000-smoke-abcd (smoke), commit 0123456789 (dirty)" in line
    alone = lineage.description(record, {**CONTEXT, "interactive": True, "git_dirty": False}, HOLDOUT, "m", 0.5, "x")
    assert "interactive session, commit 0123456789" in alone and "dirty" not in alone
