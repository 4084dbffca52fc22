"""NamedScore: one named score column from any fitted estimator; unwrap gives the estimator back."""
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from utils.core.serving import NamedScore, unwrap


def frame(n: int = 40) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)}, index=np.arange(100, 100 + n))
    return X, (X["a"] > 0).astype(int).to_numpy()


def test_classifier_probability_of_class_one_under_its_name():
    X, y = frame()
    model = LogisticRegression().fit(X, y)
    out = NamedScore(model, "p_yes", "predict_proba").predict(X)
    assert list(out.columns) == ["p_yes"] and list(out.index) == list(X.index)
    np.testing.assert_allclose(out["p_yes"], model.predict_proba(X)[:, 1])
    np.testing.assert_allclose(NamedScore(model, "p", "predict_proba").predict_proba(X), model.predict_proba(X))


def test_regressor_prediction_under_its_name():
    X, y = frame()
    model = LinearRegression().fit(X, y * 10.0)
    out = NamedScore(model, "value").predict(X)
    np.testing.assert_allclose(out["value"], model.predict(X))
    assert list(NamedScore(model, "value").feature_names_in_) == ["a", "b"]


def test_more_than_two_columns_is_refused():
    class ThreeWay:
        def predict_proba(self, X):
            return np.full((len(X), 3), 1 / 3)

    with pytest.raises(ValueError, match="shape"):
        NamedScore(ThreeWay(), "p", "predict_proba").predict(frame()[0])


def test_unwrap_gives_the_estimator_and_leaves_others_alone():
    X, y = frame()
    model = LogisticRegression().fit(X, y)
    assert unwrap(NamedScore(model, "p")) is model
    assert unwrap(model) is model
