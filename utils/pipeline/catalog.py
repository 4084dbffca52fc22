"""The catalog: every dataset a run produces, and every step, declared once.

A dataset has a name, the step that produces it, a path under the run folder and a
format. A step declares the datasets it reads; its upstream steps are derived from
that (the producers of what it reads), never kept by hand. Notebooks ask their step
context for a dataset by name (``step.load("leads_clean")``), never by file name, and
the runner fingerprints a step by the content of the datasets it reads: a change that
leaves a dataset's bytes alone re-executes nothing downstream of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from utils.core import paths

FORMATS = ("parquet", "json", "csv", "html")


@dataclass(frozen=True)
class Dataset:
    name: str
    step: str  # the step that produces it
    path: str  # relative to the run folder
    format: str
    description: str
    csv_copy: bool = False  # a parquet table that people read gets a CSV twin beside it
    model: str | None = None  # for a gate record: the registered model's name
    source: str | None = None  # for a gate record: the dataset saying what its model was trained on

    def location(self, run: Path) -> Path:
        return Path(run) / self.path

    def files(self, run: Path) -> list[Path]:
        """Every file the dataset occupies in a run folder (the parquet and its CSV twin)."""
        main = self.location(run)
        return [main, main.with_suffix(".csv")] if self.csv_copy else [main]


@dataclass(frozen=True)
class Step:
    name: str
    purpose: str
    reads: tuple[str, ...] = ()

    @property
    def notebook(self) -> Path:
        return paths.NOTEBOOKS_DIR / f"{self.name}.ipynb"

    @property
    def number(self) -> str:
        return self.name.split("_", 1)[0]


DATASETS: tuple[Dataset, ...] = (
    # 00_data
    Dataset("leads_raw", "00_data", "data/leads_raw.parquet", "parquet", "labelled raw leads: lead_id and the 45 columns"),
    Dataset("leads_new", "00_data", "data/leads_new.parquet", "parquet",
            "raw leads to score: lead_id and the 44 columns without the target"),
    Dataset("clv_customers", "00_data", "data/clv_customers.parquet", "parquet", "customers: signup, age, gender, country"),
    Dataset("clv_web_actions", "00_data", "data/clv_web_actions.parquet", "parquet", "customers' web actions"),
    Dataset("clv_campaigns", "00_data", "data/clv_campaigns.parquet", "parquet", "campaigns sent to customers"),
    Dataset("clv_purchases", "00_data", "data/clv_purchases.parquet", "parquet", "customers' purchases, net of refunds"),
    Dataset("clv_purchase_lines", "00_data", "data/clv_purchase_lines.parquet", "parquet",
            "what each purchase held: product, quantity, unit price (no rows when the source names no products)"),
    Dataset("raw_snapshot", "00_data", "data/raw_snapshot.json", "json", "sha256, rows and source of every raw table"),
    Dataset("leads_source", "00_data", "data/leads_source.json", "json",
            "where the labelled leads came from: the generator and its parameters, or your file (sha256, rows)"),
    Dataset("clv_source", "00_data", "data/clv_source.json", "json",
            "where the customers came from: the generator and its parameters, or your files (sha256, rows)"),
    # 02_cleaning
    Dataset("leads_clean", "02_cleaning", "data/leads_clean.parquet", "parquet",
            "the lead model's table: labelled raw leads, one copy of each (ids ignored), with lead_id"),
    Dataset("lead_cleaning_report", "02_cleaning", "data/lead_cleaning_report.json", "json",
            "duplicates dropped, and what the cleaning step does to the training part"),
    Dataset("clv_train", "02_cleaning", "data/clv_train.parquet", "parquet",
            "one row per customer with a full horizon: first-window features and clv_target"),
    Dataset("clv_score", "02_cleaning", "data/clv_score.parquet", "parquet",
            "customers with a full feature window but no full horizon yet: to score"),
    Dataset("clv_history", "02_cleaning", "data/clv_history.parquet", "parquet",
            "BG/NBD summary of each training customer over window AND horizon: only to fit BG/NBD+GG, never a feature"),
    Dataset("clv_feature_report", "02_cleaning", "data/clv_feature_report.json", "json",
            "customers per status, where the data start, countries without GDP, the feature list"),
    # 03_lead_model, 04_clv_model: the registered candidate and its gate decision
    Dataset("lead_model", "03_lead_model", "models/lead_scoring.json", "json",
            "registered lead_scoring version, its lineage and promotion-gate decision", model="lead_scoring",
            source="leads_source"),
    Dataset("clv_model", "04_clv_model", "models/clv.json", "json",
            "registered clv version, its lineage and promotion-gate decision", model="clv", source="clv_source"),
    # 05_scoring
    Dataset("leads_scored", "05_scoring", "data/leads_scored.parquet", "parquet",
            "new leads with P(application complete)", csv_copy=True),
    Dataset("customers_scored", "05_scoring", "data/customers_scored.parquet", "parquet",
            "customers with their predicted lifetime value", csv_copy=True),
    Dataset("scoring_provenance", "05_scoring", "data/scoring_provenance.json", "json",
            "model versions, input and output hashes of the scored tables"),
    Dataset("dashboard", "05_scoring", "dashboard.html", "html", "the one-file dashboard for sales and marketing"),
)

# The explicit run order (never a glob).
STEPS: tuple[Step, ...] = (
    Step("00_data", "synthetic data or your files, checked by the data contracts"),
    Step("01_eda", "plots of both data sets",
         ("leads_raw", "clv_customers", "clv_web_actions", "clv_campaigns", "clv_purchases")),
    Step("02_cleaning", "CodePro lead cleaning; CLV first-window features, target and GDP",
         ("leads_raw", "clv_customers", "clv_web_actions", "clv_campaigns", "clv_purchases", "clv_purchase_lines")),
    Step("03_lead_model", "lead scoring model, its read-outs and promotion gate", ("leads_clean", "leads_source")),
    Step("04_clv_model", "customer lifetime value models and promotion gate",
         ("clv_train", "clv_history", "clv_feature_report", "clv_source")),
    Step("05_scoring", "scoring new leads and customers, drift, dashboard",
         ("leads_new", "clv_score", "lead_model", "clv_model", "raw_snapshot", "clv_customers")),
)

BY_NAME: dict[str, Dataset] = {d.name: d for d in DATASETS}
# The gate records: a registered candidate and its promotion decision, one per registered model.
GATE_DATASETS: tuple[Dataset, ...] = tuple(d for d in DATASETS if d.model)
STEP_BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}


class CatalogError(KeyError):
    """A dataset or step name the catalog does not know; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


def dataset(name: str) -> Dataset:
    try:
        return BY_NAME[name]
    except KeyError:
        raise CatalogError(f"no dataset '{name}' in the catalog; known: {', '.join(BY_NAME)}") from None


def step(name: str) -> Step:
    """A step by its name (``03_lead_model``) or its number (``03``, ``3``)."""
    if name in STEP_BY_NAME:
        return STEP_BY_NAME[name]
    by_number = [s for s in STEPS if name.isdigit() and s.number == name.zfill(2)]
    if by_number:
        return by_number[0]
    raise CatalogError(f"no step '{name}'; the steps are {', '.join(STEP_BY_NAME)}")


def following(step_name: str) -> Step | None:
    """The step after ``step_name`` in run order (None after the last)."""
    at = STEPS.index(step(step_name)) + 1
    return STEPS[at] if at < len(STEPS) else None


def produces(step_name: str) -> tuple[Dataset, ...]:
    """The datasets a step writes, in catalog order."""
    return tuple(d for d in DATASETS if d.step == step_name)


def upstream(step_name: str) -> tuple[str, ...]:
    """The steps that produce what ``step_name`` reads, in run order."""
    producers = {dataset(name).step for name in step(step_name).reads}
    return tuple(s.name for s in STEPS if s.name in producers)


def ancestors(step_name: str) -> tuple[str, ...]:
    """Every step ``step_name`` depends on, directly or not, in run order."""
    found: set[str] = set()
    todo = list(upstream(step_name))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(upstream(name))
    return tuple(s.name for s in STEPS if s.name in found)


def check() -> None:
    """The catalog is consistent: known formats, steps and datasets, and every read comes from an earlier step."""
    order = [s.name for s in STEPS]
    for d in DATASETS:
        if d.format not in FORMATS:
            raise ValueError(f"dataset {d.name}: unknown format {d.format!r}")
        if d.step not in order:
            raise ValueError(f"dataset {d.name}: produced by unknown step {d.step!r}")
        if not d.path.endswith("." + d.format):
            raise ValueError(f"dataset {d.name}: path {d.path} does not end in .{d.format}")
        if d.model and (d.source is None or d.source not in step(d.step).reads):
            raise ValueError(f"gate dataset {d.name}: its step {d.step} must read the source record of its "
                             f"training data (source={d.source!r})")
    for s in STEPS:
        for name in s.reads:
            producer = dataset(name).step
            if order.index(producer) >= order.index(s.name):
                raise ValueError(f"step {s.name} reads {name}, which {producer} produces later")
