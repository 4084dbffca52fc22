"""End to end: run_all.py on the smoke profile, as a user would, in a scratch outputs folder.

One module-scoped sequence of real runs (each step builds on the previous):
a first run; a no-op rerun; a forced rerun that must be bit-identical; a run
killed with SIGKILL mid-notebook while a second run_all.py is refused by the
lock; a one-parameter change that re-executes only 04 and 05; then issue 11's
rollback sequence: one more run with other parameters, and a rerun matching the
first, whose every step is reused and whose old promotions must not be applied.
"""
from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from utils.core.paths import PROJECT_ROOT
from utils.pipeline import notebooks

pytestmark = pytest.mark.slow

REQUIRED_METRICS = (
    "lead.auc_test", "lead.auc_cv", "clv.gini_test.rf", "clv.gini_test.baseline", "clv.spearman_test.rf",
    "scoring.leads_scored", "scoring.customers_scored",
)
SCORED_FILES = ("leads_scored.parquet", "leads_scored.csv", "customers_scored.parquet", "customers_scored.csv")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("outputs")


def run_all(outputs: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri exports it to every later subprocess
    return subprocess.run(
        [sys.executable, "run_all.py", "--profile", "smoke", "--no-progress", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def latest(outputs: Path) -> Path:
    return (outputs / "latest").resolve()


def aliases(outputs: Path) -> dict[str, str | None]:
    code = "import json; from utils.pipeline import promotions; print(json.dumps(promotions.MlflowRegistry().champions()))"
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri exports it to every later subprocess
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


@pytest.fixture(scope="module")
def first_run(outputs):
    result = run_all(outputs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (outputs / "first_run.log").write_text(result.stdout + result.stderr)
    return latest(outputs)


def test_the_terminal_shows_the_run_not_kernel_noise(first_run, outputs):
    said = (outputs / "first_run.log").read_text()
    assert "without encryption" not in said and "Traceback" not in said
    assert all(f"{step}: executing" in said for step in ("00_data", "05_scoring"))


def test_first_run_writes_metrics_scores_and_sets_champions(first_run, outputs):
    metrics = json.loads((first_run / "metrics.json").read_text())
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    assert not missing, f"metrics.json lacks {missing}"
    assert 0.5 < metrics["lead.auc_test"] < 1.0
    assert metrics["scoring.leads_scored"] > 0 and metrics["scoring.customers_scored"] > 0
    for name in SCORED_FILES:
        assert (first_run / "data" / name).stat().st_size > 0, name
    assert (first_run / "dashboard.html").exists()
    for step in ("00_data", "01_eda", "02_cleaning", "03_lead_model", "04_clv_model", "05_scoring"):
        assert (first_run / "notebooks" / f"{step}.ipynb").exists()
        assert (first_run / "notebooks" / f"{step}.html").exists()
    champions = aliases(outputs)
    assert champions["lead_scoring"] is not None and champions["clv"] is not None
    record = manifest(first_run)
    assert record["status"] == "succeeded" and record["git"]["commit"]
    assert all(s["status"] == "executed" and s["peak_rss_mb"] for s in record["steps"].values())


def test_the_book_of_the_run_links_every_notebook_and_figure(first_run):
    from tests.pipeline.test_book import local_targets

    index = first_run / "book" / "index.html"
    assert index.is_file()
    pages = sorted(index.parent.glob("*.html"))
    assert {p.stem for p in pages} >= {"index", "figures", "manifest", "teaching", "00_data", "05_scoring"}
    for page in pages:
        for target in local_targets(page):
            assert (page.parent / target).resolve().exists(), f"{page.name} links to missing {target}"
    gallery = (index.parent / "figures.html").read_text()
    assert all(f"../{rel}" in gallery for rel in manifest(first_run)["outputs"] if rel.startswith("figures/"))


@pytest.mark.browser
def test_the_book_of_the_run_opens_without_console_errors(first_run, tmp_path):
    from tests.browser import check_pages

    for name, seen in check_pages(sorted((first_run / "book").glob("*.html")), tmp_path / "profile").items():
        assert all(seen["images"]), f"{name}: an image did not load"
        assert seen["errors"] == [], f"{name}: {seen['errors']}"
        if name in ("figures.html", "01_eda.html", "03_lead_model.html"):
            assert len(seen["images"]) >= 5, f"{name} shows the run's figures"


def clean_output_problems(run: Path) -> list[str]:
    """What a reader of the run's executed notebooks would wade through: every stderr output (warnings,
    MLflow's prints), and figures a step saved but its notebook does not show, or shows twice."""
    problems = []
    steps = manifest(run)["steps"]
    for path in sorted((run / "notebooks").glob("*.ipynb")):
        executed = notebooks.read(path)
        problems += [f"{path.name} cell {number}: stderr {text[:300]!r}"
                     for number, text in notebooks.stderr_outputs(executed)]
        shown = sum("image/png" in output.get("data", {}) for cell in executed["cells"]
                    for output in cell.get("outputs", []))
        saved = [rel for rel in steps[path.stem]["outputs"] if rel.startswith("figures/") and rel.endswith(".png")]
        if shown != len(saved):
            problems.append(f"{path.name}: {len(saved)} figure(s) saved, {shown} shown")
    return problems


def test_executed_notebooks_are_clean_no_stderr_and_each_figure_shown_once(first_run):
    """Issue 13: zero stderr outputs in every executed notebook of a smoke run (its .ipynb, and so its HTML, the
    book and the MLflow copy); each saved figure shown once, in its notebook."""
    assert len(list((first_run / "notebooks").glob("*.ipynb"))) == 6
    assert clean_output_problems(first_run) == []


def test_rerun_with_nothing_changed_does_nothing(first_run, outputs):
    result = run_all(outputs)
    assert result.returncode == 0, result.stderr
    assert "nothing to do: all 6 steps are up to date" in result.stdout
    assert latest(outputs) == first_run


def test_forced_rerun_is_bit_identical(first_run, outputs):
    result = run_all(outputs, "--force")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    second = latest(outputs)
    assert second != first_run
    assert (second / "metrics.json").read_bytes() == (first_run / "metrics.json").read_bytes()
    for name in SCORED_FILES:
        assert (second / "data" / name).read_bytes() == (first_run / "data" / name).read_bytes(), name


def test_with_a_champion_to_beat_the_notebooks_stay_clean(first_run, outputs):
    """The forced rerun's gates load and score the champions the first run crowned: still nothing on stderr."""
    second = latest(outputs)
    if second == first_run:  # run on its own (-k): the forced rerun the module makes before it
        result = run_all(outputs, "--force")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        second = latest(outputs)
    assert manifest(second)["models"]["lead_scoring"]["champion_version"] is not None, "a champion was compared"
    assert clean_output_problems(second) == []


def test_killed_run_and_concurrent_run_lose_nothing(first_run, outputs):
    before_latest, before_aliases = latest(outputs), aliases(outputs)
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri exports it to every later subprocess
    victim = subprocess.Popen(
        [sys.executable, "run_all.py", "--profile", "smoke", "--no-progress", "--force"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        # Wait until a notebook kernel is busy (03 trains a model), then kill everything at once.
        deadline = time.time() + 300
        seen = ""
        while time.time() < deadline:
            line = victim.stdout.readline()
            seen += line
            if "03_lead_model: executing" in line:
                break
        assert "03_lead_model: executing" in seen, seen
        refused = run_all(outputs, "--force", timeout=60)
        assert refused.returncode == 3 and "another run_all.py is running" in refused.stderr
        time.sleep(2)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    assert latest(outputs) == before_latest
    assert aliases(outputs) == before_aliases
    killed = [p for p in (outputs / "runs").iterdir() if (p / "status.json").exists()
              and json.loads((p / "status.json").read_text())["status"] == "running"]
    assert len(killed) == 1, "the killed run stays marked running, apart from the others"
    assert (first_run / "metrics.json").exists(), "earlier runs are untouched"


def test_one_clv_parameter_reexecutes_only_04_and_05(first_run, outputs):
    result = run_all(outputs, "--set", "rf_n_estimators=60")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steps = manifest(latest(outputs))["steps"]
    executed = sorted(name for name, s in steps.items() if s["status"] == "executed")
    assert executed == ["04_clv_model", "05_scoring"], result.stdout
    assert "reused from" in result.stdout and "changed since" in result.stdout
    for name, step in steps.items():
        if step["status"] == "reused":
            run = latest(outputs)
            assert all((run / rel).exists() for rel in step["outputs"]), name


def test_a_rerun_matching_the_first_reuses_everything_and_rolls_no_champion_back(first_run, outputs):
    """Issue 11, point 1: after runs with three parameter sets (smoke; rf_n_estimators=60 above; permutation_repeats
    here) a plain smoke run matches the first: "executed 0, reused 6", and the champions stay where they are."""
    third = run_all(outputs, "--set", "permutation_repeats=2")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    served = manifest(latest(outputs))["models"]["lead_scoring"]
    dashboard = (latest(outputs) / "dashboard.html").read_text()
    assert served["decided"] == "in this run" and html.escape(served["serving"]) in dashboard, "which version serves, why"
    before = aliases(outputs)
    first_versions = {name: model["version"] for name, model in manifest(first_run)["models"].items()}
    assert before != first_versions, "the later runs moved both champions past the first run's versions"
    rerun = run_all(outputs)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "executed 0, reused 6" in rerun.stdout
    assert aliases(outputs) == before, rerun.stdout[-2000:]
    assert "champion -> version" not in rerun.stdout
    record = manifest(latest(outputs))
    assert record["promotions"] == [] and record["aliases"] == before
    for name, model in record["models"].items():
        assert not model["applied"] and f"champion stays version {before[name]}" in model["outcome"]
        assert f"{name}: champion stays version {before[name]}" in rerun.stdout
