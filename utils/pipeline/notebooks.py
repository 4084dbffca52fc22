"""Keeping committed notebooks clean: outputs only on cells tagged ``keep_output``.

The kept outputs are the nbval regression baseline (``pytest --nbval-lax``), so
after a deliberate change to a headline figure they are refreshed from a real
execution with the notebooks' own defaults:

    python -m utils.pipeline.notebooks refresh            # all notebooks, in run order
    python -m utils.pipeline.notebooks strip notebooks/03_lead_model.ipynb

``refresh`` executes into the same scratch outputs folder that ``make test`` gives
nbval (``outputs/nbval``), so the baseline is what nbval will see. Kept cells keep every
output, figures included (nbval compares their text, never their pixels); a kept cell that
wrote to stderr stops the refresh: red text is not committed.

The house rules for what a reader sees are checked here too: :func:`stderr_outputs` (none in
an executed notebook) and :func:`long_code_lines` (code lines of at most :data:`MAX_LINE`).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

from utils.core import paths
from utils.pipeline.catalog import STEPS
from utils.pipeline.execute import LocalKernelManager

KEEP_TAG = "keep_output"
MAX_LINE = 100  # characters in a code line: what a notebook shows without a scroll bar


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def strip_outputs(nb: dict, keep_tag: str = KEEP_TAG) -> dict:
    """A copy of the notebook with outputs and counts removed, except on cells tagged keep_tag."""
    clean = copy.deepcopy(nb)
    for cell in clean["cells"]:
        if cell["cell_type"] != "code":
            continue
        if keep_tag not in _tags(cell):
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        cell.get("metadata", {}).pop("papermill", None)
    clean.get("metadata", {}).pop("papermill", None)
    return clean


def copy_kept_outputs(source: dict, executed: dict, keep_tag: str = KEEP_TAG) -> dict:
    """The source notebook, stripped, with the outputs of its kept cells taken from an executed copy."""
    by_id = {c.get("id"): c for c in executed["cells"] if c.get("id")}
    by_source = {"".join(c["source"]): c for c in executed["cells"]}
    result = strip_outputs(source, keep_tag)
    for cell in result["cells"]:
        if cell["cell_type"] != "code" or keep_tag not in _tags(cell):
            continue
        match = by_id.get(cell.get("id")) or by_source.get("".join(cell["source"]))
        if match is None:
            raise ValueError(f"kept cell not found in the executed copy: {''.join(cell['source'])[:60]!r}")
        cell["outputs"] = match.get("outputs", [])
        # nbval skips a cell with outputs but no execution count ("unrun reference cell").
        cell["execution_count"] = match.get("execution_count") or 1
    return result


def stderr_outputs(nb: dict) -> list[tuple[int, str]]:
    """(cell number, text) of every stderr stream output: the red text a reader of the executed notebook sees."""
    return [(number, _text(output)) for number, cell in enumerate(nb["cells"]) for output in cell.get("outputs", [])
            if output.get("output_type") == "stream" and output.get("name") == "stderr"]


def long_code_lines(nb: dict, limit: int = MAX_LINE) -> list[tuple[int, str]]:
    """(cell number, line) of every code line longer than ``limit`` characters."""
    return [(number, line) for number, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
            for line in _text(cell, "source").splitlines() if len(line) > limit]


def _text(item: dict, key: str = "text") -> str:
    value = item.get(key, "")
    return "".join(value) if isinstance(value, list) else value


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write(path: Path, nb: dict) -> None:
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def refresh(notebooks: list[Path]) -> None:
    """Execute the notebooks in order with their defaults and store their kept outputs."""
    import papermill as pm

    os.environ.setdefault("LEAD2VALUE_OUTPUTS", str(paths.PROJECT_ROOT / "outputs" / "nbval"))
    with tempfile.TemporaryDirectory() as scratch:
        for notebook in notebooks:
            executed = Path(scratch) / notebook.name
            print(f"executing {notebook.name} ...", flush=True)
            pm.execute_notebook(str(notebook), str(executed), kernel_name="python3", cwd=str(notebook.parent),
                                progress_bar=False, kernel_manager_class=LocalKernelManager)
            source, done = read(notebook), read(executed)
            kept = strip_outputs(done)  # what would be committed: papermill's injected cell carries no tag
            red = stderr_outputs(kept)
            if red:
                raise RuntimeError(f"{notebook.name}: a kept cell wrote to stderr, not committed: {red[0][1][:300]!r}")
            others = stderr_outputs(done)
            if others:
                print(f"    note: {len(others)} stderr output(s) in cells that are not kept, "
                      f"e.g. {others[0][1][:200]!r}", flush=True)
            write(notebook, copy_kept_outputs(source, done))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="strip notebook outputs or refresh the kept (nbval) outputs")
    parser.add_argument("command", choices=["strip", "refresh"])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    notebooks = args.notebooks or [step.notebook for step in STEPS]
    if args.command == "strip":
        for notebook in notebooks:
            write(notebook, strip_outputs(read(notebook)))
    else:
        refresh(notebooks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
