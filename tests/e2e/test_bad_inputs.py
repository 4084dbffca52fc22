"""Bad input, end to end through ``run_all.py``: a clear error and nothing lost, or a counted warning.

Every broken case must exit non-zero with a message naming the file and the column
(where there is one), before any notebook runs, leaving the earlier run, outputs/latest
and the run folders untouched. Recoverable cases are counted by the same pre-flight
checks and do not stop the run (one full run with all of them is in the slow test).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from utils.pipeline import preflight
from utils.core.paths import PROJECT_ROOT
from utils.clv.synth import generate_clv
from utils.leads.synth import generate_leads


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate_leads(400, random_seed=7)


@pytest.fixture(scope="module")
def clv() -> dict[str, pd.DataFrame]:
    return generate_clv(150, random_seed=7)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """An outputs folder holding an earlier successful run that no bad input may touch."""
    folder = tmp_path_factory.mktemp("outputs")
    earlier = folder / "runs" / "20260101-000000-default-abcd"
    (earlier / "data").mkdir(parents=True)
    (earlier / "data" / "leads_scored.parquet").write_bytes(b"earlier result")
    (earlier / "manifest.json").write_text(json.dumps({"run_id": earlier.name, "status": "succeeded", "steps": {}}))
    (folder / "latest").symlink_to(Path("runs") / earlier.name)
    return folder


def snapshot(outputs: Path) -> dict[str, bytes]:
    return {str(p.relative_to(outputs)): p.read_bytes() for p in sorted(outputs.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def run_all(outputs: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    return subprocess.run([sys.executable, "run_all.py", "--no-progress", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def csv(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path)  # with the unnamed index column, as the real export
    return str(path)


def _leads_case(name: str, leads: pd.DataFrame, tmp: Path) -> tuple[list[str], str, str | None]:
    """(run_all arguments, expected problem text, expected column) for a broken leads or CLV file."""
    if name == "empty file":
        (tmp / "leads.csv").write_bytes(b"")
        return ["--set", f"leads_path={tmp / 'leads.csv'}"], "empty file", None
    if name == "header only":
        path = csv(leads.head(0), tmp / "leads.csv")
        return ["--set", f"leads_path={path}"], "no rows", None
    if name == "missing column":
        path = csv(leads.drop(columns=["first_platform_c"]), tmp / "leads.csv")
        return ["--set", f"leads_path={path}"], "missing", "first_platform_c"
    if name == "wrong type":
        bad = leads.astype({"total_leads_droppped": object})
        bad.loc[bad.index[3], "total_leads_droppped"] = "three"
        path = csv(bad, tmp / "leads.csv")
        return ["--set", f"leads_path={path}"], "three", "total_leads_droppped"
    if name == "non-UTF-8 bytes":
        path = tmp / "leads.csv"
        text = leads.to_csv()
        path.write_bytes(text.replace("bengaluru", "bengal\xfaru").encode("latin-1"))
        return ["--set", f"leads_path={path}"], "UTF-8", None
    if name == "all-null column":
        path = csv(leads.assign(first_utm_source_c=None), tmp / "leads.csv")
        return ["--set", f"leads_path={path}"], "empty", "first_utm_source_c"
    if name == "target outside {0,1}":
        path = csv(leads.assign(app_complete_flag=leads["app_complete_flag"].replace({1: 2})), tmp / "leads.csv")
        return ["--set", f"leads_path={path}"], "outside {0, 1}", "app_complete_flag"
    raise KeyError(name)


LEADS_CASES = ["empty file", "header only", "missing column", "wrong type", "non-UTF-8 bytes", "all-null column",
               "target outside {0,1}"]


@pytest.mark.parametrize("case", LEADS_CASES)
def test_broken_leads_file_stops_before_any_notebook(case, leads, outputs, tmp_path):
    args, problem, column = _leads_case(case, leads, tmp_path)
    before = snapshot(outputs)
    result = run_all(outputs, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "leads.csv" in result.stderr and problem in result.stderr, result.stderr
    if column:
        assert f"column '{column}'" in result.stderr, result.stderr
    assert "nothing was run" in result.stderr
    assert snapshot(outputs) == before, "an earlier run or outputs/latest changed"


def test_duplicate_customer_ids_stop(clv, outputs, tmp_path):
    customers = pd.concat([clv["customers"], clv["customers"].head(3)])
    customers.to_parquet(tmp_path / "customers.parquet")
    clv["purchases"].to_parquet(tmp_path / "purchases.parquet")
    before = snapshot(outputs)
    result = run_all(outputs, "--set", f"clv_customers_path={tmp_path / 'customers.parquet'}",
                     "--set", f"clv_purchases_path={tmp_path / 'purchases.parquet'}")
    assert result.returncode == 2 and "customers.parquet: column 'customer_id'" in result.stderr, result.stderr
    assert "duplicated id" in result.stderr
    assert snapshot(outputs) == before


def test_truncated_parquet_stops(outputs, tmp_path, shared_data_or_synthetic_transactions):
    whole = shared_data_or_synthetic_transactions
    truncated = tmp_path / "transactions.parquet"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    before = snapshot(outputs)
    result = run_all(outputs, "--set", f"transactions_path={truncated}")
    assert result.returncode == 2 and "transactions.parquet" in result.stderr, result.stderr
    assert "parquet" in result.stderr.lower()
    assert snapshot(outputs) == before


def test_unmapped_transaction_column_stops(outputs, shared_data_or_synthetic_transactions):
    result = run_all(outputs, "--set", f"transactions_path={shared_data_or_synthetic_transactions}",
                     "--set", "tx_customer_col=Customer")
    assert result.returncode == 2 and "column 'Customer'" in result.stderr, result.stderr


def test_missing_file_stops(outputs, tmp_path):
    result = run_all(outputs, "--set", f"leads_path={tmp_path / 'nowhere.csv'}")
    assert result.returncode == 2 and "nowhere.csv: file not found" in result.stderr, result.stderr


def test_parameter_typo_stops_with_a_suggestion(outputs):
    before = snapshot(outputs)
    result = run_all(outputs, "--set", "n_lead=5")
    assert result.returncode == 2
    assert "unknown parameter 'n_lead' (did you mean 'n_leads'?)" in result.stderr
    assert snapshot(outputs) == before


def test_ill_typed_parameter_stops(outputs):
    result = run_all(outputs, "--set", "n_leads=many")
    assert result.returncode == 2 and "'n_leads' is int" in result.stderr


def test_unknown_profile_stops(outputs):
    result = run_all(outputs, "--profile", "smok")
    assert result.returncode == 2 and "unknown profile 'smok'" in result.stderr and "smoke" in result.stderr


@pytest.fixture
def shared_data_or_synthetic_transactions(tmp_path, clv) -> Path:
    """A small transactions parquet in the Online Retail layout (made here, not copied)."""
    purchases = clv["purchases"].head(300)
    countries = clv["customers"].set_index("customer_id")["country"]
    tx = pd.DataFrame({
        "InvoiceNo": purchases["order_id"].astype(str), "StockCode": "P1", "Description": "item",
        "Quantity": purchases["n_items"].clip(lower=1), "InvoiceDate": purchases["timestamp"].astype(str),
        "UnitPrice": (purchases["amount"].abs() / purchases["n_items"].clip(lower=1)).round(2),
        "CustomerID": purchases["customer_id"], "Country": purchases["customer_id"].map(countries).fillna("USA"),
    })
    path = tmp_path / "tx_whole.parquet"
    tx.to_parquet(path)
    return path


# --- recoverable: counted, not fatal ----------------------------------------------------------------


def test_recoverable_oddities_are_counted(leads, clv, tmp_path):
    odd = leads.copy()
    odd["notes"] = "extra column"
    odd.loc[odd.index[:5], "first_platform_c"] = "Level999"
    odd.loc[odd.index[:3], "city_mapped"] = "atlantis"
    odd.loc[odd.index[:2], "created_date"] = pd.Timestamp("2099-01-01")
    leads_file = csv(odd, tmp_path / "leads.csv")
    new = odd.drop(columns=["app_complete_flag"]).head(50).copy()
    new.loc[new.index[:4], "first_utm_source_c"] = "Level777"
    new_file = csv(new, tmp_path / "new_leads.csv")
    purchases = clv["purchases"].copy()
    purchases.loc[purchases.index[:6], "amount"] = -abs(purchases["amount"].iloc[:6]) - 1
    clv["customers"].to_parquet(tmp_path / "customers.parquet")
    purchases.to_parquet(tmp_path / "purchases.parquet")
    reports = preflight.check_inputs({
        "leads_path": leads_file, "new_leads_path": new_file,
        "clv_customers_path": str(tmp_path / "customers.parquet"),
        "clv_purchases_path": str(tmp_path / "purchases.parquet"),
    })
    counts = {key: value for report in reports for key, value in report.counts.items()}
    assert counts["extra_columns"] >= 1
    assert counts["future_dates.created_date"] == 2
    assert counts["unseen_levels.first_utm_source_c"] >= 1
    assert counts["refunds"] >= 6
