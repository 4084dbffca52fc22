"""CLV models: baselines, a two-part hurdle model, honest time-ordered tuning, MLflow logging.

Most new customers either never come back or come back and spend a lot, so one model
for both is a poor fit. The hurdle model splits the question: P(spend > 0) times the
expected spend of those who do spend. Both parts start from a small linear model on
log first-window revenue (the strongest single signal, and smooth in it, so its fine
ordering survives) and gradient-boosted trees add what the other features know.
"""
from __future__ import annotations

import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline

from utils.clv.metrics import normalized_gini, spearman
from utils.core.splits import time_split as _time_split

NAIVE_FEATURE = "window_revenue"  # the first-window revenue, used as its own forecast

# Where random search looks; trial 0 is always the estimator's defaults.
SEARCH_SPACE = {
    "n_estimators_clf": [0, 25, 50, 100, 200, 400],
    "n_estimators_reg": [0, 25, 50, 100, 200, 400],
    "learning_rate": [0.02, 0.05],
    "num_leaves": [3, 4, 7, 15],
    "min_child_samples": [20, 50, 100],
    "reg_lambda": [1.0, 5.0, 20.0],
}


class HurdleCLV(RegressorMixin, BaseEstimator):
    """Expected revenue = P(spend > 0) x E[spend | spend > 0], one scikit-learn estimator.

    Classifier: logistic regression on log1p(``base_feature``), boosted by LightGBM
    (``n_estimators_clf`` trees; 0 = the logistic alone). Amount: linear regression of
    log spend on the same, boosted the same way (``n_estimators_reg``), back-transformed
    with Duan's smearing factor (mean of exp(residual)), since exp(E[log y]) < E[y].
    Takes a DataFrame; columns are picked by name, so extra columns are ignored.
    """

    def __init__(self, base_feature: str | None = NAIVE_FEATURE, n_estimators_clf: int = 50,
                 n_estimators_reg: int = 0, learning_rate: float = 0.03, num_leaves: int = 4,
                 min_child_samples: int = 50, reg_lambda: float = 5.0, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, random_state: int = 42):
        self.base_feature = base_feature
        self.n_estimators_clf = n_estimators_clf
        self.n_estimators_reg = n_estimators_reg
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y) -> HurdleCLV:
        X = self._check_frame(X, fitting=True)
        y = np.asarray(y, dtype="float64")
        if len(y) != len(X) or np.isnan(y).any():
            raise ValueError("HurdleCLV.fit: y must be as long as X and hold no NaN")
        spends = y > 0
        base = self._base(X)
        self.p_base_ = _ConstantOr(LogisticRegression(C=1.0)).fit(base, spends)
        self.clf_ = self._boost(lgb.LGBMClassifier, self.n_estimators_clf, X, spends,
                                self.p_base_.decision(base), min_classes=2)
        if spends.sum() < 2:
            raise ValueError("HurdleCLV.fit: fewer than 2 customers spent anything; nothing to learn amounts from")
        log_spend = np.log(y[spends])
        self.amount_base_ = LinearRegression().fit(base[spends], log_spend)
        self.reg_ = self._boost(lgb.LGBMRegressor, self.n_estimators_reg, X[spends], log_spend,
                                self.amount_base_.predict(base[spends]))
        residual = log_spend - self._log_amount(X[spends], base[spends])
        self.smearing_ = float(np.mean(np.exp(residual)))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        parts = self.predict_parts(X)
        return (parts["p_spend"] * parts["spend_if_any"]).to_numpy()

    def predict_parts(self, X: pd.DataFrame) -> pd.DataFrame:
        """The two factors: probability of any spend, and the expected spend if so."""
        X = self._check_frame(X)
        base = self._base(X)
        logit = self.p_base_.decision(base)
        if self.clf_ is not None:
            logit = logit + self.clf_.predict(X, raw_score=True)
        amount = np.exp(self._log_amount(X, base)) * self.smearing_
        return pd.DataFrame({"p_spend": expit(logit), "spend_if_any": amount}, index=X.index)

    def importance_table(self) -> pd.DataFrame:
        """Gain of each feature in each part (0 where a part has no trees)."""
        table = pd.DataFrame({"feature": self.feature_names_in_})
        for part, model in (("p_spend", self.clf_), ("spend_if_any", self.reg_)):
            gain = model.booster_.feature_importance("gain") if model is not None else np.zeros(len(table))
            table[part] = gain / gain.sum() if gain.sum() > 0 else 0.0
        return table

    # -- internals --
    def _check_frame(self, X, fitting: bool = False) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("HurdleCLV expects a pandas DataFrame with named feature columns")
        if fitting:
            self.feature_names_in_ = np.array([str(c) for c in X.columns], dtype=object)
            self.n_features_in_ = len(self.feature_names_in_)
        if self.base_feature is not None and self.base_feature not in self.feature_names_in_:
            raise ValueError(f"HurdleCLV: base_feature '{self.base_feature}' is not among the features")
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"HurdleCLV: missing feature columns {missing[:5]}")
        return X[list(self.feature_names_in_)].astype("float64")

    def _base(self, X: pd.DataFrame) -> np.ndarray:
        if self.base_feature is None:
            return np.zeros((len(X), 1))
        return np.log1p(X[[self.base_feature]].clip(lower=0).fillna(0).to_numpy())

    def _boost(self, model_class, n_estimators, X, y, init_score, min_classes: int = 1):
        if n_estimators == 0 or len(np.unique(y)) < min_classes:
            return None
        model = model_class(
            n_estimators=n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples, reg_lambda=self.reg_lambda,
            subsample=self.subsample, subsample_freq=1, colsample_bytree=self.colsample_bytree,
            random_state=self.random_state, n_jobs=1, verbose=-1,
        )
        return model.fit(X, y, init_score=init_score)

    def _log_amount(self, X, base) -> np.ndarray:
        log_amount = self.amount_base_.predict(base)
        if self.reg_ is not None:
            log_amount = log_amount + self.reg_.predict(X)
        return log_amount


class _ConstantOr:
    """A logistic regression that degrades to a constant when only one class is seen."""

    def __init__(self, model):
        self.model = model

    def fit(self, base, labels):
        self.constant_ = None
        if len(np.unique(labels)) < 2:
            self.constant_ = 20.0 if labels.all() else -20.0
        else:
            self.model.fit(base, labels)
        return self

    def decision(self, base) -> np.ndarray:
        if self.constant_ is not None:
            return np.full(len(base), self.constant_)
        return self.model.decision_function(base)


# --- baselines --------------------------------------------------------------------------------


class OrderedForest(RandomForestRegressor):
    """A random forest that fits on every core but predicts on one.

    scikit-learn sums the trees' predictions in whatever order its threads finish, so a
    multi-threaded predict differs between runs in the last bits; one thread adds them in
    one order, and reruns stay bit-identical. Fitting stays parallel: each tree has its own seed.
    """

    def predict(self, X):
        n_jobs = self.n_jobs
        self.n_jobs = 1
        try:
            return super().predict(X)
        finally:
            self.n_jobs = n_jobs


def make_random_forest(n_estimators: int = 300, random_state: int = 42) -> Pipeline:
    """The classic baseline: a random forest on every feature (median-imputed)."""
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("forest", OrderedForest(n_estimators=n_estimators, random_state=random_state, n_jobs=-1)),
    ])


def baseline_predictions(X: pd.DataFrame, y_train) -> dict[str, np.ndarray]:
    """The two rules no model should lose to: the training mean, and first-window revenue itself."""
    return {
        "baseline": np.full(len(X), float(np.mean(y_train))),
        "naive": X[NAIVE_FEATURE].fillna(0).to_numpy(dtype="float64"),
    }


# --- time split and honest tuning -------------------------------------------------------------


def time_split(df: pd.DataFrame, test_share: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earliest (1 - test_share) of customers by reference date train, the latest test; ties on the
    date are broken by customer_id, so the split never depends on row order (:mod:`utils.core.splits`)."""
    return _time_split(df, "ref_date", test_share, tie_breakers=("customer_id",))


def time_folds(n_rows: int, n_splits: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over rows already sorted by time: fit on the past, check on the next block."""
    edges = np.linspace(0, n_rows, n_splits + 2).astype(int)
    return [(np.arange(edges[i]), np.arange(edges[i], edges[i + 1])) for i in range(1, n_splits + 1)]


def tune_hurdle(X: pd.DataFrame, y, n_trials: int = 20, n_splits: int = 3,
                random_state: int = 42) -> tuple[dict, pd.DataFrame]:
    """Random search on time-ordered folds of the TRAINING part only (rows sorted by time).

    A trial's score is its worst gain over the naive rule (first-window revenue) across
    normalized Gini and Spearman, averaged over folds: a model must beat the naive
    ranking on both counts to be worth its complexity. Returns the best parameters and
    one row per trial.
    """
    y = np.asarray(y, dtype="float64")
    rng = np.random.default_rng(random_state)
    trials = [{}] + [{k: v[rng.integers(len(v))] for k, v in SEARCH_SPACE.items()} for _ in range(n_trials - 1)]
    rows = []
    for number, params in enumerate(trials):
        scores = [_fold_scores(HurdleCLV(random_state=random_state, **params), X, y, fit, check)
                  for fit, check in time_folds(len(X), n_splits)]
        gini_gain, spearman_gain = np.mean(scores, axis=0)
        rows.append({"trial": number, **HurdleCLV(**params).get_params(), "cv_gini_gain": gini_gain,
                     "cv_spearman_gain": spearman_gain, "cv_score": min(gini_gain, spearman_gain)})
    table = pd.DataFrame(rows).drop(columns="random_state")
    best = table.sort_values(["cv_score", "trial"], ascending=[False, True]).iloc[0]
    best_params = {k: _plain(best[k]) for k in HurdleCLV().get_params() if k != "random_state"}
    return best_params, table


def _fold_scores(model, X, y, fit_rows, check_rows) -> tuple[float, float]:
    model.fit(X.iloc[fit_rows], y[fit_rows])
    actual, predicted = y[check_rows], model.predict(X.iloc[check_rows])
    naive = X.iloc[check_rows][NAIVE_FEATURE].fillna(0).to_numpy()
    return (normalized_gini(actual, predicted) - normalized_gini(actual, naive),
            spearman(actual, predicted) - spearman(actual, naive))


def _plain(value):
    """numpy scalars to plain Python, so parameters log and print cleanly."""
    return value.item() if hasattr(value, "item") else value


def plot_importance(model: HurdleCLV, forest: Pipeline | None = None, top: int = 12):
    """Share of gain per feature in each hurdle part (and the forest's impurity share)."""
    table = model.importance_table().set_index("feature")
    table.columns = ["hurdle: P(spend > 0)", "hurdle: spend if any"]
    if forest is not None:
        table["random forest"] = forest.named_steps["forest"].feature_importances_
    table = table.loc[table.max(axis=1).sort_values(ascending=False).index[:top]].iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(table) + 1.5))
    table.plot.barh(ax=ax, width=0.8)
    ax.set_xlabel("share of importance within each model (gain for LightGBM, impurity for the forest)")
    ax.set_ylabel("feature")
    ax.set_title("What the models use (a hurdle part without trees is linear in log first-window revenue)")
    fig.tight_layout()
    return fig
