import pytest

from utils.pipeline import notebooks


def cell(source, tags=(), outputs=None, cell_id=None):
    c = {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source,
         "outputs": outputs or [], "execution_count": 3 if outputs else None}
    if cell_id:
        c["id"] = cell_id
    return c


def stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


def nb(*cells):
    return {"cells": list(cells), "metadata": {"papermill": {"x": 1}}, "nbformat": 4, "nbformat_minor": 5}


def test_strip_keeps_only_tagged_outputs():
    source = nb(cell("a", outputs=[stream("1")]), cell("b", tags=["keep_output"], outputs=[stream("2")]))
    clean = notebooks.strip_outputs(source)
    assert clean["cells"][0]["outputs"] == [] and clean["cells"][0]["execution_count"] is None
    assert clean["cells"][1]["outputs"] == [stream("2")]
    assert "papermill" not in clean["metadata"]
    assert source["cells"][0]["outputs"], "the input is not modified"


def test_copy_kept_outputs_matches_by_id_then_source():
    source = nb(cell("x = 1", cell_id="a"), cell("print(x)", tags=["keep_output"], cell_id="b"),
                cell("print(2)", tags=["keep_output"]))
    executed = nb(cell("# injected"), cell("x = 1", outputs=[stream("")], cell_id="a"),
                  cell("print(x)", outputs=[stream("1\n")], cell_id="b"), cell("print(2)", outputs=[stream("2\n")]))
    result = notebooks.copy_kept_outputs(source, executed)
    assert [c["outputs"] for c in result["cells"]] == [[], [stream("1\n")], [stream("2\n")]]
    assert [c["execution_count"] for c in result["cells"]] == [None, 3, 3]  # nbval needs it on kept cells


def test_copy_kept_outputs_fails_when_a_kept_cell_is_missing():
    with pytest.raises(ValueError, match="kept cell not found"):
        notebooks.copy_kept_outputs(nb(cell("print(1)", tags=["keep_output"])), nb(cell("other")))


def test_read_write_round_trip(tmp_path):
    path = tmp_path / "n.ipynb"
    notebooks.write(path, nb(cell("é")))
    assert notebooks.read(path)["cells"][0]["source"] == "é"
