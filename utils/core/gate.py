"""The promotion gate: when may a newly trained model replace the champion, and what does a run serve.

Pure rules, no MLflow: :mod:`utils.core.registry` gathers the facts (the champion's
lineage, whether this version of the project can load it, its predictions on the
candidate's holdout), calls :func:`decide` and records the decision; only the runner moves
the alias, after the whole run succeeded (:mod:`utils.pipeline.promotions`).

**Same kind of data.** A model is trained on ``synthetic`` data (the project's generators)
or on ``user`` data (your files); a version registered without lineage tags whose data
cannot be traced is ``unknown``. Two models are compared only when both were trained on
the same kind of data, and the comparison is on the *candidate's* holdout, row by row.

The rules, first match wins (``RULES`` holds their names, the README their table):

=========================  ===============================================  ==========  ===========
rule                       when                                             promote     run serves
=========================  ===============================================  ==========  ===========
synthetic_never_replaces   candidate synthetic, champion user or unknown    no          candidate
too_little_evidence        holdout smaller than the minimum                 no          champion if
                                                                                        comparable
no_champion                no champion yet                                  yes         candidate
user_replaces_synthetic    candidate user, champion synthetic               yes         candidate
user_replaces_untraced     candidate user, champion unknown                 yes         candidate
upgrade                    champion of the same kind and source, but this   yes         candidate
                           version of the project cannot load or score it
not_comparable             champion of the same kind, another source, and   no          candidate
                           it cannot be scored on this holdout
paired_comparison          same kind, both scored on the same rows          if not      champion if
                                                                            worse       not promoted
=========================  ===============================================  ==========  ===========

**Not worse beyond the noise.** The paired comparison bootstraps the holdout rows and
computes the metric difference (candidate minus champion) on each resample, both models
on the same rows, so the noise the two share cancels. The candidate is promoted when the
lower end of the ``level`` interval of the difference is above ``-margin``: the data rule
out a loss larger than ``margin``. A retrained model is expected to be fresher, so a tie
goes to it; a holdout too small to rule out a real loss keeps the champion. Never a strict
``>`` on point estimates.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from utils.core.parallel import map_resamples

SYNTHETIC, USER, UNKNOWN = "synthetic", "user", "unknown"
KINDS = (SYNTHETIC, USER, UNKNOWN)
RULES = ("synthetic_never_replaces", "too_little_evidence", "no_champion", "user_replaces_synthetic",
         "user_replaces_untraced", "upgrade", "not_comparable", "paired_comparison")


@dataclass(frozen=True)
class GateRule:
    """How a model is judged: ``metric(y, predict(model, X))`` on the holdout, and what counts as enough."""

    metric_name: str  # the metric's key, e.g. "lead.auc_test"
    metric: Callable[[Any, Any], float]
    predict: Callable[[Any, Any], Any]
    margin: float  # the largest loss of the metric tolerated for a fresher model
    min_rows: int  # fewer holdout rows: too little evidence to promote
    min_rows_parameter: str = "min_holdout_rows"  # the notebook parameter that set min_rows, for the message
    n_bootstrap: int = 1000
    level: float = 0.95
    higher_is_better: bool = True
    random_state: int = 42

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"the gate's margin must be >= 0, got {self.margin}")
        if self.min_rows < 1:
            raise ValueError(f"{self.min_rows_parameter} must be >= 1, got {self.min_rows}")
        if self.n_bootstrap < 10:
            raise ValueError(f"n_bootstrap must be >= 10 for a paired comparison, got {self.n_bootstrap}")
        if not 0 < self.level < 1:
            raise ValueError(f"the interval level must be between 0 and 1, got {self.level}")


@dataclass(frozen=True)
class Holdout:
    """The rows a candidate is judged on, and how they were chosen (the definition recorded with the model)."""

    X: pd.DataFrame
    y: Any
    definition: str  # e.g. "latest 20% of leads_clean by created_date"
    dates: Sequence | None = None  # the rows' dates, for the period

    @property
    def rows(self) -> int:
        return len(self.X)

    @property
    def period(self) -> str | None:
        if self.dates is None or len(self.dates) == 0:
            return None
        dates = pd.to_datetime(pd.Series(self.dates))
        return f"{dates.min():%Y-%m-%d} .. {dates.max():%Y-%m-%d}"

    @property
    def sha256(self) -> str:
        """Content hash of the rows and their outcomes: two versions with the same hash were judged on the same rows."""
        digest = hashlib.sha256(pd.util.hash_pandas_object(self.X.reset_index(drop=True), index=False).to_numpy())
        digest.update(np.ascontiguousarray(np.asarray(self.y, dtype="float64")).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"definition": self.definition, "rows": self.rows, "period": self.period, "sha256": self.sha256}


@dataclass(frozen=True)
class Source:
    """The data a model was trained on, as far as the registry knows."""

    kind: str  # synthetic | user | unknown
    source: str = ""  # the generator, or the user's file (path)
    sha256: str | None = None  # of the user's file (or of the table the generator wrote)
    description: str = ""
    inferred: str = ""  # how the kind was found for a version registered without lineage tags

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown data kind {self.kind!r}: one of {', '.join(KINDS)}")

    def same_source(self, other: Source) -> bool:
        """Same kind and the same origin: the project's generator, or the same file (same path or same bytes)."""
        if self.kind != other.kind or self.kind == UNKNOWN:
            return False
        if self.kind == SYNTHETIC:
            return True
        return bool(self.source and self.source == other.source) or bool(self.sha256 and self.sha256 == other.sha256)

    def label(self) -> str:
        return self.description or (f"{self.kind} data" + (f" ({self.source})" if self.source else ""))


@dataclass(frozen=True)
class Champion:
    """The champion as the gate found it, and its predictions on the candidate's holdout (None: it could not score)."""

    version: str
    source: Source
    predictions: Any = None
    problem: str = ""  # why it could not score the holdout (cannot be loaded, needs other columns)

    @property
    def scored(self) -> bool:
        return self.predictions is not None


@dataclass(frozen=True)
class Decision:
    promote: bool
    rule: str
    reason: str
    serves: str  # "candidate" or "champion"
    score: float  # the candidate's metric on the holdout
    champion_score: float | None = None  # the champion's, on the same rows
    difference: dict | None = None  # paired bootstrap of candidate minus champion

    @property
    def serves_champion(self) -> bool:
        return self.serves == "champion"


def paired_bootstrap(y: Any, candidate: Any, champion: Any, metric: Callable[[Any, Any], float],
                     n_bootstrap: int = 1000, level: float = 0.95, random_state: int = 42,
                     higher_is_better: bool = True) -> dict[str, float]:
    """Interval of ``metric(candidate) - metric(champion)`` by resampling rows, both scored on the same resample.

    Signed so that a positive difference favours the candidate (for a lower-is-better metric the
    sign is flipped). Resamples on which the metric is undefined (one class only) are skipped;
    fewer than half usable is an error, not an interval.
    """
    y, candidate, champion = (np.asarray(a) for a in (y, candidate, champion))
    if not len(y) == len(candidate) == len(champion):
        raise ValueError(f"paired_bootstrap: {len(y)} outcomes, {len(candidate)} and {len(champion)} predictions")
    sign = 1.0 if higher_is_better else -1.0

    def difference(idx: np.ndarray) -> float | None:
        try:
            return sign * (metric(y[idx], candidate[idx]) - metric(y[idx], champion[idx]))
        except ValueError:
            return None

    rng = np.random.default_rng(random_state)
    diffs = [d for d in map_resamples(difference, len(y), n_bootstrap, rng) if d is not None]
    if len(diffs) < n_bootstrap / 2:
        raise ValueError(f"paired_bootstrap: the metric is undefined on {n_bootstrap - len(diffs)} of {n_bootstrap} "
                         f"resamples of {len(y)} rows: too few rows to compare")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return {"estimate": sign * (metric(y, candidate) - metric(y, champion)), "low": float(low), "high": float(high),
            "level": level, "resamples": len(diffs)}


def decide(candidate: Source, candidate_predictions: Any, holdout: Holdout, rule: GateRule,
           champion: Champion | None) -> Decision:
    """Apply the rules of this module's table, in order; the reason says which rule decided and why."""
    score = float(rule.metric(holdout.y, candidate_predictions))
    champion_score = float(rule.metric(holdout.y, champion.predictions)) if champion and champion.scored else None
    fig = f"{rule.metric_name} {score:.4f} on {holdout.rows:,} holdout rows"

    def decision(promote: bool, name: str, reason: str, difference: dict | None = None) -> Decision:
        comparable = champion is not None and champion.scored and champion.source.kind == candidate.kind
        serves = "champion" if not promote and comparable else "candidate"
        return Decision(promote, name, reason, serves, score, champion_score, difference)

    if champion is not None and candidate.kind == SYNTHETIC and champion.source.kind in (USER, UNKNOWN):
        whose = ("was trained on your data" if champion.source.kind == USER else
                 "has no lineage and its training data cannot be traced (it may be yours)")
        return decision(False, "synthetic_never_replaces",
                        f"champion version {champion.version} {whose} ({champion.source.label()}): a model trained on "
                        f"synthetic data never replaces it; this run serves its own candidate, not promoted")
    if holdout.rows < rule.min_rows:
        return decision(False, "too_little_evidence",
                        f"holdout of {holdout.rows:,} rows is below {rule.min_rows_parameter}={rule.min_rows:,}: "
                        f"too little evidence to promote ({fig})")
    if champion is None:
        return decision(True, "no_champion", f"no champion yet; {fig}")
    if candidate.kind == USER and champion.source.kind == SYNTHETIC:
        compared = f"; the champion scores {champion_score:.4f} on the same rows" if champion_score is not None else ""
        return decision(True, "user_replaces_synthetic",
                        f"a model trained on your data replaces champion version {champion.version}, trained on "
                        f"synthetic data ({fig}{compared})")
    if candidate.kind == USER and champion.source.kind == UNKNOWN:
        return decision(True, "user_replaces_untraced",
                        f"a model trained on your data replaces champion version {champion.version}, whose training "
                        f"data cannot be traced (registered without lineage); {fig}")
    if not champion.scored:
        if candidate.same_source(champion.source):
            return decision(True, "upgrade",
                            f"champion version {champion.version} was trained on the same data source "
                            f"({champion.source.label()}) but this version of the project cannot score it "
                            f"({champion.problem}): replaced under the upgrade rule; {fig}")
        return decision(False, "not_comparable",
                        f"champion version {champion.version} was trained on other data ({champion.source.label()}) "
                        f"and cannot be scored on this holdout ({champion.problem}): it is not replaced merely because "
                        f"it could not be compared; this run serves its own candidate, not promoted")
    try:
        difference = paired_bootstrap(holdout.y, candidate_predictions, champion.predictions, rule.metric,
                                      rule.n_bootstrap, rule.level, rule.random_state, rule.higher_is_better)
    except ValueError as err:
        return decision(False, "too_little_evidence", f"{err} ({fig})")
    difference["margin"] = rule.margin
    promote = difference["low"] > -rule.margin
    interval = (f"difference {difference['estimate']:+.4f}, {rule.level:.0%} interval "
                f"[{difference['low']:+.4f}, {difference['high']:+.4f}] over {difference['resamples']} "
                f"paired resamples")
    verdict = (f"not worse than champion version {champion.version} beyond the margin {rule.margin}" if promote else
               f"may be worse than champion version {champion.version} by more than the margin {rule.margin}")
    return decision(promote, "paired_comparison",
                    f"{verdict}: {rule.metric_name} {score:.4f} vs {champion_score:.4f} on the same "
                    f"{holdout.rows:,} rows, {interval}", difference)
