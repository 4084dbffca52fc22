"""What a registered model answers: one named score column, whoever asks.

MLflow's scikit-learn flavour serves ``predict`` (or ``predict_proba``) as it is: an
unnamed array, two unlabelled probability columns for a classifier. :class:`NamedScore`
wraps a fitted estimator so that ``predict`` returns a one-column DataFrame named after
the score (``p_app_complete``, ``predicted_clv``), the same through pyfunc, Spark and
``mlflow models serve``. The fitted estimator stays reachable as ``.estimator`` with its
own ``predict`` and ``predict_proba`` (:func:`unwrap`), for the promotion gate.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator


class NamedScore(BaseEstimator):
    """A fitted estimator whose ``predict`` gives one named float column.

    ``method`` is the estimator's method that scores (``predict``, ``predict_proba``);
    a two-column answer (class probabilities) gives its second column, P(class 1).
    """

    def __init__(self, estimator: Any, score_column: str, method: str = "predict"):
        self.estimator = estimator
        self.score_column = score_column
        self.method = method

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        values = np.asarray(getattr(self.estimator, self.method)(X), dtype="float64")
        if values.ndim == 2 and values.shape[1] in (1, 2):
            values = values[:, -1]
        elif values.ndim != 1:
            raise ValueError(f"{type(self.estimator).__name__}.{self.method} gave shape {values.shape}: "
                             f"expected one score or two class probabilities per row")
        return pd.DataFrame({self.score_column: values}, index=getattr(X, "index", None))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(X)

    @property
    def feature_names_in_(self) -> np.ndarray:
        return self.estimator.feature_names_in_


def unwrap(model: Any) -> Any:
    """The fitted estimator inside a :class:`NamedScore` (or ``model`` itself, e.g. one logged before it existed).

    By attribute, not by class: a model unpickled by value has a class of its own.
    """
    return model.estimator if hasattr(model, "score_column") and hasattr(model, "estimator") else model
