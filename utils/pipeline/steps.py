"""The step context: everything a notebook needs from the pipeline, in a handful of calls.

    step = open_step("03_lead_model", globals())   # after the parameters cell
    leads = step.load("leads_clean")                # a catalog dataset, by name
    step.save_table(gains, "lead_gains_by_decile")  # tables/, logged to MLflow
    step.save_figure(fig, "lead_gains")             # figures/, logged to MLflow, shown here once
    step.record_metrics({"lead.auc_test": auc})     # metrics/<step>.json and MLflow
    step.register_candidate("lead_model", uri, model, holdout, rule, "lightgbm on 4,800 leads")  # the gate's record
    step.close()                                    # ends the MLflow run, returns the versions table

``open_step`` reads the notebook's parameters from its namespace, logs every one of them
to MLflow once, and resumes the child run ``run_all.py`` made (or, for a notebook run by
hand, starts a run of its own, tagged interactive). Under ``run_all.py`` a missing input
names the notebook that makes it. Run by hand (JupyterLab "Run All"), a missing input of
the interactive run folder is built first by executing the upstream notebooks there
with their own defaults, and the notebook says so.
"""
from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import PIL.Image
from IPython import get_ipython
from IPython.display import Image, display

from utils.core import env, gate, paths, registry, tracking
from utils.core.files import read_json, write_json
from utils.core.io import read_parquet, write_parquet
from utils.pipeline import catalog, execute
from utils.pipeline.manifest import git_state
from utils.pipeline.params import RUNNER_PARAMETERS, declared_parameters


class StepContext:
    """One notebook step's run folder, MLflow run and catalog access."""

    def __init__(self, step: catalog.Step, run: Path, params: dict[str, Any], interactive: bool):
        self.step, self.run, self.params, self.interactive = step, Path(run), params, interactive

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def mlflow_run_id(self) -> str | None:
        active = mlflow.active_run()
        return active.info.run_id if active is not None else None

    # -- datasets -----------------------------------------------------------------------------

    def _declared(self, name: str, writing: bool) -> catalog.Dataset:
        ds = catalog.dataset(name)
        if writing and ds.step != self.name:
            raise catalog.CatalogError(f"{self.name} cannot write '{name}': the catalog says {ds.step} produces it")
        if not writing and ds.step != self.name and name not in self.step.reads:
            raise catalog.CatalogError(f"{self.name} does not declare '{name}' as an input; add it to the step's "
                                       f"reads in utils/pipeline/catalog.py")
        return ds

    def path(self, name: str) -> Path:
        """The file of a dataset this step reads or writes, in this run folder."""
        return self._declared(name, writing=False).location(self.run)

    def files(self, name: str) -> list[Path]:
        """Every file of a dataset in this run folder (a parquet table and its CSV twin)."""
        return self._declared(name, writing=False).files(self.run)

    def load(self, name: str) -> Any:
        """A dataset this step reads: a DataFrame (parquet, csv), a dict (json) or text (html)."""
        ds = self._declared(name, writing=False)
        location = ds.location(self.run)
        if not location.exists():
            if not self.interactive:
                raise FileNotFoundError(f"{location} is missing: {ds.step} makes it; run it first with the same "
                                        f"run_dir (or run `python run_all.py`)")
            build_upstream(ds, self.run)
        if ds.format == "parquet":
            return read_parquet(location)
        if ds.format == "csv":
            return pd.read_csv(location)
        if ds.format == "json":
            return read_json(location)
        return location.read_text(encoding="utf-8")

    def save(self, name: str, obj: Any) -> Path:
        """Write a dataset this step produces, in the catalog's format; returns its main file."""
        ds = self._declared(name, writing=True)
        location = ds.location(self.run)
        location.parent.mkdir(parents=True, exist_ok=True)
        if ds.format == "parquet":
            write_parquet(obj, location)
            if ds.csv_copy:
                obj.to_csv(location.with_suffix(".csv"), index=False)
        elif ds.format == "csv":
            obj.to_csv(location, index=False)
        elif ds.format == "json":
            write_json(location, obj)
        else:
            location.write_text(obj, encoding="utf-8")
        if ds.format in ("json", "html") and mlflow.active_run() is not None:
            mlflow.log_artifact(str(location))
        return location

    # -- results ------------------------------------------------------------------------------

    def save_table(self, df: pd.DataFrame, name: str) -> Path:
        return tracking.save_table(df, self.run / "tables", name)

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save ``fig`` under the run's figures/ (and MLflow) and, in a notebook, show it here, once."""
        out = tracking.save_figure(fig, self.run / "figures", name)
        if hasattr(fig, "savefig"):
            show_once(fig, rendered=out)
        return out

    def record_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        return tracking.write_metrics(self.run / "metrics" / f"{self.name}.json", metrics)

    # -- models -------------------------------------------------------------------------------

    def register_candidate(self, dataset: str, model_uri: str, model: Any, holdout: gate.Holdout, rule: gate.GateRule,
                           trained_on: str) -> dict:
        """Judge the model against the champion, register it with its lineage, record the decision as ``dataset``.

        The lineage comes from the gate dataset's source record (``leads_source``, ``clv_source``)
        and this run; see :func:`utils.core.registry.register_candidate`. Run by hand, the
        version is tagged interactive, and nothing ever moves the alias for it.
        """
        ds = self._declared(dataset, writing=True)
        return registry.register_candidate(model_uri, ds.model, ds.location(self.run), model, holdout, rule,
                                           self.load(ds.source), self.run_context(), trained_on)

    def run_context(self) -> dict[str, Any]:
        """Run id, profile and code commit of this step's run (lineage): the run's manifest, else git itself."""
        manifest_file = self.run / "manifest.json"
        manifest = read_json(manifest_file) if not self.interactive and manifest_file.is_file() else {}
        git = manifest.get("git") or git_state()
        return {"run_id": "interactive" if self.interactive else self.run.name,
                "profile": manifest.get("profile", "interactive" if self.interactive else "unknown"),
                "git_commit": git.get("commit"), "git_dirty": git.get("dirty"), "interactive": self.interactive,
                "mlflow_run_id": self.mlflow_run_id}

    def serving_model_uri(self, dataset: str, override: str = "") -> str:
        """The model version to score with for a gate dataset this step reads: ``override`` when given
        (the scoring job pins one), else the version this run's gate chose, else the champion."""
        ds = self._declared(dataset, writing=False)
        return override or registry.serving_model_uri(ds.model, ds.location(self.run))

    def serving_note(self, dataset: str) -> str:
        """Which version this run serves for a gate dataset it reads, why, and its score on the run's holdout."""
        ds = self._declared(dataset, writing=False)
        return registry.serving_summary(ds.model, ds.location(self.run))

    def close(self) -> pd.DataFrame:
        """End the step's MLflow run; returns the versions this ran on (the notebook's last output)."""
        if mlflow.active_run() is not None:
            mlflow.end_run()
        return env.versions_table()


# Figures shown in a notebook are kept in the committed notebooks: a modest resolution keeps them small
# (the saved PNG under figures/ has its own, higher one).
SHOW_DPI = 80


def show_once(fig: Any, rendered: Path | None = None) -> None:
    """Show a matplotlib figure in the running notebook as a PNG, then close it.

    Left to the inline backend, a figure shows up at the end of whichever later cell draws
    next (under another heading, or twice), and a kernel's first figure handed to ``display``
    shows as text only (the backend installs its image formatter late). Rendered here and
    closed, it shows once, here. Outside a notebook the figure is only closed (frees memory).
    ``rendered``: the figure's PNG, saved at :data:`utils.core.tracking.SAVE_DPI`; it is shown
    scaled down to :data:`SHOW_DPI` instead of drawn a second time (a draw takes 0.1-0.15 s, and
    a run shows 19 figures).
    """
    if get_ipython() is not None:
        if rendered is not None:
            data = scaled_png(Path(rendered).read_bytes(), SHOW_DPI / tracking.SAVE_DPI)
        else:
            png = BytesIO()
            # No timestamp in the PNG: a refresh with nothing changed leaves the committed notebook alone.
            fig.savefig(png, format="png", dpi=SHOW_DPI, bbox_inches="tight", metadata={"Software": None})
            data = png.getvalue()
        display(Image(data=data, format="png"))
    plt.close(fig)


def scaled_png(png: bytes, factor: float) -> bytes:
    """The PNG image ``png`` resized by ``factor`` (Lanczos) on a 256-colour palette, as PNG bytes without
    metadata: the same input gives the same bytes.

    The palette keeps the committed notebooks small: a plot has few colours, and a resized image in
    full colour compresses worse than the original (23 figures of a run: 1.22 MB, on the palette 0.43 MB).
    """
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    with PIL.Image.open(BytesIO(png)) as image:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        out = BytesIO()
        image.convert("RGB").resize(size, PIL.Image.LANCZOS).quantize(256).save(out, format="PNG", optimize=True)
    return out.getvalue()


def open_step(name: str, namespace: dict[str, Any]) -> StepContext:
    """The context of step ``name``, with the parameters the notebook's ``parameters`` cell declared."""
    step = catalog.step(name)
    declared = declared_parameters(step.notebook)
    params = {key: namespace[key] for key in declared if key in namespace}
    run = paths.run_dir(params.get("run_dir", ""))
    mlflow_run_id = params.get("mlflow_run_id", "")
    interactive = not mlflow_run_id
    tracking.configure()
    if mlflow.active_run() is not None:
        mlflow.end_run()
    if interactive:
        mlflow.start_run(run_name=f"{name} (interactive)",
                         tags={"lead2value.step": name, "lead2value.interactive": "true"})
    else:
        mlflow.start_run(run_id=mlflow_run_id)
    mlflow.log_params({key: value if value != "" else "-" for key, value in params.items()
                       if key not in RUNNER_PARAMETERS})
    # Importing pycaret switches matplotlib to fonts this machine may lack; one that ships with matplotlib.
    matplotlib.rcParams["font.family"] = "DejaVu Sans"
    return StepContext(step, run, params, interactive)


def build_upstream(ds: catalog.Dataset, run: Path) -> None:
    """Execute, in ``run``, the steps that make ``ds`` and whatever of theirs is missing (defaults)."""
    needed = [name for name in (*catalog.ancestors(ds.step), ds.step)
              if any(not d.location(run).exists() for d in catalog.produces(name))]
    print(f"{ds.name} is not in {run} yet: running {', '.join(needed)} there first, with their own defaults ...",
          flush=True)
    for name in needed:
        execute.run_notebook(catalog.step(name), run, {"run_dir": str(run)})
        print(f"    {name} done", flush=True)
