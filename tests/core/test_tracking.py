import json
import logging
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from utils.core import drift, tracking


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


def test_logged_model_answers_a_named_column_and_carries_its_drift_reference(store):
    tracking.configure()
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80), "kind": rng.choice(["x", "y"], 80)})
    X["b"] = X["b"].where(X.index % 9 != 0)
    model = make_pipeline(ColumnTransformer([("n", SimpleImputer(), ["a", "b"])]), LogisticRegression())
    model.fit(X, (X["a"] > 0).astype(int))
    with mlflow.start_run():
        uri = tracking.log_model(model, X, "p_yes", method="predict_proba", optional_columns=["kind"],
                                 recipe={"window_days": 7})
    pyfunc = mlflow.pyfunc.load_model(uri)
    schema = pyfunc.metadata.get_input_schema()
    assert schema.input_names() == ["a", "b", "kind"] and schema.optional_input_names() == ["kind"]
    out = pyfunc.predict(X.head(3))
    assert list(out.columns) == ["p_yes"]
    np.testing.assert_allclose(out["p_yes"], model.predict_proba(X.head(3))[:, 1])
    assert pyfunc.metadata.metadata["recipe"] == {"window_days": 7}
    reference = json.loads((Path(mlflow.artifacts.download_artifacts(uri)) / tracking.DRIFT_REFERENCE_FILE).read_text())
    assert reference["rows"] == 80 and reference["score_column"] == "p_yes"
    assert set(reference["columns"]) == {"a", "b", "kind", "p_yes"}
    assert reference["columns"]["b"]["shares"][-1] == pytest.approx(9 / 80)  # the missing-value bin
    assert reference["columns"]["kind"]["kind"] == "categorical"
    # Built column by column, it is the reference of one table of the inputs and the score, to the byte.
    whole = drift.build_reference(X.assign(p_yes=model.predict_proba(X)[:, 1]), n_bins=10)
    assert json.dumps(reference["columns"], sort_keys=True) == json.dumps(whole["columns"], sort_keys=True)


def test_the_drift_reference_leaves_out_the_excluded_inputs_and_any_index(store):
    tracking.configure()
    X = pd.DataFrame({"a": np.arange(40.0), "basket": [f"b{i}" for i in range(40)]}, index=np.arange(100, 140))
    model = make_pipeline(ColumnTransformer([("n", "passthrough", ["a"])]), LogisticRegression())
    model.fit(X, (X["a"] > 20).astype(int))
    with mlflow.start_run():
        uri = tracking.log_model(model, X, "p", method="predict_proba", drift_exclude=["basket"])
    reference = json.loads((Path(mlflow.artifacts.download_artifacts(uri)) / tracking.DRIFT_REFERENCE_FILE).read_text())
    assert list(reference["columns"]) == ["a", "p"] and reference["rows"] == 40


def test_logging_a_model_says_nothing_on_stderr_and_other_warnings_still_pass(store, capfd):
    """cloudpickle is chosen on purpose (pickled_by_value): mlflow's advice against it is not shown, nothing else
    of mlflow.sklearn's is dropped, and a fresh store does not announce its tables."""
    fresh = store / "fresh"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{fresh / 'mlflow.db'}")
        capfd.readouterr()
        tracking.configure()
        X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "n": [1, 2, 3, 4]})
        with mlflow.start_run():
            tracking.log_model(LogisticRegression().fit(X, [0, 1, 0, 1]), X, "p", method="predict_proba")
        said = capfd.readouterr()
    assert said.err == "", said.err
    logger = logging.getLogger("mlflow.sklearn")
    assert not logger.filters, "the filter is gone after logging"
    with tracking.without_message("mlflow.sklearn", re.compile("dropped")), pytest.MonkeyPatch.context() as patch:
        records = []
        patch.setattr(logger, "callHandlers", records.append)
        logger.warning("this is dropped")
        logger.warning("this passes")
    assert [r.getMessage() for r in records] == ["this passes"]


def test_input_schema_types_and_optional_columns():
    X = pd.DataFrame({"n": [1.0], "i": [1], "s": ["a"], "d": pd.to_datetime(["2022-01-01"]), "f": [True]})
    schema = tracking.input_schema(X, optional=["s"])
    assert {c.name: c.type.name for c in schema.inputs} == {"n": "double", "i": "long", "s": "string",
                                                              "d": "datetime", "f": "boolean"}
    assert schema.optional_input_names() == ["s"]


def test_a_json_request_may_send_integers_for_a_double_column():
    """What `mlflow models serve` does with a request: cast JSON to the signature, then check it."""
    from mlflow.models.utils import _enforce_schema
    from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

    schema = tracking.input_schema(pd.DataFrame({"n": [1.5], "s": ["a"]}))
    frame = dataframe_from_parsed_json([{"n": 2, "s": None}, {"n": 3, "s": "b"}], "records", schema)
    assert _enforce_schema(frame, schema)["n"].tolist() == [2.0, 3.0]


def test_pickled_by_value_only_while_logging():
    import cloudpickle

    from utils.core import serving

    with tracking.pickled_by_value():
        inside = cloudpickle.dumps(serving.NamedScore)
    outside = cloudpickle.dumps(serving.NamedScore)
    assert b"def predict" in inside or len(inside) > 4 * len(outside)  # the class itself, not a reference
    assert len(outside) < 200 and b"utils.core.serving" in outside


CLIENT = """
import sys
sys.path[:] = [p for p in sys.path if p not in {root!r}]
sys.path.insert(0, {client!r})
import utils  # the client's own package of that name
import mlflow, pandas as pd
mlflow.set_tracking_uri({uri!r})
model = mlflow.pyfunc.load_model({model!r})
out = model.predict(pd.read_parquet({rows!r}))
print(out.columns.tolist())
print(out.iloc[:, 0].round(10).tolist())
print(utils.__file__)
print(sorted(name for name in sys.modules if name == "utils" or name.startswith("utils.")))
"""


def lead_model():
    from utils.leads import model as lm
    from utils.leads.synth import generate_leads

    X, y = lm.split_xy(generate_leads(800, 3))
    pipe = lm.build_lead_pipeline({"n_estimators": 20}).fit(X, y)
    return pipe, X, lm.SCORE_COLUMN, lambda rows: pipe.predict_proba(rows)[:, 1], {"method": "predict_proba"}


def clv_model():
    from utils.clv.features import TARGET, build_clv_dataset, feature_columns
    from utils.clv.model import HurdleCLV
    from utils.clv.synth import generate_clv

    sources = generate_clv(400, 3)
    train, _, _ = build_clv_dataset(*(sources[k] for k in ("customers", "web_actions", "campaigns", "purchases")),
                                    feature_window_days=7, horizon_days=60)
    X = train[feature_columns(train)]
    model = HurdleCLV(n_estimators_clf=10, n_estimators_reg=10).fit(X, train[TARGET])
    return model, X, "predicted_clv", model.predict, {}


@pytest.mark.parametrize("make", [lead_model, clv_model], ids=["lead model", "CLV model"])
def test_a_logged_model_loads_in_a_client_with_its_own_utils_package(store, tmp_path, make):
    """No `utils` shipped, none imported: the project's classes travel inside the pickle."""
    import subprocess
    import sys

    from utils.core.paths import PROJECT_ROOT

    tracking.configure()
    model, X, score_column, expected, options = make()
    with mlflow.start_run():
        uri = tracking.log_model(model, X, score_column, **options)
    assert not list(Path(mlflow.artifacts.download_artifacts(uri)).rglob("code")), "no code_paths shipped"
    client = tmp_path / "client"
    (client / "utils").mkdir(parents=True)
    (client / "utils" / "__init__.py").write_text("WHO = 'the client'\n")
    X.head(25).to_parquet(tmp_path / "rows.parquet")
    script = CLIENT.format(root=str(PROJECT_ROOT), client=str(client), uri=mlflow.get_tracking_uri(), model=uri,
                           rows=str(tmp_path / "rows.parquet"))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    columns, scores, where, loaded = result.stdout.strip().splitlines()[-4:]
    assert columns == f"[{score_column!r}]"
    np.testing.assert_allclose(eval(scores), np.round(expected(X.head(25)), 10), rtol=1e-9, atol=1e-9)
    assert where.startswith(str(client)) and loaded == "['utils']", "the client's utils is the only utils"


def test_the_scored_reference_is_the_reference_of_inputs_and_score_as_one_table():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=60), "basket": [f"b{i}" for i in range(60)]}, index=np.arange(60) * 2)
    model = make_pipeline(ColumnTransformer([("n", "passthrough", ["a"])]), LogisticRegression())
    model.fit(X, (X["a"] > 0).astype(int))
    rows, served, reference = tracking.scored_reference(model, X, "p", "predict_proba", drift_exclude=["basket"])
    assert rows.index.equals(pd.RangeIndex(60)) and list(served.predict(rows.head(2)).columns) == ["p"]
    whole = drift.build_reference(rows[["a"]].assign(p=model.predict_proba(rows)[:, 1]))
    assert json.dumps(reference["columns"], sort_keys=True) == json.dumps(whole["columns"], sort_keys=True)
    assert reference["score_column"] == "p"
    same_rows, _, _ = tracking.scored_reference(model, rows, "p", "predict_proba")
    assert same_rows is rows, "rows already indexed 0..n-1 are not copied"


def test_runs_made_by_id_are_created_completed_and_ended_and_only_run_all_leftovers_are_killed(store, tmp_path):
    parent = tracking.create_run("run_all", {"lead2value.run_id": "r-1"})
    child = tracking.create_run("01_data", {"lead2value.step": "01"}, parent_id=parent)
    by_hand = tracking.create_run("notebook opened by hand", {})
    copy = tmp_path / "01_data.ipynb"
    copy.write_text("{}")
    tracking.log_artifact(child, copy, artifact_path="notebooks")
    client = mlflow.MlflowClient()
    assert [f.path for f in client.list_artifacts(child, "notebooks")] == ["notebooks/01_data.ipynb"]
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == parent

    assert sorted(tracking.end_stale_runs()) == sorted([parent, child])
    assert client.get_run(parent).info.status == "KILLED" and client.get_run(child).info.status == "KILLED"
    assert client.get_run(by_hand).info.status == "RUNNING"
    assert tracking.end_stale_runs() == []

    tracking.end_run(by_hand, "FINISHED")
    assert client.get_run(by_hand).info.status == "FINISHED"
