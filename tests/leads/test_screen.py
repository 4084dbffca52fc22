"""The pycaret screen: its table, what pycaret's import and run would do to the rest of the process
(fonts, warnings, prints, a log file), and the screen run on a thread of its own beside other work."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.leads.test_model import clean_leads
from utils.core.parallel import WORKERS_VARIABLE
from utils.core.paths import PROJECT_ROOT
from utils.leads import screen


def run_python(code: str, cwd=PROJECT_ROOT, env: dict | None = None, *options: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (pycaret's import does its things once per process)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, *options, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_compare_candidates_returns_one_row_per_model():
    table = screen.compare_candidates(clean_leads(300), ["lr", " dt "], folds=2, sample_size=200)
    assert sorted(table["model_id"]) == ["dt", "lr"]
    assert {"Model", "AUC"} <= set(table.columns)
    with pytest.raises(ValueError, match="no candidate"):
        screen.compare_candidates(clean_leads(50), [" "], folds=2)


def test_the_pycaret_screen_leaves_matplotlib_fonts_and_warnings_as_they_were():
    """pycaret changes the fonts when it is first imported, and sends every later warning of the process
    to its log file; after the import and after each screen a warning reaches stderr again."""
    code = (
        "import matplotlib, json, warnings\n"
        "before = [matplotlib.rcParams['font.family'], list(matplotlib.rcParams['font.sans-serif'])]\n"
        "from tests.leads.test_model import clean_leads\n"
        "from utils.leads import screen\n"
        "warnings.warn('a warning of the notebook, after the import')\n"
        "for _ in range(2):\n"
        "    screen.compare_candidates(clean_leads(300), ['lr'], folds=2, sample_size=200)\n"
        "    warnings.warn('a warning of the notebook, after the screen')\n"
        "after = [matplotlib.rcParams['font.family'], list(matplotlib.rcParams['font.sans-serif'])]\n"
        "print(json.dumps(before == after))"
    )
    done = run_python(code, PROJECT_ROOT, None, "-W", "always")
    assert done.stderr.count("a warning of the notebook, after the import") == 1, done.stderr[-2000:]
    assert done.stderr.count("a warning of the notebook, after the screen") == 2, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "true"


def test_the_pycaret_screen_leaves_no_log_file_where_it_runs(tmp_path):
    """In another folder (pycaret opens its log file when first imported)."""
    code = ("from tests.leads.test_model import clean_leads\nfrom utils.leads import screen\n"
            "screen.compare_candidates(clean_leads(300), ['lr'], folds=2, sample_size=200)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYCARET_CUSTOM_LOGGING_PATH"}
    run_python(code, tmp_path, env)
    assert list(tmp_path.iterdir()) == [], "pycaret's debug log (logs.log) was left where the screen ran"


def test_a_screen_in_the_background_gives_the_same_table_and_leaves_the_other_threads_output_alone():
    """Started on its own thread, the screen returns the table compare_candidates returns; meanwhile the
    main thread's prints and warnings reach stdout and stderr, every one of them (pycaret alone would
    redirect both streams into its log while it cross-validates, and take every warning), while the
    screen's own warnings and prints (its LightGBM's progress lines) still go to pycaret's log.
    Afterwards pycaret's redirection is back in place for pycaret, and the streams and warnings are
    as before."""
    code = (
        "import json, time, warnings\n"
        "from tests.leads.test_model import clean_leads\n"
        "from utils.leads import screen\n"
        "from pycaret.internal.pycaret_experiment import supervised_experiment as se\n"
        "import sys\n"
        "redirect, shown, streams = se.redirect_output, warnings.showwarning, (sys.stdout, sys.stderr)\n"
        "compare = screen.ClassificationExperiment.compare_models\n"
        "def noisy(self, *args, **kwargs):\n"
        "    warnings.warn('a warning of the screen')\n"
        "    return compare(self, *args, **kwargs)\n"
        "screen.ClassificationExperiment.compare_models = noisy\n"
        "leads = clean_leads(600)\n"
        "direct = screen.compare_candidates(leads, ['lr', 'lightgbm'], folds=3, sample_size=400)\n"
        "future = screen.start_candidate_screen(leads, ['lr', 'lightgbm'], folds=3, sample_size=400)\n"
        "said = 0\n"
        "while not future.done():\n"
        "    said += 1\n"
        "    print(f'said {said}', flush=True)\n"
        "    warnings.warn(f'a warning of the notebook {said}')\n"
        "    time.sleep(0.002)\n"
        "table = future.result()\n"
        "print(json.dumps({'said': said, 'same': table.equals(direct), 'rows': len(table),\n"
        "                  'restored': se.redirect_output is redirect and warnings.showwarning is shown\n"
        "                               and (sys.stdout, sys.stderr) == streams}))\n"
    )
    done = run_python(code, PROJECT_ROOT, {**os.environ, WORKERS_VARIABLE: "2"}, "-W", "always")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["same"] and result["rows"] == 2 and result["restored"], result
    assert result["said"] > 10, "the screen ended before the main thread said anything: nothing was tested"
    printed = [line for line in done.stdout.splitlines() if line.startswith("said ")]
    assert printed == [f"said {i}" for i in range(1, result["said"] + 1)]
    for i in range(1, result["said"] + 1):
        assert f"a warning of the notebook {i}\n" in done.stderr, f"warning {i} of the main thread was swallowed"
    assert "a warning of the screen" not in done.stderr
    assert "[LightGBM]" not in done.stdout + done.stderr, "the screen's LightGBM progress reached the streams"


def test_a_wrong_candidate_list_fails_when_the_screen_starts(monkeypatch):
    monkeypatch.setenv(WORKERS_VARIABLE, "2")
    with pytest.raises(ValueError, match="no candidate"):
        screen.start_candidate_screen(clean_leads(50), [" ", ""], folds=2)


def test_a_screen_failure_is_raised_by_result(monkeypatch):
    monkeypatch.setenv(WORKERS_VARIABLE, "2")
    future = screen.start_candidate_screen(clean_leads(300), ["lr"], folds=2, sample_size=200, level_cumulative=7.0)
    with pytest.raises(ValueError):
        future.result(timeout=120)


def test_with_one_core_allowed_the_screen_runs_at_once_in_the_calling_thread(monkeypatch):
    monkeypatch.setenv(WORKERS_VARIABLE, "1")
    leads = clean_leads(300)
    future = screen.start_candidate_screen(leads, ["lr"], folds=2, sample_size=200)
    assert future.done()
    pd.testing.assert_frame_equal(future.result(), screen.compare_candidates(leads, ["lr"], folds=2, sample_size=200))
