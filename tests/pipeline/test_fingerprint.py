import json

from utils.pipeline import catalog, fingerprint


def notebook(path, sources, outputs=None):
    cells = [{"cell_type": "code", "metadata": {}, "source": s, "outputs": outputs or [], "execution_count": None}
             for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def package(root, files):
    """A fake ``utils`` tree under root: {relative path: source}; every folder gets an __init__.py."""
    utils_dir = root / "utils"
    for rel, source in files.items():
        path = utils_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    for folder in [utils_dir, *[p for p in utils_dir.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return utils_dir


def test_notebook_hash_ignores_outputs_but_not_source(tmp_path):
    a = notebook(tmp_path / "a.ipynb", ["x = 1"])
    b = notebook(tmp_path / "b.ipynb", ["x = 1"], outputs=[{"output_type": "stream", "name": "stdout", "text": "hi"}])
    c = notebook(tmp_path / "c.ipynb", ["x = 2"])
    assert fingerprint.notebook_source_hash(a) == fingerprint.notebook_source_hash(b)
    assert fingerprint.notebook_source_hash(a) != fingerprint.notebook_source_hash(c)


def test_imports_resolve_to_modules_in_subpackages(tmp_path):
    utils_dir = package(tmp_path, {"core/a.py": "", "leads/b.py": "", "leads/c.py": ""})
    source = "from utils.core import a\nfrom utils.leads.b import X\nimport utils.leads.c as c\nfrom utils.core.a import Y\n"
    assert fingerprint.utils_imports(source, utils_dir) == {"utils.core.a", "utils.leads.b", "utils.leads.c"}
    assert fingerprint.module_file("utils.leads", utils_dir) == utils_dir / "leads" / "__init__.py"
    assert fingerprint.module_file("utils.nope", utils_dir) is None and fingerprint.module_file("os", utils_dir) is None


def test_utils_closure_follows_imports_transitively_with_their_packages(tmp_path):
    utils_dir = package(tmp_path, {
        "core/a.py": "import os\n", "leads/b.py": "from utils.core import a\n", "clv/c.py": "from utils.core.a import Z\n",
        "scoring/d.py": "from utils.leads.b import f\n", "core/unused.py": "",
    })
    closure = fingerprint.utils_closure("from utils.scoring import d\n", utils_dir)
    assert closure == ["utils", "utils.core", "utils.core.a", "utils.leads", "utils.leads.b", "utils.scoring",
                       "utils.scoring.d"]


def test_a_deep_edit_reexecutes_exactly_the_steps_that_import_it(tmp_path):
    utils_dir = package(tmp_path, {
        "core/deep.py": "X = 1\n", "leads/model.py": "from utils.core import deep\n", "clv/model.py": "import os\n",
        "scoring/predict.py": "from utils.leads.model import f\n",
    })
    steps = {
        "lead": notebook(tmp_path / "lead.ipynb", ["from utils.leads import model"]),
        "clv": notebook(tmp_path / "clv.ipynb", ["from utils.clv import model"]),
        "score": notebook(tmp_path / "score.ipynb", ["%matplotlib inline\nfrom utils.scoring import predict"]),
    }

    def fingerprints():
        return {name: fingerprint.step_fingerprint(nb, {}, {}, "lock", utils_dir=utils_dir)[0] for name, nb in steps.items()}

    before = fingerprints()
    (utils_dir / "core" / "deep.py").write_text("X = 2\n")
    after = fingerprints()
    assert {name for name in steps if before[name] != after[name]} == {"lead", "score"}


def test_resources_of_an_imported_package_count_as_code(tmp_path):
    utils_dir = package(tmp_path, {"leads/model.py": "", "clv/model.py": "", "leads/resources/tiers.yaml": "a: 1\n"})
    lead, clv = ["utils.leads.model"], ["utils.clv.model"]
    before = fingerprint.utils_hash(lead, utils_dir), fingerprint.utils_hash(clv, utils_dir)
    (utils_dir / "leads" / "resources" / "tiers.yaml").write_text("a: 2\n")
    assert fingerprint.utils_hash(lead, utils_dir) != before[0]
    assert fingerprint.utils_hash(clv, utils_dir) == before[1]


def test_notebook_code_source_drops_magics_so_imports_still_parse(tmp_path):
    nb = notebook(tmp_path / "n.ipynb", ["%matplotlib inline\nfrom utils.core import paths", "!ls"])
    source = fingerprint.notebook_code_source(nb)
    assert "%" not in source and "!ls" not in source
    assert "utils.core.paths" in fingerprint.utils_closure(source)


def test_step_fingerprint_moves_with_parameters_inputs_datasets_and_lock(tmp_path):
    nb = notebook(tmp_path / "00_x.ipynb", ["from utils.core import paths"])
    data = tmp_path / "leads.csv"
    data.write_text("a\n1\n")
    params = {"n": 1, "leads_path": str(data)}
    base, parts = fingerprint.step_fingerprint(nb, params, {"leads_clean": "h1"}, "lock")
    assert "input:leads_path" in parts and parts["dataset:leads_clean"] == "h1"
    assert fingerprint.step_fingerprint(nb, params, {"leads_clean": "h1"}, "lock")[0] == base
    assert fingerprint.step_fingerprint(nb, {**params, "n": 2}, {"leads_clean": "h1"}, "lock")[0] != base
    assert fingerprint.step_fingerprint(nb, params, {"leads_clean": "h2"}, "lock")[0] != base
    assert fingerprint.step_fingerprint(nb, params, {"leads_clean": "h1"}, "lock2")[0] != base
    data.write_text("a\n2\n")
    assert fingerprint.step_fingerprint(nb, params, {"leads_clean": "h1"}, "lock")[0] != base


def test_input_files_takes_only_non_empty_path_parameters():
    files = fingerprint.input_files({"leads_path": "x.csv", "new_leads_path": "", "n": 3})
    assert list(files) == ["leads_path"] and files["leads_path"].is_absolute()


def test_hash_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprint, "_HASH_CACHE_FILE", tmp_path / "cache.json")
    assert fingerprint.load_hash_cache() == {}
    fingerprint.save_hash_cache({"k": "v"})
    assert fingerprint.load_hash_cache() == {"k": "v"}


def test_the_real_notebooks_need_only_their_own_business_code():
    lead = fingerprint.utils_closure(fingerprint.notebook_code_source(catalog.step("03_lead_model").notebook))
    clv = fingerprint.utils_closure(fingerprint.notebook_code_source(catalog.step("04_clv_model").notebook))
    assert "utils.leads.model" in lead and not any(m.startswith("utils.clv") for m in lead)
    assert "utils.clv.model" in clv and not any(m.startswith("utils.leads") for m in clv)
    assert not any(m in lead + clv for m in ("utils.pipeline.runner", "utils.pipeline.plan"))
