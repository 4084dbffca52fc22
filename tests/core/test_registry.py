"""The registry against a scratch MLflow store: lineage on every version, the gate's record, what a run serves,
and the issue 11 reproductions that need a registry (points 3 and 5; point 2 is in tests/pipeline/test_steps.py)."""
import json
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from utils.core import gate, registry, tracking
from utils.core.gate import GateRule, Holdout

CONTEXT = {"run_id": "20260101-120000-smoke-abcd", "profile": "smoke", "git_commit": "f00d" * 10, "git_dirty": False,
           "interactive": False}
SYNTHETIC = {"kind": "synthetic", "source": "utils.leads.synth.generate_leads", "sha256": "a" * 64, "rows": 400,
             "parameters": {"n_leads": 400, "random_seed": 0},
             "description": "synthetic leads from utils.leads.synth.generate_leads (n_leads=400, random_seed=0)"}
YOURS = {"kind": "user", "source": "/data/leads.csv", "sha256": "b" * 64, "rows": 400, "parameters": {},
         "description": "your file leads.csv (sha256 bbbbbbbbbbbb, 400 leads)"}
proba = lambda model, X: model.predict_proba(X)[:, 1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One scratch MLflow store for the module (creating one costs seconds); each test uses its own model names."""
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        tracking.configure()
        yield folder
    if mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def names(request, store, tmp_path):
    """Model names of this test alone (aliases never leak between tests), and a folder for its gate records."""
    stem = request.node.name.removeprefix("test_")[:40]
    return lambda label: f"{stem}-{label}"


def data(n=400, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 2)), columns=["a", "b"])
    y = (X["a"] + noise * rng.normal(size=n) > 0).astype(int).to_numpy()
    return X, y


def fit(X, y, columns=("a", "b")):
    return LogisticRegression().fit(X[list(columns)], y)


def rule(min_rows=50, margin=0.01):
    return GateRule("auc", roc_auc_score, proba, margin=margin, min_rows=min_rows,
                    min_rows_parameter="min_holdout_leads",
                    n_bootstrap=100, random_state=0)


def register(name, model, X_train, holdout, source, decision_file, **rule_settings):
    with mlflow.start_run():
        uri = tracking.log_model(model, X_train, "p", method="predict_proba")
        return registry.register_candidate(uri, name, decision_file, model, holdout, rule(**rule_settings), source,
                                           CONTEXT, "logistic regression on 300 leads")


def crown(name, version):
    MlflowClient().set_registered_model_alias(name, registry.CHAMPION_ALIAS, version)


def test_every_version_carries_its_lineage_and_the_gate_never_moves_the_alias(names, tmp_path):
    name_m = names("m")
    X, y = data()
    holdout = Holdout(X.iloc[300:], y[300:], "latest 25% of rows", dates=pd.date_range("2022-01-01", periods=100))
    decision = register(name_m, fit(X.iloc[:300], y[:300]), X.iloc[:300], holdout, SYNTHETIC, tmp_path / "m.json")
    assert decision["promote"] and decision["rule"] == "no_champion" and decision["serves"] == decision["version"]
    assert registry.champion_version(name_m) is None, "only the runner moves champion, after the whole run"
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(json.dumps(decision))
    version = MlflowClient().get_model_version(name_m, decision["version"])
    tags = version.tags
    assert tags["lead2value.data_kind"] == "synthetic" and tags["lead2value.run_id"] == CONTEXT["run_id"]
    assert tags["lead2value.git_commit"] == CONTEXT["git_commit"] and tags["lead2value.profile"] == "smoke"
    assert tags["lead2value.holdout"] == "latest 25% of rows" and tags["lead2value.holdout_rows"] == "100"
    assert tags["lead2value.holdout_period"] == "2022-01-01 .. 2022-04-10"
    assert float(tags["lead2value.holdout_score"]) == pytest.approx(decision["score"])
    assert tags["lead2value.gate"] == "promote" and tags["lead2value.gate_rule"] == "no_champion"
    assert "synthetic leads from utils.leads.synth" in version.description and "\n" not in version.description
    assert decision["lineage"]["git_commit"] == CONTEXT["git_commit"], "the run manifest repeats the lineage"
    assert decision["serving"].startswith(f"serving {name_m} v{decision['version']}, this run's candidate, promoted")


def test_registering_prints_nothing_and_numbers_the_versions(names, capfd):
    """mlflow.register_model prints "Successfully registered model" and "Created version" in red in every notebook."""
    name_quiet = names("quiet")
    X, y = data()
    with mlflow.start_run():
        uri = tracking.log_model(fit(X, y), X, "p", method="predict_proba")
    capfd.readouterr()
    assert [registry.register_version(uri, name_quiet, {"t": "1"}) for _ in range(2)] == ["1", "2"]
    said = capfd.readouterr()
    assert said.err == "" and said.out == ""
    first = MlflowClient().get_model_version(name_quiet, "1")
    assert first.source == uri and first.tags == {"t": "1"} and first.run_id
    assert mlflow.pyfunc.load_model(f"models:/{name_quiet}/2").predict(X.head(2)).shape == (2, 1)
    with pytest.raises(mlflow.exceptions.MlflowException):
        registry.register_version(uri, "", {})


def test_a_worse_candidate_is_registered_and_the_run_serves_the_champion(names, tmp_path):
    name_m = names("m")
    X, y = data()
    holdout = Holdout(X.iloc[300:], y[300:], "latest 25% of rows")
    first = register(name_m, fit(X.iloc[:300], y[:300]), X.iloc[:300], holdout, SYNTHETIC, tmp_path / "m.json")
    crown(name_m, first["version"])
    noise = LogisticRegression().fit(X.iloc[:300], np.random.default_rng(1).permutation(y[:300]))
    worse = register(name_m, noise, X.iloc[:300], holdout, SYNTHETIC, tmp_path / "m.json")
    assert not worse["promote"] and worse["rule"] == "paired_comparison" and worse["difference"]["high"] < 0
    assert worse["champion_version"] == first["version"] and worse["serves"] == first["version"]
    assert worse["champion_score"] == pytest.approx(first["score"]) == worse["serving_score"]
    assert registry.serving_model_uri(name_m, tmp_path / "m.json") == f"models:/{name_m}/{first['version']}"
    said = f"serving {name_m} v{first['version']}, the champion: candidate v{worse['version']} was not promoted"
    assert said in worse["serving"]
    assert MlflowClient().get_model_version(name_m, worse["version"]).tags["lead2value.gate"] == "reject"


def test_your_model_replaces_a_synthetic_champion_that_scores_higher_on_your_holdout(names, tmp_path):
    """Issue 11, point 3: the demo model (here: one that has seen the holdout, as the leaky generator had) is not
    a rival for a model trained on your data; it is replaced, and its score on your rows is reported."""
    name_leads = names("leads")
    X, y = data(seed=2)
    holdout = Holdout(X.iloc[300:], y[300:], "latest 25% of rows")
    leaky = fit(X, y)  # trained on every row, the holdout included
    demo = register(name_leads, leaky, X, holdout, SYNTHETIC, tmp_path / "demo.json")
    crown(name_leads, demo["version"])
    weak = LogisticRegression().fit(X.iloc[:300], np.random.default_rng(1).permutation(y[:300]))
    yours = register(name_leads, weak, X.iloc[:300], holdout, YOURS, tmp_path / "yours.json")
    assert yours["promote"] and yours["rule"] == "user_replaces_synthetic"
    assert yours["champion_score"] > yours["score"], "the synthetic champion scores higher, and still goes"
    assert yours["serves"] == yours["version"] and yours["champion_kind"] == "synthetic"


def test_a_synthetic_run_never_replaces_a_champion_trained_on_your_data(names, tmp_path):
    """Issue 11, points 3 and 5: a smoke run on synthetic data neither beats your champion on its synthetic holdout
    nor replaces it because your champion (trained on other columns) cannot score synthetic rows."""
    name_clv = names("clv")
    X, y = data(seed=3)
    holdout = Holdout(X.iloc[300:], y[300:], "latest 25% of rows")
    yours = register(name_clv, fit(X.iloc[:300], y[:300]), X.iloc[:300], holdout, YOURS, tmp_path / "yours.json")
    crown(name_clv, yours["version"])
    stronger = fit(X, y)
    comparable = register(name_clv, stronger, X, holdout, SYNTHETIC, tmp_path / "demo.json")
    assert not comparable["promote"] and comparable["rule"] == "synthetic_never_replaces"
    assert comparable["serves"] == comparable["version"], "the synthetic run scores its synthetic rows itself"
    renamed = X.rename(columns={"a": "web_actions"})
    other_features = register(name_clv, fit(renamed, y, ["web_actions", "b"]), renamed,
                              Holdout(renamed.iloc[300:], y[300:], "latest 25%"), SYNTHETIC, tmp_path / "demo2.json")
    assert not other_features["promote"] and other_features["rule"] == "synthetic_never_replaces"
    assert registry.champion_version(name_clv) == yours["version"]


def test_a_tiny_holdout_promotes_nothing(names, tmp_path):
    """Issue 11, point 5: 29 leads, a 7-row holdout: registered, not promoted, the reason names the parameter."""
    name_m = names("m")
    X, y = data(n=29, seed=4, noise=0.3)
    tiny = register(name_m, fit(X.iloc[:22], y[:22]), X.iloc[:22], Holdout(X.iloc[22:], y[22:], "latest 25%"), YOURS,
                    tmp_path / "m.json", min_rows=500)
    assert not tiny["promote"] and tiny["rule"] == "too_little_evidence"
    assert "holdout of 7 rows is below min_holdout_leads=500" in tiny["reason"]


def test_an_unscorable_champion_of_your_other_file_stays_and_the_run_says_why(names, tmp_path):
    name_m = names("m")
    X, y = data(seed=5)
    other_file = {**YOURS, "source": "/data/old_export.csv", "sha256": "c" * 64}
    narrow = register(name_m, fit(X.iloc[:300], y[:300], ["a"]), X.iloc[:300][["a"]],
                      Holdout(X.iloc[300:][["a"]], y[300:], "latest 25%"), other_file, tmp_path / "old.json")
    crown(name_m, narrow["version"])
    renamed = X.rename(columns={"a": "a2"})
    new = register(name_m, fit(renamed, y, ["a2", "b"]), renamed, Holdout(renamed.iloc[300:], y[300:], "latest 25%"),
                   YOURS, tmp_path / "new.json")
    assert not new["promote"] and new["rule"] == "not_comparable" and new["serves"] == new["version"]
    assert "it needs columns this holdout lacks: a" in new["champion_problem"]
    same_file = register(name_m, fit(renamed, y, ["a2", "b"]), renamed, Holdout(renamed.iloc[300:], y[300:], "latest"),
                         other_file, tmp_path / "same.json")
    assert same_file["promote"] and same_file["rule"] == "upgrade"


@pytest.fixture
def unloadable(tmp_path, monkeypatch):
    """A fitted model whose class lives in a module that will be gone when it is loaded (as after the utils/ move)."""
    (tmp_path / "lead2value_legacy_model.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n\nclass LegacyModel(LogisticRegression):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import lead2value_legacy_model

    X, y = data(seed=6)
    model = lead2value_legacy_model.LegacyModel().fit(X, y)
    yield X, y, model
    sys.modules.pop("lead2value_legacy_model", None)


def legacy_version(name, model, X, data_parameters):
    """A version as run_all.py registered it before lineage tags: no tags; its 00_data sibling run logged the paths."""
    with mlflow.start_run():
        if data_parameters is not None:
            with mlflow.start_run(nested=True, tags={"lead2value.step": "00_data"}):
                mlflow.log_params(data_parameters)
        with mlflow.start_run(nested=True, tags={"lead2value.step": "03_lead_model"}):
            uri = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle").model_uri
    version = mlflow.register_model(uri, name).version
    crown(name, version)
    return str(version)


def forget_module(monkeypatch, tmp_path):
    sys.modules.pop("lead2value_legacy_model", None)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])


def test_a_legacy_champion_that_no_longer_loads_is_replaced_under_the_upgrade_rule(names, tmp_path, unloadable,
                                                                                     monkeypatch):
    name_lead_scoring = names("lead_scoring")
    monkeypatch.setitem(registry.LEGACY_SOURCE_PARAMETERS, name_lead_scoring,
                        registry.LEGACY_SOURCE_PARAMETERS["lead_scoring"])
    X, y, model = unloadable
    old = legacy_version(name_lead_scoring, model, X, {"leads_path": "synthetic", "n_leads": 400})
    forget_module(monkeypatch, tmp_path)
    champion = registry.champion_for_gate(name_lead_scoring, Holdout(X, y, "all"), rule())
    assert champion.version == old and not champion.scored
    assert "it cannot be loaded: ModuleNotFoundError" in champion.problem
    assert champion.source.kind == gate.SYNTHETIC and "00_data parameters" in champion.source.inferred
    decision = register(name_lead_scoring, fit(X, y), X, Holdout(X.iloc[300:], y[300:], "latest 25%"), SYNTHETIC,
                        tmp_path / "m.json")
    assert decision["promote"] and decision["rule"] == "upgrade"
    assert "cannot score it (it cannot be loaded: ModuleNotFoundError" in decision["reason"]


def test_a_legacy_champion_of_your_data_or_untraced_is_not_replaced_by_a_synthetic_model(names, tmp_path, unloadable,
                                                                                           monkeypatch):
    name_clv = names("clv")
    name_lead_scoring = names("lead_scoring")
    monkeypatch.setitem(registry.LEGACY_SOURCE_PARAMETERS, name_clv, registry.LEGACY_SOURCE_PARAMETERS["clv"])
    monkeypatch.setitem(registry.LEGACY_SOURCE_PARAMETERS, name_lead_scoring,
                        registry.LEGACY_SOURCE_PARAMETERS["lead_scoring"])
    X, y, model = unloadable
    legacy_version(name_lead_scoring, model, X, {"leads_path": "/data/leads.csv"})
    forget_module(monkeypatch, tmp_path)
    traced = register(name_lead_scoring, fit(X, y), X, Holdout(X.iloc[300:], y[300:], "latest"), SYNTHETIC,
                      tmp_path / "a.json")
    assert not traced["promote"] and traced["rule"] == "synthetic_never_replaces"
    assert "your file leads.csv" in traced["champion_source"]
    legacy_version(name_clv, fit(X, y), X, None)  # registered by hand: no run_all.py parent, nothing to trace
    untraced = register(name_clv, fit(X, y), X, Holdout(X.iloc[300:], y[300:], "latest"), SYNTHETIC,
                        tmp_path / "b.json")
    assert not untraced["promote"] and untraced["champion_kind"] == gate.UNKNOWN
    mine = register(name_clv, fit(X, y), X, Holdout(X.iloc[300:], y[300:], "latest"), YOURS, tmp_path / "c.json")
    assert mine["promote"] and mine["rule"] == "user_replaces_untraced"


def test_serving_uri_follows_the_record_else_the_champion_alias(tmp_path):
    assert registry.serving_model_uri("clv", tmp_path / "absent.json") == "models:/clv@champion"
    assert registry.serving_model_uri("clv") == "models:/clv@champion"
    older = tmp_path / "older.json"  # a record written before the gate said what it serves
    older.write_text(json.dumps({"name": "clv", "version": "4", "promote": False, "champion_version": "2",
                                 "reason": "worse"}))
    assert registry.serving_model_uri("clv", older) == "models:/clv/2"
    assert registry.serving_summary("clv", older) == "serving clv v2 (worse)"


def test_without_a_gate_record_the_run_serves_the_current_champion(names, tmp_path):
    name_m = names("m")
    X, y = data()
    first = register(name_m, fit(X, y), X, Holdout(X.iloc[300:], y[300:], "latest"), SYNTHETIC, tmp_path / "m.json")
    crown(name_m, first["version"])
    assert registry.serving_summary(name_m, tmp_path / "absent.json") == (
        f"serving {name_m} v{first['version']}, the current champion (no gate decision in this run folder)")


def test_no_champion_loads_as_none(store):
    assert registry.champion_version("nobody") is None and registry.load_champion("nobody") is None
    assert registry.champion_for_gate("nobody", Holdout(pd.DataFrame({"a": [1]}), [1], "x"), rule()) is None


def test_champion_score_on_the_same_holdout_or_none():
    X, y = data(n=60, seed=1)
    champion = LogisticRegression().fit(X, y)
    assert registry.champion_score(None, X, y, roc_auc_score, proba) is None
    assert registry.champion_score(champion, X[["a"]], y, roc_auc_score, proba) is None
    assert registry.champion_score(champion, X.assign(extra=1), y, roc_auc_score, proba) == pytest.approx(
        roc_auc_score(y, proba(champion, X)))
