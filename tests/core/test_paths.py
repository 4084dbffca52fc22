import os
import subprocess
import sys

from utils.core import paths


def test_project_root_holds_run_all():
    assert (paths.PROJECT_ROOT / "run_all.py").is_file()


def test_run_dir_defaults_to_interactive_and_creates_subfolders(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    run = paths.run_dir("")
    assert run == tmp_path / "runs" / "interactive"
    assert all((run / sub).is_dir() for sub in ("data", "figures", "tables"))


def test_relative_input_paths_are_taken_from_where_the_user_stands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.resolve_input("data/x.csv") == tmp_path / "data" / "x.csv"
    assert paths.resolve_input("data/x.csv", base=paths.PROJECT_ROOT) == paths.PROJECT_ROOT / "data" / "x.csv"
    assert paths.resolve_input(str(tmp_path / "y.csv")) == tmp_path / "y.csv"


def test_the_project_own_run_folders_are_taken_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = paths.run_dir(str(tmp_path / "r"))
    assert run == tmp_path / "r" and (run / "data").is_dir()
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path / "project")
    assert paths.run_dir("outputs/r") == tmp_path / "project" / "outputs" / "r"


def test_lead2value_outputs_moves_everything_generated(tmp_path):
    code = "from utils.core import paths; print(paths.OUTPUTS_DIR, paths.RUNS_DIR, paths.MLFLOW_DIR, sep='|')"
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(tmp_path / "elsewhere"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=paths.PROJECT_ROOT).stdout.strip().split("|")
    assert out == [str(tmp_path / "elsewhere"), str(tmp_path / "elsewhere" / "runs"),
                   str(tmp_path / "elsewhere" / "mlflow")]
