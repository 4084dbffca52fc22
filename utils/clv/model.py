"""CLV models: baselines, a two-part hurdle model, a product signal, honest time-ordered selection.

Most new customers either never come back or come back and spend a lot, so one model
for both is a poor fit. The hurdle model splits the question: P(spend > 0) times the
expected spend of those who do spend. Both parts start from a small linear model on
log first-window revenue (the strongest single signal, and smooth in it, so its fine
ordering survives) and gradient-boosted trees add what the other features know.

:class:`ProductSignalRegressor` gives any model the cross-fitted product signal of
:mod:`utils.clv.products`, read from the ``window_basket`` column; :class:`TweedieCLV` and
:class:`NaiveCLV` are further candidates. Every candidate is a scikit-learn estimator that
predicts from a feature DataFrame and names the columns it reads in ``feature_names_in_``.
Selection (:func:`select_by_time_cv`), tuning and the burn-in decision
(:func:`burn_in_cv`) run on expanding, time-ordered folds of the TRAINING customers only.
"""
from __future__ import annotations

import time

import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, PoissonRegressor
from sklearn.pipeline import Pipeline

from utils.clv.basket import BASKET_COLUMN, parse_baskets
from utils.clv.metrics import normalized_gini, spearman
from utils.clv.products import ProductSignal
from utils.core.parallel import ordered_map, thread_safe, thread_safe_runs
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


def make_random_forest(n_estimators: int = 300, random_state: int = 42, max_samples: float | None = None,
                       max_features: float = 1 / 3, min_samples_leaf: int = 5) -> Pipeline:
    """The classic baseline: a random forest on every feature (median-imputed).

    ``max_features`` and ``min_samples_leaf``: the classic regression forest's settings
    (Breiman's, and R ``randomForest``'s defaults: a third of the features tried at each split,
    leaves of at least 5 customers), not scikit-learn's defaults (every feature, leaves of 1:
    bagged trees rather than a random forest). On the synthetic shop's training folds they rank
    better (CV Gini 0.595 vs 0.567) at a fifth of the CPU.
    ``max_samples``: each tree grows on a bootstrap sample of that share of the rows (None: as
    many rows as there are, the classic forest). Fully grown trees on half the rows cost about
    half as much, and are less alike, so fewer of them are needed: on the synthetic shop's
    training folds 100 trees on half-size samples rank as 300 full-size ones do (CV Gini and
    Spearman within 0.002) at a fifth of the CPU; with the classic settings too (CV Gini 0.5947
    against 0.5944, Spearman 0.4136 against 0.4138, in 10 s against 48 s).
    """
    if max_samples is not None and not 0 < max_samples <= 1:
        raise ValueError(f"max_samples must be in (0, 1] (a share of the rows) or None, got {max_samples}")
    if not 0 < max_features <= 1:
        raise ValueError(f"max_features must be in (0, 1] (a share of the features), got {max_features}")
    if min_samples_leaf < 1:
        raise ValueError(f"min_samples_leaf must be at least 1, got {min_samples_leaf}")
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("forest", OrderedForest(n_estimators=n_estimators, random_state=random_state, n_jobs=-1,
                                 max_samples=max_samples, max_features=max_features,
                                 min_samples_leaf=min_samples_leaf)),
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
                random_state: int = 42, progress=None) -> tuple[dict, pd.DataFrame]:
    """Random search of :class:`HurdleCLV` on time-ordered folds of the TRAINING part only (rows sorted by time).

    A trial's score is its worst gain over the naive rule (first-window revenue) across
    normalized Gini and Spearman, averaged over folds: a model must beat the naive
    ranking on both counts to be worth its complexity. Returns the best parameters and
    one row per trial.
    """
    defaults = {key: HurdleCLV().get_params()[key] for key in SEARCH_SPACE}
    return random_search(lambda params: HurdleCLV(random_state=random_state, **params), SEARCH_SPACE, defaults,
                         X, y, n_trials, n_splits, random_state, progress)


def random_search(make_model, space: dict[str, list], defaults: dict, X: pd.DataFrame, y, n_trials: int,
                  n_splits: int, random_state: int, progress=None) -> tuple[dict, pd.DataFrame]:
    """Trial 0 is ``defaults``, the others draw each setting of ``space`` at random; every trial is
    scored by :func:`select_by_time_cv` on the same folds. Returns the best trial's settings and
    one row per trial (its settings, CV gains, score)."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    rng = np.random.default_rng(random_state)
    trials = [dict(defaults)] + [{k: _plain(v[rng.integers(len(v))]) for k, v in space.items()}
                                 for _ in range(n_trials - 1)]
    candidates = {f"trial_{i:02d}": make_model(params) for i, params in enumerate(trials)}
    best, scores = select_by_time_cv(candidates, X, y, n_splits, progress=progress)
    table = pd.concat([pd.DataFrame({"trial": range(len(trials))}), pd.DataFrame(trials),
                       scores.drop(columns="model")], axis=1)
    return trials[int(best.split("_")[1])], table


def _plain(value):
    """numpy scalars to plain Python, so parameters log and print cleanly."""
    return value.item() if hasattr(value, "item") else value


def plot_importance(model: HurdleCLV, forest: Pipeline | None = None, top: int = 12, note: str = ""):
    """Share of gain per feature in each hurdle part (and the forest's impurity share); ``note`` ends the title."""
    table = model.importance_table().set_index("feature")
    table.columns = ["hurdle: P(spend > 0)", "hurdle: spend if any"]
    if forest is not None:
        importances = pd.Series(forest.named_steps["forest"].feature_importances_, index=forest.feature_names_in_)
        table["random forest"] = importances.reindex(table.index).fillna(0.0)
    table = table.loc[table.max(axis=1).sort_values(ascending=False).index[:top]].iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(table) + 1.5))
    table.plot.barh(ax=ax, width=0.8)
    ax.set_xlabel("share of importance within each model (gain for LightGBM, impurity for the forest)")
    ax.set_ylabel("feature")
    ax.set_title("What the models use (a hurdle part without trees is linear in log first-window revenue)"
                 + (f"\n{note}" if note else ""))
    fig.tight_layout()
    return fig


# --- more candidates --------------------------------------------------------------------------


class ProductSignalRegressor(RegressorMixin, BaseEstimator):
    """``estimator`` fitted on X's features plus the product signal of X's ``window_basket`` column.

    In ``fit`` the signal of the fitted customers is cross-fitted (their own targets never reach
    their own signal); in ``predict`` it comes from every fitted customer (see
    :class:`utils.clv.products.ProductSignal`). The wrapped estimator sees the other columns of X
    and the signal columns, never the basket text.
    """

    def __init__(self, estimator, smoothing: float = 20.0, n_folds: int = 5, base_feature: str | None = NAIVE_FEATURE,
                 random_state: int = 42, basket_column: str = BASKET_COLUMN):
        self.estimator = estimator
        self.smoothing = smoothing
        self.n_folds = n_folds
        self.base_feature = base_feature
        self.random_state = random_state
        self.basket_column = basket_column

    def fit(self, X: pd.DataFrame, y) -> ProductSignalRegressor:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ProductSignalRegressor expects a pandas DataFrame with named columns")
        for column in (self.basket_column, self.base_feature):
            if column is not None and column not in X.columns:
                raise ValueError(f"ProductSignalRegressor: X has no column '{column}'")
        self.feature_names_in_ = np.array([str(c) for c in X.columns], dtype=object)
        y = np.asarray(y, dtype="float64")
        if len(y) != len(X):
            raise ValueError(f"ProductSignalRegressor.fit: y has {len(y)} values, X {len(X)} rows")
        base = None if self.base_feature is None else X[self.base_feature].to_numpy(dtype="float64")
        self.signal_ = ProductSignal(self.smoothing, self.n_folds, self.random_state)
        signals = self.signal_.fit_transform(parse_baskets(X[self.basket_column]), y, base)
        self.estimator_ = clone(self.estimator).fit(self._join(X, signals), y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"ProductSignalRegressor: missing feature columns {missing[:5]}")
        X = X[list(self.feature_names_in_)]
        signals = self.signal_.transform(parse_baskets(X[self.basket_column]), len(X))
        return self.estimator_.predict(self._join(X, signals))

    def _join(self, X: pd.DataFrame, signals: pd.DataFrame) -> pd.DataFrame:
        features = X.drop(columns=self.basket_column).reset_index(drop=True)
        return pd.concat([features, signals.reset_index(drop=True)], axis=1).set_axis(X.index, axis=0)


class TweedieCLV(RegressorMixin, BaseEstimator):
    """LightGBM (Tweedie loss, log link) boosted from a Poisson GLM on log1p(``base_feature``).

    One loss for the point mass at zero and the heavy tail; the GLM gives every customer a
    smooth, monotone start in first-window revenue (the strongest single signal), the trees add
    what the other features know.
    """

    def __init__(self, base_feature: str | None = NAIVE_FEATURE, n_estimators: int = 200,
                 learning_rate: float = 0.03, num_leaves: int = 7, min_child_samples: int = 40,
                 reg_lambda: float = 5.0, subsample: float = 0.8, colsample_bytree: float = 0.7,
                 variance_power: float = 1.5, random_state: int = 42):
        self.base_feature = base_feature
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.variance_power = variance_power
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y) -> TweedieCLV:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("TweedieCLV expects a pandas DataFrame with named feature columns")
        y = np.asarray(y, dtype="float64")
        if len(y) != len(X) or np.isnan(y).any():
            raise ValueError("TweedieCLV.fit: y must be as long as X and hold no NaN")
        y = np.clip(y, 0, None)  # a net refund over the horizon is no negative value to aim at
        if y.sum() <= 0:
            raise ValueError("TweedieCLV.fit: no customer spent anything")
        self.feature_names_in_ = np.array([str(c) for c in X.columns], dtype=object)
        if self.base_feature is not None and self.base_feature not in self.feature_names_in_:
            raise ValueError(f"TweedieCLV: base_feature '{self.base_feature}' is not among the features")
        base = self._base(X)
        self.scale_ = float(y.mean())
        self.glm_ = PoissonRegressor(alpha=1e-6, max_iter=1000).fit(base, y / self.scale_)
        self.booster_ = None
        if self.n_estimators > 0:
            self.booster_ = lgb.LGBMRegressor(
                objective="tweedie", tweedie_variance_power=self.variance_power, n_estimators=self.n_estimators,
                learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                min_child_samples=self.min_child_samples, reg_lambda=self.reg_lambda, subsample=self.subsample,
                subsample_freq=1, colsample_bytree=self.colsample_bytree, random_state=self.random_state,
                n_jobs=1, verbose=-1,
            ).fit(X[list(self.feature_names_in_)].astype("float64"), y, init_score=self._init(base))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"TweedieCLV: missing feature columns {missing[:5]}")
        raw = self._init(self._base(X))
        if self.booster_ is not None:
            raw = raw + self.booster_.predict(X[list(self.feature_names_in_)].astype("float64"), raw_score=True)
        return np.exp(raw)

    def _base(self, X: pd.DataFrame) -> np.ndarray:
        if self.base_feature is None:
            return np.zeros((len(X), 1))
        return np.log1p(X[[self.base_feature]].clip(lower=0).fillna(0).to_numpy(dtype="float64"))

    def _init(self, base: np.ndarray) -> np.ndarray:
        return np.log(self.scale_) + self.glm_.intercept_ + base @ self.glm_.coef_


class NaiveCLV(RegressorMixin, BaseEstimator):
    """The naive rule as an estimator: the first-window revenue is the forecast (nothing is learnt)."""

    def __init__(self, feature: str = NAIVE_FEATURE):
        self.feature = feature

    def fit(self, X: pd.DataFrame, y=None) -> NaiveCLV:
        if self.feature not in X.columns:
            raise ValueError(f"NaiveCLV: no column '{self.feature}'")
        self.feature_names_in_ = np.array([self.feature], dtype=object)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.feature not in X.columns:
            raise ValueError(f"NaiveCLV: no column '{self.feature}'")
        return X[self.feature].fillna(0).to_numpy(dtype="float64")


# The hurdle with every feature and the product signal; trial 0 of its search is ENRICHED_DEFAULTS.
ENRICHED_DEFAULTS = {"n_estimators_clf": 50, "n_estimators_reg": 50, "learning_rate": 0.03, "num_leaves": 4,
                     "min_child_samples": 50, "reg_lambda": 5.0, "smoothing": 20.0}
ENRICHED_SPACE = {
    "n_estimators_clf": [25, 50, 100, 200],
    "n_estimators_reg": [0, 25, 50, 100, 200],
    "learning_rate": [0.02, 0.05],
    "num_leaves": [3, 4, 7, 15],
    "min_child_samples": [20, 50, 100],
    "reg_lambda": [1.0, 5.0, 20.0],
    "smoothing": [10.0, 20.0, 50.0],
}


def make_enriched_hurdle(params: dict | None = None, random_state: int = 42) -> ProductSignalRegressor:
    """HurdleCLV on every feature plus the cross-fitted product signal (X must carry ``window_basket``)."""
    params = {**ENRICHED_DEFAULTS, **(params or {})}
    smoothing = params.pop("smoothing")
    return ProductSignalRegressor(HurdleCLV(random_state=random_state, **params), smoothing=smoothing,
                                  random_state=random_state)


def tune_enriched_hurdle(X: pd.DataFrame, y, n_trials: int = 20, n_splits: int = 3,
                         random_state: int = 42, progress=None) -> tuple[dict, pd.DataFrame]:
    """Random search of :func:`make_enriched_hurdle` on the time-ordered folds of the TRAINING rows."""
    return random_search(lambda params: make_enriched_hurdle(params, random_state), ENRICHED_SPACE,
                         ENRICHED_DEFAULTS, X, y, n_trials, n_splits, random_state, progress)


def inner_hurdle(model) -> HurdleCLV | None:
    """The HurdleCLV inside a candidate (itself, or the one a ProductSignalRegressor wraps), else None."""
    model = getattr(model, "estimator_", model)
    return model if isinstance(model, HurdleCLV) else None


# --- selection on time-ordered folds of the training customers --------------------------------


def select_by_time_cv(candidates: dict, X: pd.DataFrame, y, n_splits: int = 3,
                      columns: dict[str, list[str]] | None = None, progress=None) -> tuple[str, pd.DataFrame]:
    """The candidate with the best CV score, and one row of fold means per candidate.

    ``X`` holds the TRAINING rows sorted by reference date (it must have ``window_revenue``);
    ``columns`` restricts a candidate to some of X's columns. score = min(mean Gini gain,
    mean Spearman gain) over the naive rule on the same folds; ties go to the earlier candidate.
    ``progress`` (e.g. ``print``) is told each candidate's score as it is done.
    """
    y = np.asarray(y, dtype="float64")
    if NAIVE_FEATURE not in X.columns:
        raise ValueError(f"select_by_time_cv: X needs '{NAIVE_FEATURE}' to score the naive rule")
    naive = X[NAIVE_FEATURE].fillna(0).to_numpy(dtype="float64")
    folds = time_folds(len(X), n_splits)
    reads = {name: tuple((columns or {}).get(name, X.columns)) for name in candidates}
    by_columns = {cols: X[list(cols)] for cols in set(reads.values())}  # one copy per column set, not per candidate
    frames = {name: by_columns[cols] for name, cols in reads.items()}

    def fold(task):
        name, (fit, check) = task
        started = time.perf_counter()
        return _fold_scores(candidates[name], frames[name], y, naive, fit, check), time.perf_counter() - started

    rows = []
    for names, workers in thread_safe_runs(candidates):
        done = ordered_map(fold, [(name, f) for name in names for f in folds], workers)
        for name in names:
            results = [next(done) for _ in folds]
            scores = np.array([scored for scored, _ in results])
            gini_gain, spearman_gain = scores[:, 0] - scores[:, 2], scores[:, 1] - scores[:, 3]
            rows.append({"model": name, "cv_gini": scores[:, 0].mean(), "cv_spearman": scores[:, 1].mean(),
                         "cv_gini_gain": gini_gain.mean(), "cv_spearman_gain": spearman_gain.mean(),
                         "cv_worst_fold_gini_gain": gini_gain.min(),
                         "seconds": sum(seconds for _, seconds in results)})
            if progress is not None:
                score = min(rows[-1]["cv_gini_gain"], rows[-1]["cv_spearman_gain"])
                progress(f"  {name}: CV score {score:+.4f} ({rows[-1]['seconds']:.1f} s)")
    table = pd.DataFrame(rows)
    table["cv_score"] = table[["cv_gini_gain", "cv_spearman_gain"]].min(axis=1)
    best = table.sort_values("cv_score", ascending=False, kind="stable").iloc[0]["model"]
    return str(best), table


def _fold_scores(model, X: pd.DataFrame, y: np.ndarray, naive: np.ndarray, fit_rows, check_rows) -> tuple:
    """(Gini, Spearman) of the model and of the naive rule on one check block."""
    predicted = clone(model).fit(X.iloc[fit_rows], y[fit_rows]).predict(X.iloc[check_rows])
    actual = y[check_rows]
    return (normalized_gini(actual, predicted), spearman(actual, predicted),
            normalized_gini(actual, naive[check_rows]), spearman(actual, naive[check_rows]))


# --- left-censored customers at the start of the data -----------------------------------------


def days_after_start(ref_dates: pd.Series, data_start: pd.Timestamp) -> np.ndarray:
    """How many days after the first event of the data each reference date falls."""
    return ((pd.to_datetime(ref_dates) - pd.Timestamp(data_start)) / pd.Timedelta(days=1)).to_numpy(dtype="float64")


def burn_in_cv(model, X: pd.DataFrame, y, ref_dates: pd.Series, data_start: pd.Timestamp,
               candidates: list[int], n_splits: int = 3) -> tuple[int, pd.DataFrame]:
    """Which burn-in (days after the data start whose customers are left out of training) helps, by CV.

    A log that starts on a given day shows an existing customer's first purchase *in the file*
    as a "first purchase": those customers cannot be told from new ones. The check blocks are
    time-ordered folds over the customers past the longest candidate burn-in only (new
    customers, the kind the model will score); for each candidate the fit set is every earlier
    customer whose reference date lies at least that many days after the data start. So the
    candidates differ only in whether the early customers are learnt from, and are judged on
    the same customers. ``X`` holds the TRAINING rows sorted by reference date.

    Leaving customers out throws data away, so the rule is conservative: a burn-in is only
    eligible if it beats no burn-in (0 days) on BOTH Gini and Spearman in EVERY fold; among the
    eligible (and 0) the best CV score (as in :func:`select_by_time_cv`) wins, ties to the shorter.
    Returns the chosen days and one row per candidate.
    """
    y = np.asarray(y, dtype="float64")
    candidates = sorted({0, *(int(c) for c in candidates)})
    if candidates[0] < 0:
        raise ValueError(f"burn_in_cv: candidates must be days >= 0, got {candidates}")
    after = days_after_start(ref_dates, data_start)
    if len(after) != len(X) or np.any(np.diff(after) < 0):
        raise ValueError("burn_in_cv: X must hold the training rows sorted by reference date, one date per row")
    eligible = np.flatnonzero(after >= candidates[-1])
    if len(eligible) < 10 * (n_splits + 1):
        raise ValueError(f"burn_in_cv: only {len(eligible)} training customers arrive {candidates[-1]} days or more "
                         f"after the data start; too few to judge a burn-in (shorten the candidates)")
    naive = X[NAIVE_FEATURE].fillna(0).to_numpy(dtype="float64")
    folds = time_folds(len(eligible), n_splits)

    def fold(task):
        days, check_positions = task
        check_rows = eligible[check_positions]
        fit_rows = np.flatnonzero((np.arange(len(X)) < check_rows[0]) & (after >= days))
        return _fold_scores(model, X, y, naive, fit_rows, check_rows)

    done = ordered_map(fold, [(days, check) for days in candidates for _, check in folds],
                       None if thread_safe(model) else 1)
    scores = {days: np.asarray([next(done) for _ in folds]) for days in candidates}
    rows = []
    for days, s in scores.items():
        base = scores[0]
        beats = int(((s[:, 0] > base[:, 0]) & (s[:, 1] > base[:, 1])).sum())
        rows.append({"burn_in_days": days, "training_customers_excluded": int((after < days).sum()),
                     "cv_gini": s[:, 0].mean(), "cv_spearman": s[:, 1].mean(),
                     "cv_gini_gain": (s[:, 0] - s[:, 2]).mean(), "cv_spearman_gain": (s[:, 1] - s[:, 3]).mean(),
                     "folds_better_than_none": beats})
    table = pd.DataFrame(rows)
    table["cv_score"] = table[["cv_gini_gain", "cv_spearman_gain"]].min(axis=1)
    table["eligible"] = (table["burn_in_days"] == 0) | (table["folds_better_than_none"] == n_splits)
    best = int(table[table["eligible"]].sort_values("cv_score", ascending=False, kind="stable")
               .iloc[0]["burn_in_days"])
    table["chosen"] = table["burn_in_days"] == best
    return best, table


def predict_own_columns(model, X: pd.DataFrame) -> np.ndarray:
    """``model.predict`` on the columns the model names (``feature_names_in_``), whatever else X holds:
    one holdout frame then serves candidates and champions that read different columns."""
    needed = getattr(model, "feature_names_in_", None)
    return model.predict(X if needed is None else X[list(needed)])
