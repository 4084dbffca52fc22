"""The step context's registry calls: lineage from the run, and a notebook session that never promotes
(issue 11, point 2)."""
import io
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from utils.core import registry, tracking
from utils.core.gate import GateRule, Holdout
from utils.pipeline import catalog, promotions
from utils.pipeline.steps import open_step

SOURCE = {"kind": "synthetic", "source": "utils.leads.synth.generate_leads", "sha256": "a" * 64, "rows": 300,
          "parameters": {"n_leads": 300}, "description": "synthetic leads (n_leads=300)"}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking.configure()
    yield tmp_path
    if mlflow.active_run():
        mlflow.end_run()


def candidate():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 2)), columns=["a", "b"])
    y = (X["a"] + rng.normal(size=300) > 0).astype(int).to_numpy()
    model = LogisticRegression().fit(X.iloc[:200], y[:200])
    rule = GateRule("lead.auc_test", roc_auc_score, lambda m, frame: m.predict_proba(frame)[:, 1], margin=0.01,
                    min_rows=50, n_bootstrap=50)
    return X, model, Holdout(X.iloc[200:], y[200:], "latest third"), rule


def open_lead_step(run_dir, mlflow_run_id=""):
    step = open_step("03_lead_model", {"run_dir": str(run_dir), "mlflow_run_id": mlflow_run_id, "random_seed": 42})
    catalog.dataset("leads_source").location(step.run).write_text(json.dumps(SOURCE))
    return step


def test_a_notebook_session_registers_tagged_interactive_and_never_moves_champion(store):
    """Issue 11, point 2: 03 run by hand registers a version but the champion stays, and no run applies its record."""
    X, model, holdout, rule = candidate()
    step = open_lead_step(store / "interactive")
    assert step.interactive
    uri = tracking.log_model(model, X, "p", method="predict_proba")
    decision = step.register_candidate("lead_model", uri, model, holdout, rule, "logistic regression on 200 rows")
    step.close()
    assert decision["promote"] and decision["rule"] == "no_champion" and decision["run_id"] == "interactive"
    assert registry.champion_version("lead_scoring") is None, "a notebook session never moves the alias"
    tags = MlflowClient().get_model_version("lead_scoring", decision["version"]).tags
    assert tags["lead2value.interactive"] == "true" and tags["lead2value.profile"] == "interactive"
    assert tags["lead2value.data"] == SOURCE["description"]
    # Even if its record reached a run's bookkeeping, a decision not taken in that run is not applied.
    [outcome] = promotions.apply_promotions([decision], promotions.MlflowRegistry(),
                                            run_id="20260101-000000-smoke-abcd")
    assert not outcome["applied"] and registry.champion_version("lead_scoring") is None


def test_under_run_all_the_lineage_names_the_run_profile_and_commit(store):
    X, model, holdout, rule = candidate()
    run = store / "runs" / "20260101-000000-smoke-abcd"
    run.mkdir(parents=True)
    git = {"commit": "c0ffee" * 6, "dirty": False}
    (run / "manifest.json").write_text(json.dumps({"profile": "smoke", "git": git}))
    tracking.configure()
    parent = mlflow.MlflowClient().create_run(mlflow.get_experiment_by_name(tracking.EXPERIMENT_NAME).experiment_id)
    step = open_lead_step(run, mlflow_run_id=parent.info.run_id)
    assert not step.interactive
    assert step.run_context() | {"mlflow_run_id": None} == {
        "run_id": run.name, "profile": "smoke", "git_commit": "c0ffee" * 6, "git_dirty": False, "interactive": False,
        "mlflow_run_id": None}
    uri = tracking.log_model(model, X, "p", method="predict_proba")
    decision = step.register_candidate("lead_model", uri, model, holdout, rule, "logistic regression")
    step.close()
    assert decision["run_id"] == run.name and decision["source"] == SOURCE
    assert step.serving_note("lead_model") == decision["serving"]
    assert step.serving_model_uri("lead_model") == f"models:/lead_scoring/{decision['version']}"
    run_tags = MlflowClient().get_run(parent.info.run_id).data.tags
    assert run_tags["lead2value.data_kind"] == "synthetic" and run_tags["gate.lead_scoring.promote"] == "True"


def test_a_saved_figure_is_shown_once_where_it_is_saved_and_closed(store, monkeypatch):
    """The house way in every notebook: step.save_figure saves, logs and shows; no plt.show, nothing shown twice."""
    import matplotlib.pyplot as plt

    from utils.pipeline import steps

    shown = []
    monkeypatch.setattr(steps, "get_ipython", lambda: object())  # as in a notebook kernel
    monkeypatch.setattr(steps, "display", shown.append)
    step = open_lead_step(store / "interactive")
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    out = step.save_figure(fig, "line")
    step.close()
    assert out == store / "interactive" / "figures" / "line.png" and out.stat().st_size > 0
    assert len(shown) == 1 and shown[0].data.startswith(b"\x89PNG") and not plt.fignum_exists(fig.number), \
        "shown here once, as a PNG; the inline backend has nothing left to show"
    monkeypatch.setattr(steps, "get_ipython", lambda: None)  # a script: nothing to show, the figure is still closed
    fig, _ = plt.subplots()
    step.save_figure(fig, "empty")
    assert len(shown) == 1 and not plt.fignum_exists(fig.number)


def test_a_saved_figure_is_shown_from_its_saved_png_scaled_not_drawn_twice(store, monkeypatch):
    import matplotlib.pyplot as plt
    import PIL.Image

    from utils.pipeline import steps

    shown = []
    monkeypatch.setattr(steps, "get_ipython", lambda: object())
    monkeypatch.setattr(steps, "display", shown.append)
    step = open_lead_step(store / "interactive")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([1, 2])
    draws = []
    save = fig.savefig
    monkeypatch.setattr(fig, "savefig", lambda *args, **kwargs: (draws.append(kwargs.get("dpi")), save(*args, **kwargs)))
    out = step.save_figure(fig, "line")
    step.close()
    assert draws == [tracking.SAVE_DPI], "drawn once, for the saved file"
    assert shown[0].data == steps.scaled_png(out.read_bytes(), steps.SHOW_DPI / tracking.SAVE_DPI)
    with PIL.Image.open(out) as saved, PIL.Image.open(io.BytesIO(shown[0].data)) as small:
        assert abs(small.width - saved.width * steps.SHOW_DPI / tracking.SAVE_DPI) <= 1


def test_a_scaled_png_has_the_scaled_size_and_the_same_bytes_every_time():
    import PIL.Image

    from utils.pipeline import steps

    buffer = io.BytesIO()
    PIL.Image.new("RGBA", (110, 55), (200, 30, 30, 255)).save(buffer, format="PNG")
    once, again = (steps.scaled_png(buffer.getvalue(), 80 / 110) for _ in range(2))
    assert once == again
    with PIL.Image.open(io.BytesIO(once)) as image:
        assert image.size == (80, 40) and image.convert("RGB").getpixel((40, 20)) == (200, 30, 30)
    with pytest.raises(ValueError, match="positive"):
        steps.scaled_png(buffer.getvalue(), 0)
