"""Keeping committed notebooks clean: outputs only on cells tagged ``keep_output``.

The kept outputs are the nbval regression baseline (``pytest --nbval-lax``), so
after a deliberate change to a headline figure they are refreshed from a real
execution with the notebooks' own defaults:

    python -m utils.pipeline.notebooks refresh            # all notebooks, in run order
    python -m utils.pipeline.notebooks strip notebooks/03_lead_model.ipynb

``refresh`` executes into the same scratch outputs folder that ``make test`` gives
nbval (``outputs/nbval``), so the baseline is what nbval will see.
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
        cell["outputs"] = [o for o in match.get("outputs", []) if o.get("output_type") != "display_data"]
        # nbval skips a cell with outputs but no execution count ("unrun reference cell").
        cell["execution_count"] = match.get("execution_count") or 1
    return result


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
            write(notebook, copy_kept_outputs(read(notebook), read(executed)))


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
