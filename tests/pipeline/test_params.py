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


def test_a_long_comment_continues_on_indented_comment_lines(tmp_path):
    source = ("n_rows: int = 10  # [1, 100] rows made, a comment too long\n"
              "                  # for one line\n"
              "# a comment of its own, at the margin\n"
              "share: float = 0.5  # (0, 1) a share\n")
    declared = params.declared_parameters(write_notebook(tmp_path / "00_x.ipynb", source))
    assert declared["n_rows"].help == "rows made, a comment too long for one line"
    assert declared["n_rows"].domain.text == "[1, 100]" and declared["share"].help == "a share"
    assert params.parameter_comments(source) == {1: "[1, 100] rows made, a comment too long for one line",
                                                 4: "(0, 1) a share"}


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


# --- declared ranges and allowed values ------------------------------------------------------


@pytest.fixture
def ranged(tmp_path):
    return write_notebook(tmp_path / "05_r.ipynb", "\n".join([
        'n_rows: int = 20_000  # [100, 10_000_000] rows made',
        'share: float = 0.8  # (0, 1) share kept',
        'warn: float = 0.1  # [0, ] warn above',
        'fail: float = 0.25  # [0, ] fail above',
        'engine: str = "pandas"  # {pandas, spark} how to score',
        'half: float = 0.5  # (0, 1] half-open on the left',
        'label: str = "x"  # (free text) no range',
    ]) + "\n")


def test_ranges_and_allowed_values_are_read_from_the_comment(ranged):
    declared = params.declared_parameters(ranged)
    assert declared["n_rows"].domain.low == 100 and declared["n_rows"].domain.high == 10_000_000
    assert declared["n_rows"].help == "rows made"
    assert declared["share"].domain.low_closed is False and declared["warn"].domain.high is None
    assert declared["engine"].domain.allowed == ("pandas", "spark") and declared["engine"].help == "how to score"
    assert declared["label"].domain is None and declared["label"].help == "(free text) no range"


@pytest.mark.parametrize("override, message", [
    ("n_rows=-5", r"--set n_rows=-5: 'n_rows' must be in \[100, 10_000_000\] \(declared in notebooks/05_r.ipynb\), got -5"),
    ("share=1.5", r"'share' must be in \(0, 1\)"),
    ("share=0", r"'share' must be in \(0, 1\)"),
    ("half=0", r"'half' must be in \(0, 1\]"),
    ("engine=dask", r"'engine' must be one of \{pandas, spark\}"),
    ("engine=Spark", r"did you mean 'spark'\?"),
])
def test_values_outside_their_declared_domain_are_refused(ranged, params_dir, override, message):
    (params_dir / "base.yaml").write_text("")
    with pytest.raises(params.ParameterError, match=message):
        params.resolve([ranged], "default", [override], params_dir)


def test_bounds_are_inclusive_where_declared_so(ranged, params_dir):
    (params_dir / "base.yaml").write_text("")
    resolved = params.resolve([ranged], "default", ["n_rows=100", "half=1", "warn=0", "fail=0"], params_dir)
    assert resolved["05_r"]["n_rows"] == 100 and resolved["05_r"]["half"] == 1.0


def test_a_profile_value_out_of_range_names_its_file(ranged, params_dir):
    (params_dir / "base.yaml").write_text("share: 2.0\n")
    with pytest.raises(params.ParameterError, match=r"params/base.yaml: 'share' must be in \(0, 1\)"):
        params.resolve([ranged], "default", [], params_dir)


def test_cross_parameter_rules(ranged, params_dir, monkeypatch):
    (params_dir / "base.yaml").write_text("")
    monkeypatch.setattr(params, "CROSS_RULES", (("warn", "<=", "fail", "warn before failing"),))
    with pytest.raises(params.ParameterError, match=r"'warn' \(0.5\) must be <= 'fail' \(0.25\): warn before failing"):
        params.resolve([ranged], "default", ["warn=0.5"], params_dir)
    params.resolve([ranged], "default", ["warn=0.25"], params_dir)


def test_exclusive_parameters_cannot_both_be_set():
    with pytest.raises(params.ParameterError, match="'transactions_path' and 'clv_customers_path' cannot both be set"):
        params.check_cross_rules({"transactions_path": "tx.parquet", "clv_customers_path": "c.csv"})
    params.check_cross_rules({"transactions_path": "tx.parquet", "clv_customers_path": ""})


def test_list_parameters_hold_known_items():
    with pytest.raises(params.ParameterError, match="'model_families' is a comma-separated list of lightgbm, lr; got 'xgb'"):
        params.check_lists({"model_families": "lightgbm,xgb"}, {"model_families": "--set model_families=lightgbm,xgb"})
    params.check_lists({"model_families": "lr", "compare_candidates": "lr,lightgbm,et"}, {})


def test_the_list_of_model_families_is_the_lead_model_own():
    from utils.leads.model import FAMILIES

    assert params.LEAD_MODEL_FAMILIES == FAMILIES


@pytest.mark.parametrize("comment, problem", [
    ("[1, x] oops", "range bound 'x' is not a number"),
    ("[5, 1] empty", "is empty"),
    ("[1 to 5] typo", "is not a range"),
    ("{a, b} on an int", "lists the allowed values of a str"),
])
def test_malformed_declarations_are_refused(tmp_path, comment, problem):
    nb = write_notebook(tmp_path / "01_m.ipynb", f"n: int = 3  # {comment}\n")
    with pytest.raises(params.ParameterError, match=problem):
        params.declared_parameters(nb)


def test_a_default_outside_its_own_range_is_refused(tmp_path):
    nb = write_notebook(tmp_path / "01_m.ipynb", "n: int = 0  # [1, ] at least one\n")
    with pytest.raises(params.ParameterError, match="its default 0 must be in \\[1, \\]"):
        params.declared_parameters(nb)


def test_every_number_of_every_notebook_declares_its_range():
    from utils.pipeline import catalog

    by_name = {}
    for step in catalog.STEPS:
        for name, decl in params.declared_parameters(step.notebook).items():
            if decl.type_name in ("int", "float"):
                assert decl.domain is not None, f"{step.notebook.name}: '{name}' declares no range"
            by_name.setdefault(name, set()).add(decl.domain.text if decl.domain else None)
    shared = {name: texts for name, texts in by_name.items() if len(texts) > 1}
    assert not shared, f"a parameter declared in several notebooks with different ranges: {shared}"


def test_the_shipped_profiles_pass_every_check():
    from utils.pipeline import catalog

    for profile in ("default", "smoke", "real"):
        params.resolve([s.notebook for s in catalog.STEPS], profile, [])


def test_relative_paths_from_set_are_taken_from_the_working_directory(notebook, params_dir, tmp_path, monkeypatch):
    nb = write_notebook(tmp_path / "00_p.ipynb", 'leads_path: str = ""  # your leads\n'
                                                'other_path: str = ""  # another file\n')
    (params_dir / "base.yaml").write_text("other_path: data/o.csv\n")
    monkeypatch.chdir(tmp_path)
    notes = []
    resolved = params.resolve([nb], "default", ["leads_path=mine/leads.csv"], params_dir, notes=notes)
    assert resolved["00_p"]["leads_path"] == str(tmp_path / "mine" / "leads.csv")
    assert resolved["00_p"]["other_path"] == str(params.paths.PROJECT_ROOT / "data" / "o.csv")
    assert any("your working directory" in n for n in notes) and any("project root" in n for n in notes)
