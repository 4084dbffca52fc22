from pathlib import Path

from utils import paths


def test_project_root_holds_run_all():
    assert (paths.PROJECT_ROOT / "run_all.py").is_file()


def test_run_dir_defaults_to_interactive_and_creates_subfolders(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    run = paths.run_dir("")
    assert run == tmp_path / "runs" / "interactive"
    assert all((run / sub).is_dir() for sub in ("data", "figures", "tables"))


def test_relative_paths_are_taken_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.resolve_input("data/x.csv") == paths.PROJECT_ROOT / "data" / "x.csv"
    assert paths.resolve_input(str(tmp_path / "y.csv")) == tmp_path / "y.csv"
    run = paths.run_dir(str(tmp_path / "r"))
    assert run == tmp_path / "r" and paths.data_dir(run) == run / "data"
    assert paths.figures_dir(run) == run / "figures" and paths.tables_dir(run) == run / "tables"


def test_outputs_are_relocatable_for_tests():
    # conftest points LEAD2VALUE_OUTPUTS at a scratch folder: tests never touch outputs/
    assert paths.OUTPUTS_DIR != paths.PROJECT_ROOT / "outputs"
    assert isinstance(paths.OUTPUTS_DIR, Path)
