"""End to end: `run_all.py score` against the champions of a smoke run, as an analyst would use it,
and the champion served over HTTP on a loopback port.

One smoke run trains the champions (module fixture); every job after it must train nothing,
register nothing and execute no notebook but 05_scoring.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utils.clv.synth import generate_clv
from utils.core.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent


def environment(outputs: Path) -> dict[str, str]:
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri exports it to every later subprocess
    return env


def run_all(outputs: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_all.py", *args], cwd=PROJECT_ROOT, env=environment(outputs),
                          capture_output=True, text=True, timeout=timeout)


def score(outputs: Path, *args: str) -> subprocess.CompletedProcess:
    return run_all(outputs, "score", "--no-progress", *args, timeout=300)


def registry_state(outputs: Path) -> dict:
    code = ("import json, mlflow; from utils.core import tracking; tracking.configure(); c = mlflow.MlflowClient(); "
            "print(json.dumps({m.name: len(c.search_model_versions(f\"name='{m.name}'\")) "
            "for m in c.search_registered_models()}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment(outputs), capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("outputs")
    result = run_all(folder, "--profile", "smoke", "--no-progress")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def training_leads(outputs) -> pd.DataFrame:
    """Raw leads like the ones the champion was trained on (the smoke run's own), without id and target."""
    leads = pd.read_parquet(outputs / "latest" / "data" / "leads_clean.parquet")
    train = leads.sort_values("created_date", kind="stable").iloc[: int(0.8 * len(leads))]
    return train.drop(columns=["lead_id", "app_complete_flag"]).reset_index(drop=True)


def export(frame: pd.DataFrame, path: Path, index: list | None = None) -> Path:
    """A CRM export: the unnamed index column first (here, ids no row number would give)."""
    frame = frame.reset_index(drop=True)
    frame.index = index if index is not None else np.arange(5000, 5000 + len(frame))
    frame.to_csv(path)
    return path


def test_the_job_scores_every_lead_under_its_id_and_trains_nothing(outputs, training_leads, tmp_path):
    batch = training_leads.sample(400, random_state=1)
    batch = pd.concat([batch, batch.iloc[:3]])  # three leads exported twice, under other ids
    leads_file = export(batch, tmp_path / "new_leads.csv")
    clv = generate_clv(300, 8)
    for name, frame in clv.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    runs_before, registry_before = sorted(p.name for p in (outputs / "runs").iterdir()), registry_state(outputs)

    result = score(outputs, "--leads", str(leads_file), "--customers", str(tmp_path / "customers.csv"),
                   "--purchases", str(tmp_path / "purchases.csv"), "--web-actions", str(tmp_path / "web_actions.csv"),
                   "--campaigns", str(tmp_path / "campaigns.csv"),
                   "--purchase-lines", str(tmp_path / "purchase_lines.csv"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    job = (outputs / "scoring" / "latest").resolve()
    scored = pd.read_parquet(job / "data" / "leads_scored.parquet")
    assert len(scored) == len(batch) == 403 and scored["lead_id"].is_unique
    assert sorted(scored["lead_id"]) == list(range(5000, 5403))
    assert scored["duplicate"].sum() == 3 and scored["p_app_complete"].between(0, 1).all()
    csv = pd.read_csv(job / "data" / "leads_scored.csv")
    assert csv.columns[0] == "lead_id" and csv["lead_id"].tolist() == scored["lead_id"].tolist()
    customers = pd.read_parquet(job / "data" / "customers_scored.parquet")
    assert customers["customer_id"].is_unique and len(customers) > 0
    # trained nothing, registered nothing, executed 05 only
    assert registry_state(outputs) == registry_before
    assert sorted(p.name for p in (outputs / "runs").iterdir()) == runs_before
    assert sorted(p.name for p in (job / "notebooks").iterdir()) == ["05_scoring.ipynb"]
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["models"]["lead_scoring"]["version"]
    assert manifest["inputs"]["leads"]["sha256"] and manifest["inputs"]["customers"]["files"]["purchases"]["sha256"]
    assert manifest["models"]["clv"]["recipe"]["feature_window_days"] > 0
    for name in ("drift_leads.csv", "drift_customers.csv"):
        assert (job / "tables" / name).exists()
    page = (job / "dashboard.html").read_text()
    assert "Top 100 leads" in page and "5000" in page


def test_a_missing_column_exits_2_naming_file_and_column_and_moves_nothing(outputs, training_leads, tmp_path):
    broken = export(training_leads.head(50).drop(columns=["first_utm_source_c"]), tmp_path / "broken.csv")
    before = tree(outputs / "scoring")
    result = score(outputs, "--leads", str(broken))
    assert result.returncode == 2, result.stderr
    assert str(broken) in result.stderr and "first_utm_source_c" in result.stderr and "missing" in result.stderr
    assert tree(outputs / "scoring") == before


def test_drift_past_the_fail_level_holds_the_scores_and_exits_4(outputs, training_leads, tmp_path):
    latest_before = (outputs / "scoring" / "latest").resolve() if (outputs / "scoring" / "latest").exists() else None
    shifted = training_leads.sample(300, random_state=2).assign(first_utm_medium_c="Level999")
    result = score(outputs, "--leads", str(export(shifted, tmp_path / "shifted.csv")), "--job-id", "shifted-batch")
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert "HELD" in result.stderr and "first_utm_medium_c" in result.stderr
    job = outputs / "scoring" / "shifted-batch"
    assert len(pd.read_parquet(job / "data" / "leads_scored.parquet")) == 300
    assert json.loads((job / "status.json").read_text())["status"] == "held"
    assert "Drift FAILURE" in (job / "dashboard.html").read_text()
    latest_after = (outputs / "scoring" / "latest").resolve() if (outputs / "scoring" / "latest").exists() else None
    assert latest_after == latest_before


def test_without_a_champion_the_job_names_the_command_that_trains_one(tmp_path, training_leads):
    empty = tmp_path / "empty-outputs"
    result = score(empty, "--leads", str(export(training_leads.head(20), tmp_path / "new.csv")))
    assert result.returncode == 5, result.stderr
    assert "python run_all.py --profile smoke" in result.stderr and not (empty / "scoring").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_champion_served_over_http_scores_raw_leads(outputs, training_leads, tmp_path):
    """`mlflow models serve` as the README shows it: raw export columns in, p_app_complete out."""
    port = free_port()
    env = environment(outputs)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{outputs / 'mlflow' / 'mlflow.db'}"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    server = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/lead_scoring@champion", "--host", "127.0.0.1",
         "-p", str(port), "--env-manager", "local", "--workers", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None and time.time() < deadline, server.stdout.read()[-3000:]
                time.sleep(1)
        rows = training_leads.head(5).assign(created_date=lambda f: f["created_date"].astype(str))
        rows = rows.drop(columns=[c for c in rows.columns if rows[c].isna().all()])  # the flags may be left out
        rows["total_leads_droppped"] = rows["total_leads_droppped"].fillna(0).astype(int)  # JSON integers are fine
        body = json.dumps({"dataframe_records": json.loads(rows.to_json(orient="records"))}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    predictions = answer["predictions"]
    assert len(predictions) == 5 and set(predictions[0]) == {"p_app_complete"}
    job_scores = _scores_in_process(outputs, training_leads.head(5))
    np.testing.assert_allclose([p["p_app_complete"] for p in predictions], job_scores, atol=1e-9)


def _scores_in_process(outputs: Path, rows: pd.DataFrame) -> list[float]:
    path = outputs / "rows.parquet"
    rows.to_parquet(path)
    code = ("import mlflow, pandas as pd; from utils.core import tracking; tracking.configure(); "
            "m = mlflow.pyfunc.load_model('models:/lead_scoring@champion'); "
            f"print(m.predict(pd.read_parquet({str(path)!r}))['p_app_complete'].tolist())")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment(outputs), capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
