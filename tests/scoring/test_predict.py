"""Scoring with registered models: identity of the model, columns, bands, deciles, files."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.helpers import scratch_mlflow_store
from utils.core.contracts import DataContractError
from utils.core.hashing import sha256_file
from utils.scoring import predict as scoring

LEAD_FEATURES = ["city_tier", "first_platform_c", "total_leads_droppped", "referred_lead"]


def lead_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "city_tier": rng.integers(1, 4, n).astype(float),
            "first_platform_c": rng.choice(["Level0", "Level3", "others"], n),
            "total_leads_droppped": rng.integers(1, 5, n).astype(float),
            "referred_lead": rng.integers(0, 2, n).astype(float),
        }
    )
    frame.loc[::11, "referred_lead"] = np.nan
    return frame


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A throwaway MLflow store with a stand-in lead classifier (two versions) and a CLV regressor."""
    import mlflow.sklearn
    from lightgbm import LGBMClassifier
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("mlflow")
    with scratch_mlflow_store(root, "scoring-tests"):
        train = lead_frame(400, seed=0)
        target = (np.random.default_rng(1).random(400) < 0.2 + 0.2 * (train["first_platform_c"] == "Level0")).astype(int)
        pipelines = {}
        for version, trees in ((1, 5), (2, 15)):
            pipe = make_pipeline(
                make_column_transformer(
                    (OneHotEncoder(handle_unknown="ignore"), ["first_platform_c"]), remainder="passthrough"
                ),
                LGBMClassifier(n_estimators=trees, min_child_samples=5, verbose=-1, random_state=0, n_jobs=1),
            ).fit(train, target)
            with mlflow.start_run():
                mlflow.sklearn.log_model(
                    pipe,
                    name="model",
                    signature=infer_signature(train, pipe.predict_proba(train)),
                    pyfunc_predict_fn="predict_proba",
                    registered_model_name="lead_scoring",
                    serialization_format="cloudpickle",
                    pip_requirements=[],
                )
            pipelines[version] = pipe
        clv_x = pd.DataFrame({"revenue_7d": np.linspace(0, 100, 50), "orders_7d": (np.arange(50) % 4).astype(float)})
        clv_model = LinearRegression().fit(clv_x, 2 * clv_x["revenue_7d"] + 5)
        with mlflow.start_run() as clv_run:
            mlflow.sklearn.log_model(
                clv_model,
                name="model",
                signature=infer_signature(clv_x, clv_model.predict(clv_x)),
                registered_model_name="clv",
                serialization_format="cloudpickle",
                pip_requirements=[],
            )
        client = MlflowClient()
        client.set_registered_model_alias("lead_scoring", "champion", "1")
        client.set_registered_model_alias("clv", "champion", "1")
        yield {"pipelines": pipelines, "clv_x": clv_x, "clv_run_id": clv_run.info.run_id}


def test_load_model_resolves_alias_to_version_and_run(registry):
    model = scoring.load_model("models:/lead_scoring@champion")
    assert (model.name, model.version) == ("lead_scoring", "1")
    assert model.pinned_uri == "models:/lead_scoring/1"
    assert model.run_id and model.input_columns == LEAD_FEATURES
    assert scoring.load_model("models:/lead_scoring/2").version == "2"


def test_load_model_by_run_uri_keeps_run_id(registry):
    model = scoring.load_model(f"runs:/{registry['clv_run_id']}/model")
    assert model.name is None and model.run_id == registry["clv_run_id"]


def test_score_table_gives_positive_class_probability_and_provenance(registry):
    model = scoring.load_model("models:/lead_scoring/2")
    new = lead_frame(60, seed=5).assign(lead_id=np.arange(60))
    scored = scoring.score_table(model, new, "p_app_complete", file="leads_new.parquet")
    expected = registry["pipelines"][2].predict_proba(new[LEAD_FEATURES])[:, 1]
    np.testing.assert_allclose(scored["p_app_complete"], expected, rtol=0, atol=1e-12)
    assert set(scored["model_name"]) == {"lead_scoring"}
    # version and run id go to the side file: per-row values would break byte-identical reruns
    assert "model_version" not in scored and "model_run_id" not in scored
    assert model.provenance()["model_version"] == "2" and model.provenance()["model_run_id"] == model.run_id
    assert list(scored["lead_id"]) == list(range(60))  # extra columns ride along untouched


def test_regressor_scores_are_its_predictions(registry):
    model = scoring.load_model("models:/clv@champion")
    scored = scoring.score_table(model, registry["clv_x"], "predicted_clv")
    np.testing.assert_allclose(scored["predicted_clv"], 2 * registry["clv_x"]["revenue_7d"] + 5, atol=1e-8)


def test_missing_column_stops_with_file_and_column(registry):
    model = scoring.load_model("models:/lead_scoring@champion")
    with pytest.raises(DataContractError, match=r"leads_new.parquet: column 'referred_lead': missing"):
        scoring.score_table(model, lead_frame(5, 1).drop(columns="referred_lead"), "p", file="leads_new.parquet")


def test_schema_mismatch_names_file_and_model(registry):
    model = scoring.load_model("models:/lead_scoring@champion")
    bad = lead_frame(5, 1).assign(city_tier=["one", "two", "x", "y", "z"])
    with pytest.raises(DataContractError, match=r"new.parquet: .*lead_scoring v1"):
        scoring.score_table(model, bad, "p", file="new.parquet")


def test_unknown_engine_is_refused(registry):
    model = scoring.load_model("models:/lead_scoring@champion")
    with pytest.raises(ValueError, match="unknown engine"):
        scoring.score_table(model, lead_frame(3, 1), "p", engine="dask")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (np.array([[0.7, 0.3], [0.1, 0.9]]), [0.3, 0.9]),
        (pd.DataFrame({0: [0.5], 1: [0.5]}), [0.5]),
        (np.array([1.5, 2.5]), [1.5, 2.5]),
        (np.array([[4.0], [5.0]]), [4.0, 5.0]),
    ],
)
def test_positive_class_scores(raw, expected):
    np.testing.assert_allclose(scoring.positive_class_scores(raw), expected)


def test_a_named_score_column_is_taken_by_name():
    out = pd.DataFrame({"other": [9.0, 9.0], "p_app_complete": [0.1, 0.7]})
    np.testing.assert_allclose(scoring.positive_class_scores(out, "p_app_complete"), [0.1, 0.7])


def test_positive_class_scores_refuses_multiclass():
    with pytest.raises(ValueError, match="shape"):
        scoring.positive_class_scores(np.ones((2, 3)) / 3)


def test_provenance_entry_names_the_model_and_hashes_input_and_outputs(tmp_path, registry):
    model = scoring.load_model("models:/lead_scoring@champion")
    source = tmp_path / "leads_new.parquet"
    new = lead_frame(20, 3)
    new.to_parquet(source)
    scored = scoring.score_table(model, new, "p_app_complete")
    outputs = [tmp_path / "leads_scored.parquet", tmp_path / "leads_scored.csv"]
    scored.to_parquet(outputs[0])
    scored.to_csv(outputs[1], index=False)
    entry = scoring.provenance_entry(model, source, outputs, rows=len(scored), unseen_levels={"city": 2})
    assert (entry["model_name"], entry["model_version"], entry["model_run_id"]) == ("lead_scoring", "1", model.run_id)
    assert entry["input"] == {"file": source.name, "sha256": sha256_file(source)}
    assert entry["outputs"] == {p.name: sha256_file(p) for p in outputs}
    assert entry["rows"] == 20 and entry["unseen_levels"] == {"city": 2}


def test_a_missing_registered_model_says_which_command_trains_it(registry):
    with pytest.raises(scoring.NoModelError, match="no registered model models:/nobody@champion"):
        scoring.load_model("models:/nobody@champion")
    with pytest.raises(scoring.NoModelError, match=r"03_lead_model.ipynb.*|run_all.py --profile smoke"):
        scoring.resolve_model("models:/lead_scoring/99")
    assert scoring.resolve_model("models:/lead_scoring@champion") == ("lead_scoring", "1", "models:/lead_scoring/1")
    assert scoring.resolve_model("runs:/abc/model") == (None, None, "runs:/abc/model")


def test_a_model_logged_by_the_project_gives_its_named_score_recipe_and_drift_reference(registry):
    import mlflow

    from utils.core import tracking

    train = registry["clv_x"]
    model = scoring.load_model("models:/clv@champion")
    assert model.score_column is None and model.recipe == {}  # logged without the project's logger
    with pytest.raises(LookupError, match="no drift reference"):
        model.drift_reference()
    from sklearn.linear_model import LinearRegression

    fitted = LinearRegression().fit(train, 3 * train["orders_7d"])
    with mlflow.start_run():
        uri = tracking.log_model(fitted, train, "predicted_clv", recipe={"feature_window_days": 7, "horizon_days": 90})
    version = mlflow.register_model(uri, "clv").version
    served = scoring.load_model(f"models:/clv/{version}")
    assert served.score_column == "predicted_clv" and served.recipe == {"feature_window_days": 7, "horizon_days": 90}
    reference = served.drift_reference()
    assert set(reference["columns"]) == {"revenue_7d", "orders_7d", "predicted_clv"}
    scored = scoring.score_table(served, train.assign(customer_id=range(len(train))), "predicted_clv")
    np.testing.assert_allclose(scored["predicted_clv"], 3 * train["orders_7d"], atol=1e-8)
    assert list(scored["customer_id"]) == list(range(len(train)))
    by_run = scoring.load_model(uri)  # not a registry URI: the reference comes from the model's folder
    assert by_run.version is None and set(by_run.drift_reference()["columns"]) == set(reference["columns"])


def test_input_columns_follow_the_signature_else_the_table(registry):
    model = scoring.load_model("models:/lead_scoring@champion")
    table = lead_frame(3, 1).assign(created_date=pd.Timestamp("2022-01-01"))
    assert scoring.input_columns(model, table) == LEAD_FEATURES
    unsigned = scoring.ScoringModel(
        "u", "u", None, None, None, pyfunc=SimpleNamespace(metadata=SimpleNamespace(get_input_schema=lambda: None))
    )
    assert scoring.input_columns(unsigned, table.assign(model_version="1")) == LEAD_FEATURES
    assert scoring.input_columns(unsigned, table, not_features=("city_tier",)) == [*LEAD_FEATURES[1:], "created_date"]
