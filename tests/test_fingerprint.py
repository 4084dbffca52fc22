import json

from utils import fingerprint


def notebook(path, sources, outputs=None):
    cells = [{"cell_type": "code", "metadata": {}, "source": s, "outputs": outputs or [], "execution_count": None}
             for s in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_sha256_file_uses_cache_only_while_file_is_unchanged(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("one")
    cache = {}
    first = fingerprint.sha256_file(f, cache)
    assert first == fingerprint.sha256_bytes(b"one") and len(cache) == 1
    f.write_text("two!")
    assert fingerprint.sha256_file(f, cache) == fingerprint.sha256_bytes(b"two!")


def test_notebook_hash_ignores_outputs_but_not_source(tmp_path):
    a = notebook(tmp_path / "a.ipynb", ["x = 1"])
    b = notebook(tmp_path / "b.ipynb", ["x = 1"], outputs=[{"output_type": "stream", "name": "stdout", "text": "hi"}])
    c = notebook(tmp_path / "c.ipynb", ["x = 2"])
    assert fingerprint.notebook_source_hash(a) == fingerprint.notebook_source_hash(b)
    assert fingerprint.notebook_source_hash(a) != fingerprint.notebook_source_hash(c)


def test_utils_closure_follows_imports_transitively(tmp_path):
    utils_dir = tmp_path / "utils"
    utils_dir.mkdir()
    (utils_dir / "a.py").write_text("from utils import b\n")
    (utils_dir / "b.py").write_text("import utils.c\n")
    (utils_dir / "c.py").write_text("import os\n")
    (utils_dir / "unused.py").write_text("")
    assert fingerprint.utils_closure("from utils import a\n", utils_dir) == ["a", "b", "c"]


def test_notebook_code_source_drops_magics_so_imports_still_parse(tmp_path):
    nb = notebook(tmp_path / "n.ipynb", ["%matplotlib inline\nfrom utils import paths", "!ls"])
    source = fingerprint.notebook_code_source(nb)
    assert "%" not in source and "!ls" not in source
    assert fingerprint.utils_closure(source) == ["paths"]


def test_utils_hash_changes_with_imported_code_only(tmp_path):
    utils_dir = tmp_path / "utils"
    utils_dir.mkdir()
    (utils_dir / "a.py").write_text("X = 1\n")
    (utils_dir / "other.py").write_text("Y = 1\n")
    before = fingerprint.utils_hash(["a"], utils_dir)
    (utils_dir / "other.py").write_text("Y = 2\n")
    assert fingerprint.utils_hash(["a"], utils_dir) == before
    (utils_dir / "a.py").write_text("X = 2\n")
    assert fingerprint.utils_hash(["a"], utils_dir) != before


def test_step_fingerprint_moves_with_parameters_inputs_and_upstream(tmp_path):
    nb = notebook(tmp_path / "00_x.ipynb", ["from utils import paths"])
    data = tmp_path / "leads.csv"
    data.write_text("a\n1\n")
    base, parts = fingerprint.step_fingerprint(nb, {"n": 1, "leads_path": str(data)}, {}, "lock")
    assert "input:leads_path" in parts
    assert fingerprint.step_fingerprint(nb, {"n": 1, "leads_path": str(data)}, {}, "lock")[0] == base
    assert fingerprint.step_fingerprint(nb, {"n": 2, "leads_path": str(data)}, {}, "lock")[0] != base
    assert fingerprint.step_fingerprint(nb, {"n": 1, "leads_path": str(data)}, {"up": "x"}, "lock")[0] != base
    assert fingerprint.step_fingerprint(nb, {"n": 1, "leads_path": str(data)}, {}, "lock2")[0] != base
    data.write_text("a\n2\n")
    assert fingerprint.step_fingerprint(nb, {"n": 1, "leads_path": str(data)}, {}, "lock")[0] != base


def test_input_files_takes_only_non_empty_path_parameters():
    files = fingerprint.input_files({"leads_path": "x.csv", "new_leads_path": "", "n": 3})
    assert list(files) == ["leads_path"] and files["leads_path"].is_absolute()
