import json

import pytest

from utils.pipeline import params


def write_notebook(path, source, tags=("parameters",)):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# title"},
        {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": [], "execution_count": None},
    ]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def notebook(tmp_path):
    return write_notebook(
        tmp_path / "00_x.ipynb",
        'run_dir: str = ""  # where\nn_rows: int = 10  # rows made\nshare: float = 0.5  # a share\nfast: bool = True  # quick\n',
    )


@pytest.fixture
def params_dir(tmp_path):
    folder = tmp_path / "params"
    folder.mkdir()
    (folder / "base.yaml").write_text("n_rows: 1000\nshare: 0.3\n")
    (folder / "smoke.yaml").write_text("n_rows: 5\n")
    return folder


def test_declared_parameters_reads_types_defaults_and_help(notebook):
    declared = params.declared_parameters(notebook)
    assert declared["n_rows"].type_name == "int" and declared["n_rows"].default == 10
    assert declared["n_rows"].help == "rows made"
    assert declared["fast"].default is True


def test_computed_default_is_refused(tmp_path):
    nb = write_notebook(tmp_path / "01_y.ipynb", "a: int = 1\nb: int = a * 2\n")
    with pytest.raises(params.ParameterError, match="'b': default must be a constant"):
        params.declared_parameters(nb)


def test_untyped_parameter_is_refused(tmp_path):
    nb = write_notebook(tmp_path / "01_y.ipynb", "a = 1\n")
    with pytest.raises(params.ParameterError, match="only `name: type = constant`"):
        params.declared_parameters(nb)


def test_two_parameters_cells_are_refused(tmp_path):
    nb = tmp_path / "02_z.ipynb"
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "a: int = 1", "outputs": []}
    nb.write_text(json.dumps({"cells": [cell, cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(params.ParameterError, match="2 cells tagged 'parameters'"):
        params.parameters_cell(nb)


def test_profile_overrides_base(notebook, params_dir):
    resolved = params.resolve([notebook], "smoke", [], params_dir)
    assert resolved["00_x"] == {"n_rows": 5, "share": 0.3}


def test_set_override_is_typed(notebook, params_dir):
    resolved = params.resolve([notebook], "default", ["n_rows=1_000_000", "fast=false", "share=1"], params_dir)
    assert resolved["00_x"]["n_rows"] == 1_000_000
    assert resolved["00_x"]["fast"] is False
    assert resolved["00_x"]["share"] == 1.0 and isinstance(resolved["00_x"]["share"], float)


def test_unknown_parameter_in_file_stops_with_suggestion(notebook, params_dir):
    (params_dir / "base.yaml").write_text("n_row: 1000\n")
    with pytest.raises(params.ParameterError, match="unknown parameter 'n_row' \\(did you mean 'n_rows'\\?\\)"):
        params.resolve([notebook], "default", [], params_dir)


def test_ill_typed_parameter_stops(notebook, params_dir):
    (params_dir / "base.yaml").write_text("n_rows: lots\n")
    with pytest.raises(params.ParameterError, match="'n_rows' must be int"):
        params.resolve([notebook], "default", [], params_dir)


def test_bad_set_value_stops(notebook, params_dir):
    with pytest.raises(params.ParameterError, match="'n_rows' is int"):
        params.resolve([notebook], "default", ["n_rows=many"], params_dir)
    with pytest.raises(params.ParameterError, match="expected name=value"):
        params.resolve([notebook], "default", ["n_rows"], params_dir)


def test_unknown_profile_lists_known_ones(notebook, params_dir):
    with pytest.raises(params.ParameterError, match="unknown profile 'smok': known profiles are default, smoke"):
        params.resolve([notebook], "smok", [], params_dir)


def test_runner_parameters_cannot_be_set_from_files(notebook, params_dir):
    (params_dir / "base.yaml").write_text("run_dir: /elsewhere\n")
    with pytest.raises(params.ParameterError, match="set by run_all.py"):
        params.resolve([notebook], "default", [], params_dir)


def test_invalid_yaml_names_the_file(notebook, params_dir):
    (params_dir / "base.yaml").write_text("n_rows: [1,\n")
    with pytest.raises(params.ParameterError, match="base.yaml: not valid YAML"):
        params.resolve([notebook], "default", [], params_dir)


def test_with_defaults_fills_unset_parameters(notebook):
    assert params.with_defaults(notebook, {"n_rows": 3}) == {"run_dir": "", "n_rows": 3, "share": 0.5, "fast": True}
