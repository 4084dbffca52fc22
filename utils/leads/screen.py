"""The pycaret screen: a quick cross-validated look at more model types than the lead model's families.

A second opinion beside :func:`utils.leads.model.compare_families`, with pycaret's own
preprocessing, on a sample of the training leads. :func:`start_candidate_screen` runs it
on a thread of its own (one core) while the notebook fits the lead model on the other.

pycaret is imported with this module, and what its import does to the process is undone
here: it switches matplotlib to Arial, which this machine lacks (hundreds of findfont
warnings in every later plot), so the font settings are put back; it sends every later
warning of the process to its log file, so that is switched off again (the screen's own
warnings still go there: :func:`_pycaret_confined_to_this_thread`); and it opens its debug
log, logs.log, in the working directory (megabytes per screen, growing in the project root
or wherever a notebook runs), which goes nowhere unless the user names a file in
``PYCARET_CUSTOM_LOGGING_PATH``. Imported in the notebook's import cell, the import costs
nothing on a run's critical path: the notebook's kernel does it while the step before runs.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from typing import Any

import matplotlib
import pandas as pd
from lightgbm import basic as lightgbm_basic

from utils.core.parallel import default_workers
from utils.leads.cleaning import CITY_COLUMN, LEVEL_COLUMNS, LeadCleaner
from utils.leads.model import NUMERIC_FEATURES
from utils.leads.schema import LEADS_TARGET

_fonts = {key: matplotlib.rcParams[key] for key in ("font.family", "font.sans-serif")}
os.environ.setdefault("PYCARET_CUSTOM_LOGGING_PATH", os.devnull)
from pycaret.classification import ClassificationExperiment  # noqa: E402 - after the log's path is set
from pycaret.internal import logging as pycaret_logging  # noqa: E402
from pycaret.internal.pycaret_experiment import supervised_experiment  # noqa: E402

matplotlib.rcParams.update(_fonts)
pycaret_logging.captureWarnings(False)

# pycaret runs one screen at a time: it patches process-wide state while it runs (below).
_SCREEN_LOCK = threading.Lock()


class _ThreadRouted:
    """A stand-in for ``sys.stdout`` or ``sys.stderr``: what ``thread`` writes goes to ``elsewhere``,
    what every other thread writes to ``stream``, as before."""

    def __init__(self, stream: Any, thread: int, elsewhere: Any):
        self.stream, self.thread, self.elsewhere = stream, thread, elsewhere

    def _target(self) -> Any:
        return self.elsewhere if threading.get_ident() == self.thread else self.stream

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno...: the stream's
        return getattr(self.stream, name)


# Every stand-in ever installed as sys.stdout or sys.stderr stays referenced here. print() holds the
# stream it writes to as a borrowed reference between its writes (CPython 3.11): had the stand-in
# been freed when the screen's thread put the old stream back, a print under way in another thread
# would write through a dangling pointer: a segmentation fault in 2 of 20 runs of the background test
# of tests/leads/test_screen.py without this list, in none of 20 with it.
_RETIRED_STREAMS: list[_ThreadRouted] = []


@contextlib.contextmanager
def _pycaret_confined_to_this_thread() -> Iterator[None]:
    """While a screen runs, pycaret's process-wide habits reach its own thread only.

    pycaret sends every Python warning of the process to its log file (``captureWarnings``,
    switched on at its import), and while it cross-validates it redirects the process's
    ``sys.stdout`` and ``sys.stderr`` (and the C-level descriptors 1 and 2) into that log: a
    screen run beside other work (:func:`start_candidate_screen`) would swallow that work's
    prints and warnings. Here, while the screen runs, the warnings and prints of its thread go
    to pycaret's log, as pycaret means them to (its LightGBM prints its progress), and every
    other thread's are shown as usual; pycaret's own redirection is switched off. The C-level
    descriptors are left alone: they belong to the process, not to a thread (LightGBM's
    library prints through Python: :func:`_lightgbm_logs_through_python`). Afterwards the
    streams and warnings are as before.

    What stays process-wide, and why that is harmless here: pycaret seeds numpy's global
    random generator (no code of this project draws from it: every draw has its own
    ``random_state``), sets pandas' ``display.max_columns`` to 500 until the comparison ends
    (the tables shown beside it have fewer columns), and patches scikit-learn's
    ``_fit_and_score`` while it cross-validates (used only by scikit-learn's own searches,
    which nothing runs beside the screen).
    """
    screen_thread = threading.get_ident()
    pycaret_logging.captureWarnings(False)  # whoever switched it on again
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if threading.get_ident() == screen_thread:
            pycaret_logging._showwarning(message, category, filename, lineno, file, line)
        else:
            shown(message, category, filename, lineno, file, line)

    logger = pycaret_logging.get_logger()
    saved = sys.stdout, sys.stderr
    routed = (_ThreadRouted(saved[0], screen_thread, pycaret_logging.LoggerWriter(logger.info)),
              _ThreadRouted(saved[1], screen_thread, pycaret_logging.LoggerWriter(logger.warning)))
    _RETIRED_STREAMS.extend(routed)
    redirect = supervised_experiment.redirect_output
    warnings.showwarning = showwarning
    sys.stdout, sys.stderr = routed
    supervised_experiment.redirect_output = lambda logger=None: contextlib.nullcontext()
    try:
        yield
    finally:
        supervised_experiment.redirect_output = redirect
        if sys.stdout is routed[0]:  # else someone replaced it meanwhile: theirs stays
            sys.stdout = saved[0]
        if sys.stderr is routed[1]:
            sys.stderr = saved[1]
        if warnings.showwarning is showwarning:  # else another thread's catch_warnings put one back
            warnings.showwarning = shown


def _lightgbm_logs_through_python() -> None:
    """Have LightGBM's library hand this thread's log lines to Python, as it does for the thread that
    imported lightgbm.

    The library keeps its log callback per thread: in any other thread it writes its lines
    (pycaret's LightGBM is verbose) straight to the process's descriptor 1, past
    ``sys.stdout`` and so past the per-thread routing of :func:`_pycaret_confined_to_this_thread`.
    """
    lightgbm_basic._safe_call(lightgbm_basic._LIB.LGBM_RegisterLogCallback(lightgbm_basic._LIB.callback))


def _candidate_ids(candidates: Iterable[str]) -> list[str]:
    ids = [c.strip() for c in candidates if c.strip()]
    if not ids:
        raise ValueError("no candidate models to compare")
    return ids


def compare_candidates(train: pd.DataFrame, candidates: Iterable[str], folds: int = 3, sample_size: int = 2000,
                       random_state: int = 42, n_jobs: int = 1, significant_levels: Mapping[str, Any] | None = None,
                       level_cumulative: float = 0.90) -> pd.DataFrame:
    """pycaret's cross-validated comparison of candidate models on a sample of the (raw) training leads.

    A quick screen, not the final model: the sample is cleaned by a :class:`LeadCleaner`
    fitted on it, then pycaret does its own preprocessing. Its MLflow logging stays off
    (pycaret 3.3 and MLflow 3 do not agree); the caller logs the table. The table is
    pycaret's cross-validation; the models are not refitted on the whole sample afterwards
    (``n_select=0``: nobody uses them). May run in any thread, beside other work
    (:func:`start_candidate_screen`); one screen runs at a time.
    """
    candidates = _candidate_ids(candidates)
    sample = train.sample(sample_size, random_state=random_state) if len(train) > sample_size else train
    cleaner = LeadCleaner(significant_levels, level_cumulative).fit(sample)
    data = cleaner.transform(sample).assign(**{LEADS_TARGET: sample[LEADS_TARGET].to_numpy()})
    with _SCREEN_LOCK, _pycaret_confined_to_this_thread():
        _lightgbm_logs_through_python()
        experiment = ClassificationExperiment()
        experiment.setup(
            data=data.reset_index(drop=True), target=LEADS_TARGET, session_id=random_state, fold=folds,
            fold_strategy="stratifiedkfold", categorical_features=[*LEVEL_COLUMNS, CITY_COLUMN],
            numeric_features=list(NUMERIC_FEATURES), verbose=False, html=False, n_jobs=n_jobs, log_experiment=False,
            system_log=False,
        )
        experiment.compare_models(include=candidates, sort="AUC", n_select=0, verbose=False, errors="raise")
    table = experiment.pull().reset_index(names="model_id")
    return table.drop(columns=["TT (Sec)"], errors="ignore")


def start_candidate_screen(train: pd.DataFrame, candidates: Iterable[str], **settings: Any) -> Future:
    """:func:`compare_candidates` started now on a thread of its own; ``.result()`` waits for its table
    (and raises what it raised).

    The screen keeps one core busy (pycaret's folds run one after the other) and the lead
    model's final fit keeps the other: side by side they take the time of the longer one. The
    table is the same as from :func:`compare_candidates` called directly (same sample, same
    folds, same seeds). With one core allowed (``LEAD2VALUE_WORKERS=1``) the screen runs here
    and now, as everything else then does. ``train`` must not change until the table is in.
    """
    candidates = _candidate_ids(candidates)  # a wrong list fails here, not later in result()
    future: Future = Future()

    def screen() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(compare_candidates(train, candidates, **settings))
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the table
            future.set_exception(error)

    if default_workers() == 1:
        screen()
    else:
        threading.Thread(target=screen, name="lead2value-pycaret-screen", daemon=True).start()
    return future
