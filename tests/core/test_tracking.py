import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from utils.core import tracking


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One private MLflow store per module: creating its tables takes seconds."""
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        yield folder
    if mlflow.active_run():
        mlflow.end_run()


def test_configure_points_tracking_and_registry_at_the_store(store):
    uri = tracking.configure()
    assert uri == f"sqlite:///{store / 'mlflow.db'}"
    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri
    assert mlflow.get_experiment_by_name(tracking.EXPERIMENT_NAME) is not None


def test_default_tracking_uri_lives_under_outputs():
    assert tracking.default_tracking_uri().startswith("sqlite:///") and "mlflow.db" in tracking.default_tracking_uri()


def test_write_metrics_merges_and_logs(store, tmp_path):
    tracking.configure()
    with mlflow.start_run() as active:
        tracking.write_metrics(tmp_path / "m.json", {"a.b": 1})
        tracking.write_metrics(tmp_path / "m.json", {"c": np.float32(2.5)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a.b": 1.0, "c": 2.5}
    assert mlflow.get_run(active.info.run_id).data.metrics == {"a.b": 1.0, "c": 2.5}


def test_save_figure_png_and_table(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    out = tracking.save_figure(fig, tmp_path / "figures", "line")
    assert out.name == "line.png" and out.stat().st_size > 0
    again = tracking.save_figure(fig, tmp_path / "again", "line")
    assert again.read_bytes() == out.read_bytes(), "no timestamp in the PNG: reruns are byte-identical"
    table = tracking.save_table(pd.DataFrame({"a": [1.0]}), tmp_path / "tables", "t")
    assert table.read_text().startswith("a\n")
    with pytest.raises(TypeError, match="neither matplotlib nor plotly"):
        tracking.save_figure(object(), tmp_path, "bad")


def test_model_requirements_are_pinned():
    reqs = tracking.model_requirements()
    assert any(r.startswith("scikit-learn==") for r in reqs) and all("==" in r for r in reqs)
    assert tracking.model_requirements(("no-such-package",)) == []


def test_logged_model_has_a_signature_and_the_chosen_predict_function(store):
    tracking.configure()
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"])
    model = LogisticRegression().fit(X, rng.integers(0, 2, 40))
    with mlflow.start_run():
        uri = tracking.log_sklearn_model(model, X, predict_fn="predict_proba")
    pyfunc = mlflow.pyfunc.load_model(uri)
    assert pyfunc.metadata.get_input_schema().input_names() == ["a", "b"]
    np.testing.assert_allclose(np.asarray(pyfunc.predict(X.head(3))), model.predict_proba(X.head(3)))
