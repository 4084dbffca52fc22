import re
import subprocess
import sys

import pytest

from utils.core import paths
from utils.pipeline import notebooks
from utils.pipeline.catalog import STEPS


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


def image(png="iVBORw0KGgo="):
    return {"output_type": "display_data", "data": {"image/png": png, "text/plain": "<Figure size 600x400 with 1 Axes>"},
            "metadata": {}}


def test_kept_cells_keep_their_figures():
    source = nb(cell("show()", tags=["keep_output"], cell_id="f"))
    executed = nb(cell("show()", outputs=[stream("table\n"), image()], cell_id="f"))
    assert notebooks.copy_kept_outputs(source, executed)["cells"][0]["outputs"] == [stream("table\n"), image()]


def test_stderr_outputs_are_counted_per_cell():
    red = {"output_type": "stream", "name": "stderr", "text": ["Warning: ", "careful\n"]}
    executed = nb(cell("a", outputs=[stream("fine\n")]), cell("b", outputs=[stream("x"), red, image()]), cell("c"))
    assert notebooks.stderr_outputs(executed) == [(1, "Warning: careful\n")]
    assert notebooks.stderr_outputs(nb(cell("a", outputs=[stream("fine\n"), image()]))) == []


def test_long_code_lines_are_found_in_code_cells_only():
    long = "x = " + "1" * (notebooks.MAX_LINE - 3)
    markdown = {"cell_type": "markdown", "metadata": {}, "source": "y" * 300}
    found = notebooks.long_code_lines(nb(cell(["short\n", long + "\n"]), markdown, cell("x" * notebooks.MAX_LINE)))
    assert found == [(0, long)]


# --- the committed notebooks: what a reader of the forge sees ------------------------------------

COMMITTED = [step.notebook for step in STEPS]
SIZE_LIMIT = 2_000_000  # bytes per committed notebook: the repository stays small


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_code_lines_fit_the_screen(path):
    long = notebooks.long_code_lines(notebooks.read(path))
    assert not long, f"{len(long)} code line(s) longer than {notebooks.MAX_LINE}: " + "; ".join(
        f"cell {number}: {line[:60]}..." for number, line in long[:5])


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_notebooks_show_figures_the_house_way(path):
    """Figures are saved, logged and shown by step.save_figure, once; no plt.show() here and there."""
    code = [notebooks._text(c, "source") for c in notebooks.read(path)["cells"] if c["cell_type"] == "code"]
    assert not [c for c in code if "plt.show(" in c or "display(fig" in c]


def sections(nb: dict) -> dict[str, list[dict]]:
    """`## ` heading -> the code cells under it."""
    found, current = {}, "(before the first section)"
    for cell in nb["cells"]:
        text = notebooks._text(cell, "source")
        if cell["cell_type"] == "markdown" and text.startswith("## "):
            current = text.splitlines()[0]
        elif cell["cell_type"] == "code":
            found.setdefault(current, []).append(cell)
    return found


def kept_images(cells: list[dict]) -> int:
    return sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_notebooks_keep_a_figure_per_section_and_stay_small(path):
    """Every `##` section that saves a figure keeps at least one (a reader on the forge sees it), the summary keeps
    its text, nothing kept is red, and the file stays under the size limit."""
    nb = notebooks.read(path)
    by_section = sections(nb)
    bare = [name for name, cells in by_section.items()
            if any("save_figure(" in notebooks._text(c, "source") for c in cells) and not kept_images(cells)]
    assert not bare, f"sections that save figures but keep none: {bare}"
    assert any(o.get("name") == "stdout" for c in by_section["## Summary"] for o in c.get("outputs", [])), \
        "the summary keeps its headline text"
    assert not notebooks.stderr_outputs(nb)
    assert path.stat().st_size < SIZE_LIMIT


TEACHING = paths.NOTEBOOKS_DIR / "TEACHING.md"


def try_it_titles(markdown: str) -> list[str]:
    return re.findall(r"\*\*Try it: ([^*]+?)\.?\*\*", markdown)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_each_notebook_ends_with_the_try_it_items_of_the_teaching_notes(path):
    """Two or three exercises in markdown (nothing that runs a solution), the same as the teaching notes list,
    after the summary and before the last cell (the versions)."""
    cells = notebooks.read(path)["cells"]
    try_it = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
              and notebooks._text(c, "source").startswith("## Try it")]
    assert len(try_it) == 1, "one `## Try it` markdown cell"
    at = try_it[0]
    summary = next(i for i, c in enumerate(cells) if notebooks._text(c, "source").startswith("## Summary"))
    assert summary < at and [c["cell_type"] for c in cells[at + 1:]] == ["code"], "after the summary, before the end"
    titles = try_it_titles(notebooks._text(cells[at], "source"))
    notes = TEACHING.read_text(encoding="utf-8").split(f"\n## {path.stem[:2]} ")[1].split("\n## ")[0]
    assert 2 <= len(titles) <= 3 and titles == try_it_titles(notes)


def test_nbval_compares_the_kept_text_never_the_pixels(tmp_path):
    """The nbval setup of `make test` (--nbval-lax, the sanitize file): a checked cell whose figure differs
    from the committed one passes, one whose headline text differs fails."""
    draw = ("from utils.pipeline.steps import show_once\nimport matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots()\nax.plot([1, 2])\nshow_once(fig)\nprint('AUC 0.841')")
    # Not the PNG the cell draws: only its pixels differ from what the cell will show.
    committed = [{"output_type": "display_data", "metadata": {},
                  "data": {"image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB",
                           "text/plain": "<IPython.core.display.Image object>"}}]
    results = {}
    for headline in ("AUC 0.841", "AUC 0.799"):
        book = nb(cell(draw, tags=["keep_output", "nbval-check-output"], outputs=committed + [stream(headline + "\n")]))
        book["metadata"] = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        path = tmp_path / f"check_{headline[-3:]}.ipynb"
        notebooks.write(path, book)
        done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--sanitize-with",
                               str(paths.PROJECT_ROOT / "tests" / "nbval_sanitize.cfg"),
                               "-p", "no:cacheprovider", "-q", str(path)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        results[headline] = done.returncode
    assert results == {"AUC 0.841": 0, "AUC 0.799": 1}, results


def test_the_readme_teaching_table_lists_each_notebooks_try_it():
    section = (paths.PROJECT_ROOT / "README.md").read_text(encoding="utf-8").split("## Teaching with lead2value")[1]
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip()
            for line in section.split("\n## ")[0].splitlines() if re.match(r"\| \d\d \|", line)}
    for path in COMMITTED:
        try_it = next(notebooks._text(c, "source") for c in notebooks.read(path)["cells"]
                      if notebooks._text(c, "source").startswith("## Try it"))
        assert rows[path.stem[:2]] == "; ".join(try_it_titles(try_it)), path.stem
