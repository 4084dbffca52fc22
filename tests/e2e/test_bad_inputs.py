"""Bad input and a broken environment, end to end through ``run_all.py``: the matrix.

Every case has its expected outcome:

* **refused** (:data:`REFUSED`, :data:`ENVIRONMENT`): exit 2, one message naming the file
  and column or the parameter (and what to do), no traceback, and nothing left behind:
  no new run folder, no MLflow run, no model version, ``outputs/latest`` and every earlier
  byte unchanged. These stop in the pre-flight, so they run in-process (``run_all.main``)
  against an isolated outputs folder: seconds for the lot.
* **run with a counted warning** (:data:`WARNED`): one shared smoke run (slow) over files
  that carry every recoverable oddity at once; each is counted in the input check and in
  00's ``data_contract_warnings`` table, and the run succeeds.
* Ctrl-C and ``kill -9`` (slow): one line and exit 130; a run left "running" by a dead
  process is marked killed, with its MLflow runs, by the next run.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run_all
from utils.clv.synth import generate_clv
from utils.core import paths
from utils.core.io import write_parquet
from utils.leads.synth import generate_leads
from utils.pipeline import fingerprint, lock, plan, preflight, runner

EARLIER_RUN = "20260101-000000-default-abcd"


# --- data ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    """1,500 leads: each case is refused for the defect it plants (the checks of the split come last)."""
    return generate_leads(1_500, random_seed=7)


@pytest.fixture(scope="module")
def shop() -> dict[str, pd.DataFrame]:
    return generate_clv(700, random_seed=7)


def transactions(shop: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The shop's purchases as invoice lines in the Online Retail layout (made here, not copied)."""
    purchases = shop["purchases"]
    countries = shop["customers"].set_index("customer_id")["country"]
    items = purchases["n_items"].clip(lower=1)
    return pd.DataFrame({
        "InvoiceNo": purchases["order_id"].astype(str), "StockCode": "P1", "Description": "item",
        "Quantity": items, "InvoiceDate": purchases["timestamp"],
        "UnitPrice": (purchases["amount"].abs() / items).round(2) + 0.01,
        "CustomerID": purchases["customer_id"].astype(float),
        "Country": purchases["customer_id"].map(countries).fillna("United Kingdom"),
    })


def to_csv(frame: pd.DataFrame, path: Path, index: bool = True, **kwargs) -> Path:
    frame.to_csv(path, index=index, **kwargs)  # with the unnamed index column, as the real export
    return path


def replace_header(path: Path, old: str, new: str) -> Path:
    lines = path.read_text().split("\n", 1)
    path.write_text(lines[0].replace(old, new, 1) + "\n" + lines[1])
    return path


def ambiguous_days(stamps: pd.Series) -> pd.Series:
    """Every date moved to a day <= 12: each reads as a date day-first and month-first."""
    return stamps.map(lambda t: t.replace(day=min(t.day, 12)))


# --- an isolated outputs folder with an earlier run, a champion and an MLflow store ------------


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """An earlier successful run, outputs/latest, and an MLflow store with one run and one model version."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("outputs")
    earlier = folder / "runs" / EARLIER_RUN
    (earlier / "data").mkdir(parents=True)
    (earlier / "data" / "leads_scored.parquet").write_bytes(b"earlier result")
    (earlier / "manifest.json").write_text(json.dumps({"run_id": EARLIER_RUN, "status": "succeeded", "steps": {}}))
    (earlier / "status.json").write_text(json.dumps({"status": "succeeded"}))
    (folder / "latest").symlink_to(Path("runs") / EARLIER_RUN)
    (folder / "mlflow").mkdir()
    uri = f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("lead2value", artifact_location=(folder / "mlflow" / "artifacts").as_uri())
    run = client.create_run(experiment, tags={"lead2value.run_id": EARLIER_RUN})
    client.set_terminated(run.info.run_id, "FINISHED")
    client.create_registered_model("lead_scoring")
    client.create_model_version("lead_scoring", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return folder


@pytest.fixture
def isolated(outputs, monkeypatch) -> Path:
    """run_all in this process, writing (if it ever did) to ``outputs`` only."""
    monkeypatch.setattr(paths, "OUTPUTS_DIR", outputs)
    monkeypatch.setattr(paths, "RUNS_DIR", outputs / "runs")
    monkeypatch.setattr(paths, "LATEST_LINK", outputs / "latest")
    monkeypatch.setattr(paths, "MLFLOW_DIR", outputs / "mlflow")
    monkeypatch.setattr(fingerprint, "_HASH_CACHE_FILE", outputs / ".hash_cache.json")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(runner, "PapermillExecutor", NoNotebooks)
    return outputs


class NoNotebooks:
    """A case that is not refused fails here, in a second, rather than running the whole pipeline."""

    def execute(self, step, run, parameters, progress):
        raise AssertionError(f"{step.name} was about to run: the input was not refused")


def snapshot(outputs: Path) -> dict[str, bytes]:
    return {str(p.relative_to(outputs)): p.read_bytes() for p in sorted(outputs.rglob("*"))
            if p.is_file() and p.name != lock.LOCK_NAME and not p.name.startswith(".hash_cache")}


def mlflow_rows(outputs: Path) -> tuple[int, int]:
    """(MLflow runs, model versions) in the store."""
    with sqlite3.connect(outputs / "mlflow" / "mlflow.db") as db:
        return (db.execute("select count(*) from runs").fetchone()[0],
                db.execute("select count(*) from model_versions").fetchone()[0])


def main(capsys, *args: str) -> tuple[int, str, str]:
    code = run_all.main(["--no-progress", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the refusals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A bad input and how it must be refused: the text of the problem, and the column or parameter named."""

    build: Callable[..., list[str]]  # (tmp_path, leads, shop) -> run_all arguments
    problem: str
    column: str | None = None
    parameter: str | None = None
    file: str | None = None  # the file name the message must name (default: the one the case wrote)


def leads_file(transform: Callable[[pd.DataFrame], pd.DataFrame], name: str = "leads.csv", **kw) -> Callable:
    def build(tmp, leads, shop):
        return ["--set", f"leads_path={to_csv(transform(leads.copy()), tmp / name, **kw)}"]
    return build


def raw_file(name: str, content: Callable[[pd.DataFrame], bytes]) -> Callable:
    def build(tmp, leads, shop):
        (tmp / name).write_bytes(content(leads))
        return ["--set", f"leads_path={tmp / name}"]
    return build


def leads_text(edit: Callable[[Path], None]) -> Callable:
    def build(tmp, leads, shop):
        path = to_csv(leads, tmp / "leads.csv")
        edit(path)
        return ["--set", f"leads_path={path}"]
    return build


def tx_file(transform: Callable[[pd.DataFrame], pd.DataFrame], suffix: str = "csv", *extra: str) -> Callable:
    def build(tmp, leads, shop):
        frame = transform(transactions(shop))
        path = tmp / f"transactions.{suffix}"
        if suffix == "csv":
            frame.to_csv(path, index=False)
        else:
            write_parquet(frame, path)
        return ["--set", f"transactions_path={path}", *extra]
    return build


def clv_files(customers: Callable | None = None, purchases: Callable | None = None, csv: bool = False,
              with_purchases: bool = True) -> Callable:
    def build(tmp, leads, shop):
        frames = {"customers": (customers or (lambda f: f))(shop["customers"].copy()),
                  "purchases": (purchases or (lambda f: f))(shop["purchases"].copy())}
        args = []
        for name, frame in frames.items():
            if name == "purchases" and not with_purchases:
                continue
            path = tmp / f"{name}.{'csv' if csv else 'parquet'}"
            frame.to_csv(path, index=False) if csv else frame.to_parquet(path)
            args += ["--set", f"clv_{name}_path={path}"]
        return args
    return build


def params(*overrides: str) -> Callable:
    return lambda tmp, leads, shop: [arg for o in overrides for arg in ("--set", o)]


def with_column(frame: pd.DataFrame, column: str, values) -> pd.DataFrame:
    frame[column] = values
    return frame


def dates_as(layout: str) -> Callable:
    return lambda f: with_column(f, "created_date", ambiguous_days(f["created_date"]).dt.strftime(layout))


def mixed_layouts(f: pd.DataFrame) -> pd.DataFrame:
    text = f["created_date"].dt.strftime("%Y-%m-%d %H:%M:%S").copy()
    text.iloc[::2] = f["created_date"].iloc[::2].dt.strftime("%d/%m/%Y %H:%M")
    return with_column(f, "created_date", text)


def some_offsets(f: pd.DataFrame) -> pd.DataFrame:
    text = f["created_date"].dt.strftime("%Y-%m-%d %H:%M:%S").copy()
    text.iloc[::3] = text.iloc[::3] + "+01:00"
    return with_column(f, "created_date", text)


def one_word(f: pd.DataFrame, column: str, word: str) -> pd.DataFrame:
    f = f.astype({column: object})
    f.loc[f.index[5], column] = word
    return f


def latest_one_class(f: pd.DataFrame) -> pd.DataFrame:
    late = f["created_date"] >= f["created_date"].quantile(0.72)
    return with_column(f, "app_complete_flag", f["app_complete_flag"].where(~late, 0))


def rare_positives(f: pd.DataFrame) -> pd.DataFrame:
    """Every 50th lead by date completes: 9 in the training part, 2 in the time holdout."""
    ordered = f.sort_values("created_date", kind="stable").reset_index(drop=True)
    return ordered.assign(app_complete_flag=(ordered.index % 50 == 0).astype(int))


def truncated(path_of: Callable[[Path, pd.DataFrame, dict], Path], setting: str) -> Callable:
    def build(tmp, leads, shop):
        whole = path_of(tmp, leads, shop)
        cut = tmp / f"cut_{whole.name}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        return ["--set", f"{setting}={cut}"]
    return build


def duplicated_parquet(tmp, leads, shop):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(leads, preserve_index=False)
    table = table.append_column("city_mapped", table.column("city_mapped"))
    pq.write_table(table, tmp / "leads.parquet")
    return ["--set", f"leads_path={tmp / 'leads.parquet'}"]


def ragged_semicolons(path: Path) -> None:
    text = path.read_text().replace(",", ";").splitlines()
    text[3] = text[3].rsplit(";", 2)[0]  # one short line: no separator splits every line evenly
    path.write_text("\n".join(text) + "\n")


def comma_file_read_as_semicolon(tmp, leads, shop):
    return ["--set", f"leads_path={to_csv(leads, tmp / 'leads.csv')}", "--set", "csv_sep=semicolon"]


def new_leads_without(column: str) -> Callable:
    def build(tmp, leads, shop):
        path = to_csv(leads, tmp / "leads.csv")
        new = to_csv(leads.drop(columns=["app_complete_flag", column]).head(50), tmp / "new_leads.csv")
        return ["--set", f"leads_path={path}", "--set", f"new_leads_path={new}"]
    return build


REFUSED: dict[str, Case] = {
    # -- the leads file: readable? -----------------------------------------------------------
    "leads: empty file": Case(raw_file("leads.csv", lambda leads: b""), "empty file (0 bytes)"),
    "leads: header only": Case(leads_file(lambda f: f.head(0)), "no rows"),
    "leads: not UTF-8": Case(raw_file("leads.csv", lambda leads: leads.to_csv().replace("mumbai", "mumb\xe1i")
                                      .encode("latin-1")), "not UTF-8 text"),
    "leads: not a table (.xlsx)": Case(raw_file("leads.xlsx", lambda leads: b"PK\x03\x04"),
                                       "unsupported file type '.xlsx'"),
    "leads: truncated parquet": Case(truncated(lambda tmp, l, s: write_parquet(l, tmp / "whole.parquet"), "leads_path"),
                                     "not a readable parquet file (truncated or corrupt?)", file="cut_whole.parquet"),
    # -- its layout --------------------------------------------------------------------------
    "leads: ';' lines that do not split evenly": Case(leads_text(ragged_semicolons),
                                                      "this looks semicolon-separated", parameter="csv_sep"),
    "leads: csv_sep=semicolon on a comma file": Case(comma_file_read_as_semicolon, "looks ','-separated",
                                                     parameter="csv_sep"),
    "leads: duplicated header": Case(leads_text(lambda p: replace_header(p, ",referred_lead,", ",city_mapped,")),
                                     "duplicated header: 'city_mapped'", column="city_mapped"),
    "leads: headers equal after case-folding": Case(leads_file(lambda f: f.assign(City_Mapped=f["city_mapped"])),
                                                    "duplicated header: 'city_mapped'", column="city_mapped"),
    "leads: duplicated header in parquet": Case(duplicated_parquet, "duplicated header", column="city_mapped",
                                                file="leads.parquet"),
    "leads: missing column": Case(leads_file(lambda f: f.drop(columns=["first_platform_c"])), "missing",
                                  column="first_platform_c"),
    "leads: near-miss header": Case(leads_file(lambda f: f.rename(columns={"created_date": "created_dte"})),
                                    "the file has 'created_dte'", column="created_date"),
    # -- its dates ---------------------------------------------------------------------------
    "leads: day-first dates that read both ways": Case(leads_file(dates_as("%d/%m/%Y %H:%M")),
                                                       "read differently day-first and month-first",
                                                       column="created_date", parameter="leads_dayfirst"),
    "leads: dates in two layouts": Case(leads_file(mixed_layouts), "mixes date layouts", column="created_date",
                                        parameter="leads_date_format"),
    "leads: times with and without an offset": Case(leads_file(some_offsets), "mixes times with a UTC offset",
                                                    column="created_date"),
    "leads: text in the date column": Case(leads_file(lambda f: one_word(f, "created_date", "yesterday")),
                                           "are not dates, e.g. 'yesterday'", column="created_date"),
    "leads: numbers in the date column": Case(leads_file(lambda f: with_column(f, "created_date", 44562.5)),
                                              "holds numbers", column="created_date"),
    "leads: a date format that does not fit": Case(
        lambda tmp, l, s: ["--set", f"leads_path={to_csv(l, tmp / 'leads.csv')}", "--set",
                           "leads_date_format=%d/%m/%Y"], "do not match leads_date_format='%d/%m/%Y'",
        column="created_date"),
    # -- its values --------------------------------------------------------------------------
    "leads: text in a count": Case(leads_file(lambda f: one_word(f, "total_leads_droppped", "three")), "'three'",
                                   column="total_leads_droppped"),
    "leads: a negative count": Case(leads_file(lambda f: with_column(f, "total_leads_droppped", -1.0)), "negative",
                                    column="total_leads_droppped"),
    "leads: an all-empty channel column": Case(leads_file(lambda f: f.assign(first_utm_source_c=None)),
                                               "is empty in every row", column="first_utm_source_c"),
    "leads: an all-empty city": Case(leads_file(lambda f: f.assign(city_mapped=None)), "is empty in every row",
                                     column="city_mapped"),
    "leads: target outside {0, 1}": Case(leads_file(lambda f: f.assign(
        app_complete_flag=f["app_complete_flag"].replace({1: 2}))), "outside {0, 1}", column="app_complete_flag"),
    "leads: target missing in some rows": Case(leads_file(lambda f: one_word(f, "app_complete_flag", "")),
                                               "have no target", column="app_complete_flag"),
    "leads: a target of one class": Case(leads_file(lambda f: f.assign(app_complete_flag=0)), "one class only",
                                         column="app_complete_flag"),
    "leads: a time holdout of one class": Case(leads_file(latest_one_class), "time holdout",
                                               column="app_complete_flag"),
    "leads: 40 leads (a 7-lead holdout)": Case(leads_file(lambda f: f.head(40)), "holds 7 leads",
                                               parameter="min_holdout_leads"),
    "leads: too few of a class for cv_folds": Case(
        lambda tmp, l, s: ["--set", f"leads_path={to_csv(rare_positives(l.head(600)), tmp / 'leads.csv')}",
                           "--set", "min_holdout_leads=10", "--set", "cv_folds=10"], "fewer than cv_folds=10",
        column="app_complete_flag", parameter="cv_folds"),
    "new leads: missing column": Case(new_leads_without("city_mapped"), "missing", column="city_mapped",
                                      file="new_leads.csv"),
    # -- the four CLV files ------------------------------------------------------------------
    "clv: duplicated customer ids": Case(clv_files(customers=lambda f: pd.concat([f, f.head(3)])),
                                         "duplicated id", column="customer_id", file="customers.parquet"),
    "clv: customers without purchases": Case(clv_files(with_purchases=False),
                                             "no file given for the CLV source 'purchases'", file="<purchases>"),
    "clv: blank customer ids in purchases": Case(clv_files(purchases=lambda f: f.assign(customer_id=None), csv=True),
                                                 "have no value", column="customer_id", file="purchases.csv"),
    "clv: only refunds": Case(clv_files(purchases=lambda f: f.assign(amount=-f["amount"].abs())),
                              "no purchase with a positive amount", column="amount", file="purchases.parquet"),
    "clv: signup dates that read both ways": Case(
        clv_files(customers=lambda f: with_column(f, "signup_date",
                                                  ambiguous_days(f["signup_date"]).dt.strftime("%d/%m/%Y")), csv=True),
        "read differently day-first", column="signup_date", parameter="clv_dayfirst", file="customers.csv"),
    # -- a transactions file -----------------------------------------------------------------
    "transactions: truncated parquet": Case(
        truncated(lambda tmp, l, s: write_parquet(transactions(s), tmp / "tx.parquet"), "transactions_path"),
        "not a readable parquet file", file="cut_tx.parquet"),
    "transactions: an unmapped column": Case(tx_file(lambda f: f, "parquet", "--set", "tx_customer_col=Customer"),
                                             "missing", column="Customer", file="transactions.parquet"),
    "transactions: every customer id blank": Case(tx_file(lambda f: f.assign(CustomerID=None)),
                                                  "no line has a customer id", column="CustomerID"),
    "transactions: only returns": Case(tx_file(lambda f: f.assign(Quantity=-f["Quantity"])),
                                       "no line of a known customer has a positive amount", column="Quantity"),
    "transactions: UK invoice dates that read both ways": Case(
        tx_file(lambda f: f.assign(InvoiceDate=ambiguous_days(f["InvoiceDate"]).dt.strftime("%d/%m/%Y %H:%M"))),
        "read differently day-first and month-first", column="InvoiceDate", parameter="tx_dayfirst"),
    "transactions: a horizon longer than the data": Case(
        tx_file(lambda f: f, "parquet", "--set", "horizon_days=3000"), "no customer has a full horizon",
        parameter="horizon_days", file="transactions.parquet"),
    "transactions: a test part below min_holdout_customers": Case(
        tx_file(lambda f: f, "parquet", "--set", "min_holdout_customers=5000"), "fewer than min_holdout_customers",
        parameter="min_holdout_customers", file="transactions.parquet"),
    # -- parameters --------------------------------------------------------------------------
    "param: n_leads=-5": Case(params("n_leads=-5"), "must be in [100, 10_000_000]", parameter="n_leads"),
    "param: cv_folds=1": Case(params("cv_folds=1"), "must be in [2, 20]", parameter="cv_folds"),
    "param: train_share=1.5": Case(params("train_share=1.5"), "must be in (0, 1)", parameter="train_share"),
    "param: engine=dask": Case(params("engine=dask"), "must be one of {pandas, spark}", parameter="engine"),
    "param: psi_warn above psi_fail": Case(params("psi_warn=0.5"), "must be <= 'psi_fail'", parameter="psi_warn"),
    "param: junk above the decision threshold": Case(params("junk_threshold=0.8"), "must be <= 'decision_threshold'",
                                                     parameter="junk_threshold"),
    "param: an unknown model family": Case(params("model_families=lightgbm,xgb"), "got 'xgb'",
                                           parameter="model_families"),
    "param: csv_sep=space": Case(params("csv_sep=space"), "must be one of {auto, comma, semicolon, tab, pipe}",
                                 parameter="csv_sep"),
    "param: transactions and CLV files both": Case(params("transactions_path=a.parquet", "clv_customers_path=c.csv"),
                                                   "cannot both be set", parameter="transactions_path"),
    "param: a typo": Case(params("n_lead=5"), "unknown parameter 'n_lead' (did you mean 'n_leads'?)"),
    "param: ill-typed": Case(params("n_leads=many"), "'n_leads' is int"),
    "param: 300 synthetic leads (a 60-lead holdout)": Case(params("n_leads=300"), "leaves a time holdout of 60",
                                                           parameter="min_holdout_leads"),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_bad_input_is_refused_before_anything_exists(case, leads, shop, isolated, tmp_path, capsys):
    spec = REFUSED[case]
    args = spec.build(tmp_path, leads, shop)
    before, rows, runs = snapshot(isolated), mlflow_rows(isolated), sorted((isolated / "runs").iterdir())
    code, out, err = main(capsys, *args)
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert spec.problem in err, err
    assert "nothing was run" in err
    if spec.column:
        assert f"column '{spec.column}'" in err, err
    if spec.parameter:
        assert spec.parameter in err, err
    written = [a.split("=", 1)[1] for a in args if a.endswith((".csv", ".parquet", ".xlsx")) and "_path=" in a]
    if spec.file or written:
        assert (spec.file or Path(written[0]).name) in err, err
    assert sorted((isolated / "runs").iterdir()) == runs, "a run folder was made"
    assert mlflow_rows(isolated) == rows, "an MLflow run or model version was made"
    assert snapshot(isolated) == before, "an earlier run, outputs/latest or the MLflow store changed"


def test_there_are_at_least_forty_cases():
    assert len(REFUSED) + len(ENVIRONMENT) + len(WARNED) >= 40


def test_a_relative_path_is_taken_from_where_the_user_stands(leads, isolated, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = main(capsys, "--set", "leads_path=exports/leads.csv")
    assert code == 2 and f"{tmp_path}/exports/leads.csv: file not found" in err, err
    assert f"leads_path: exports/leads.csv -> {tmp_path}/exports/leads.csv (relative to your working directory" in out


def test_an_unambiguous_day_first_file_and_an_explicit_dayfirst_pass_the_preflight(leads, shop, tmp_path):
    uk = transactions(shop).assign(InvoiceDate=lambda f: f["InvoiceDate"].dt.strftime("%d/%m/%Y %H:%M"))
    uk.to_csv(tmp_path / "tx.csv", index=False)
    # 700 synthetic customers give about 110 test customers: enough for what this checks.
    base = {**preflight_defaults(), "min_holdout_customers": 100, "transactions_path": str(tmp_path / "tx.csv")}
    (report,) = preflight.check_inputs(base)
    assert report.counts["dates_read.InvoiceDate"] == 1  # day-first, the only reading; counted, not silent
    ambiguous = transactions(shop).assign(InvoiceDate=lambda f: ambiguous_days(f["InvoiceDate"]).dt.strftime("%d/%m/%Y"))
    ambiguous.to_csv(tmp_path / "tx12.csv", index=False)
    (told,) = preflight.check_inputs({**base, "transactions_path": str(tmp_path / "tx12.csv"), "tx_dayfirst": True})
    assert "dates_read.InvoiceDate" not in told.counts


def preflight_defaults() -> dict:
    from utils.pipeline import catalog, params

    merged = {}
    for step in catalog.STEPS:
        merged.update(params.with_defaults(step.notebook, {}))
    return merged


# --- the environment -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_tracking_server_absent(isolated, monkeypatch, capsys, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    code, out, err = main(capsys, "--force")
    assert time.monotonic() - started < 15
    assert code == 2 and uri in err and "MLFLOW_TRACKING_URI" in err and "unset it" in err, err
    return out + err


def env_outputs_unwritable(isolated, monkeypatch, capsys, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setattr(paths, "OUTPUTS_DIR", blocked / "outputs")
    code, out, err = main(capsys)
    assert code == 2 and f"cannot write to {blocked / 'outputs'}" in err and "LEAD2VALUE_OUTPUTS" in err, err
    assert len(err.strip().splitlines()) == 2, err  # the problem and "nothing was run"
    return out + err


def env_unexpected_error(isolated, monkeypatch, capsys, tmp_path):
    def broken(options, runs_dir=None):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(plan, "make_plan", broken)
    code, out, err = main(capsys)
    assert code == 1 and "RuntimeError: something nobody foresaw" in err and "--debug" in err, err
    with pytest.raises(RuntimeError, match="nobody foresaw"):
        run_all.main(["--no-progress", "--debug"])
    capsys.readouterr()
    return out + err


def env_another_run_holds_the_lock(isolated, monkeypatch, capsys, tmp_path):
    with lock.run_lock():
        code, out, err = main(capsys)
    assert code == 3 and "another run_all.py is running" in err, err
    return out + err


def env_a_run_left_running(isolated, monkeypatch, capsys, tmp_path):
    stale = isolated / "runs" / "20260102-000000-default-dead"
    stale.mkdir(parents=True)
    (stale / "status.json").write_text(json.dumps({"status": "running", "pid": 999_999_999}))
    (stale / "manifest.json").write_text(json.dumps({"run_id": stale.name, "status": "running"}))
    try:
        code, out, err = main(capsys, "--set", "n_leads=-5")  # refused after the stale folder is seen
        assert code == 2
        assert f"marked run {stale.name} killed" in out
        assert json.loads((stale / "status.json").read_text())["status"] == "killed"
        assert json.loads((stale / "manifest.json").read_text())["status"] == "killed"
    finally:
        for file in stale.iterdir():
            file.unlink()
        stale.rmdir()
    return out + err


ENVIRONMENT = {
    "env: tracking server not there": env_tracking_server_absent,
    "env: outputs/ not writable": env_outputs_unwritable,
    "env: an unexpected error without --debug": env_unexpected_error,
    "env: another run holds the lock": env_another_run_holds_the_lock,
    "env: a run folder left running by a dead process": env_a_run_left_running,
}


@pytest.mark.parametrize("case", list(ENVIRONMENT), ids=list(ENVIRONMENT))
def test_a_broken_environment_gets_one_clear_line(case, isolated, monkeypatch, capsys, tmp_path):
    runs, rows = {p.name for p in (isolated / "runs").iterdir()}, mlflow_rows(isolated)
    text = ENVIRONMENT[case](isolated, monkeypatch, capsys, tmp_path)
    assert "Traceback" not in text
    assert {p.name for p in (isolated / "runs").iterdir()} == runs
    assert mlflow_rows(isolated) == rows


# --- run with a counted warning: one shared smoke run (slow) ---------------------------------

# Each recoverable oddity in the files below, and the counter that must see it.
WARNED = {
    "leads: a ';'-separated export (sniffed)": "separator_sniffed",
    "leads: headers differing in case and spaces": "headers_matched",
    "leads: an extra column": "extra_columns",
    "leads: a date after the file was written": "future_dates.created_date",
    "leads: a placeholder date (1970)": "early_dates.created_date",
    "leads: exact duplicate rows": "duplicate_rows",
    "new leads: levels never seen in training": "unseen_levels.first_utm_source_c",
    "transactions: UK dates, day-first the only reading": "dates_read.InvoiceDate",
    "transactions: lines without a customer": "unknown_customer_lines",
    "transactions: returns": "return_lines",
}


def odd_leads(leads: pd.DataFrame) -> pd.DataFrame:
    odd = leads.copy()
    odd["notes"] = "an extra column"
    odd = pd.concat([odd, odd.head(4)], ignore_index=True)  # exact duplicates
    # Times with offsets across the October DST change: read as UTC, never refused.
    london = odd["created_date"].dt.tz_localize("Europe/London", nonexistent="shift_forward",
                                                ambiguous=np.zeros(len(odd), dtype=bool))
    text = london.dt.strftime("%Y-%m-%dT%H:%M:%S%z").copy()
    text.iloc[10] = "2099-01-01T00:00:00+0000"
    text.iloc[11] = "1970-01-01T00:00:00+0000"
    return odd.assign(created_date=text)


@pytest.fixture(scope="module")
def smoke(leads, shop, tmp_path_factory):
    """Ctrl-C in one run, kill -9 in the next, then a full smoke run over files with every recoverable oddity."""
    folder = tmp_path_factory.mktemp("smoke")
    outputs, inputs = folder / "outputs", folder / "inputs"
    inputs.mkdir()
    env = dict(os.environ, LEAD2VALUE_OUTPUTS=str(outputs))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri exports it to every later subprocess
    command = [sys.executable, str(paths.PROJECT_ROOT / "run_all.py"), "--profile", "smoke", "--no-progress"]

    def until_a_kernel_runs(*extra):
        process = subprocess.Popen([*command, "--force", *extra], cwd=inputs, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        seen = ""
        while "00_data: executing" not in seen:
            line = process.stdout.readline()
            assert line, f"run_all ended early: {seen}{process.stderr.read()}"
            seen += line
        time.sleep(3)  # inside the notebook
        return process, seen

    interrupted, seen = until_a_kernel_runs()
    os.killpg(interrupted.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    out, err = interrupted.communicate(timeout=120)
    ctrl_c = {"code": interrupted.returncode, "stdout": seen + out, "stderr": err}

    killed, _ = until_a_kernel_runs()
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)

    odd = odd_leads(leads)
    header = ";".join([""] + [f" {c.upper()} " if c in ("created_date", "city_mapped") else c for c in odd.columns])
    body = odd.to_csv(sep=";", header=False)
    (inputs / "leads.csv").write_text(header + "\n" + body)
    new = leads.drop(columns=["app_complete_flag"]).tail(60).copy()
    new.loc[new.index[:4], "first_utm_source_c"] = "Level777"
    to_csv(new, inputs / "new_leads.csv")
    tx = transactions(shop)
    tx.loc[tx.index[:5], "CustomerID"] = None
    tx.loc[tx.index[5:8], "Quantity"] = -1
    tx["InvoiceDate"] = tx["InvoiceDate"].dt.strftime("%d/%m/%Y %H:%M")
    tx.to_csv(inputs / "transactions.csv", index=False)
    # psi_fail lifted: 60 new leads from the latest weeks drift from the training mix by sampling alone
    # (batch-size-aware drift is issue 10's), and drift is not what this run is about. The holdout
    # minimums lowered to these small, quick files (about 300 leads and 110 customers): what the
    # run checks is that every oddity is counted, not that a model earns a promotion.
    result = subprocess.run([*command, "--set", "leads_path=leads.csv", "--set", "new_leads_path=new_leads.csv",
                             "--set", "transactions_path=transactions.csv", "--set", "psi_fail=100",
                             "--set", "min_holdout_leads=200", "--set", "min_holdout_customers=100"],
                            cwd=inputs, env=env, capture_output=True, text=True, timeout=900, check=False)
    return {"outputs": outputs, "inputs": inputs, "ctrl_c": ctrl_c, "result": result}


@pytest.mark.slow
def test_the_run_with_every_recoverable_oddity_succeeds_and_counts_each(smoke):
    result = smoke["result"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = (smoke["outputs"] / "latest").resolve()
    table = pd.read_csv(run / "tables" / "data_contract_warnings.csv")
    for case, counter in WARNED.items():
        assert counter in result.stdout, f"{case}: '{counter}' not counted in the input check"
        assert counter in set(table["check"]), f"{case}: '{counter}' missing from 00's warnings table"
    assert f"leads_path: leads.csv -> {smoke['inputs'] / 'leads.csv'} (relative to your working directory" \
        in result.stdout
    leads_raw = pd.read_parquet(run / "data" / "leads_raw.parquet")
    # The offsets were converted: 2021-07-01 10:00+01:00 is 09:00 UTC; nothing landed after the data.
    assert leads_raw["created_date"].between("2021-06-30", "2022-02-15").mean() > 0.99
    purchases = pd.read_parquet(run / "data" / "clv_purchases.parquet")
    assert purchases["timestamp"].max() <= pd.Timestamp("2023-01-01"), "a day-first date read month-first"


@pytest.mark.slow
def test_ctrl_c_stops_with_one_line(smoke):
    ctrl_c = smoke["ctrl_c"]
    assert ctrl_c["code"] == 130
    lines = [line for line in ctrl_c["stderr"].splitlines() if line.strip()]
    assert lines == ["interrupted: earlier runs, outputs/latest and the champion aliases are unchanged."], lines


@pytest.mark.slow
def test_runs_left_behind_by_ctrl_c_and_kill_9_are_marked_killed_with_their_mlflow_runs(smoke):
    from mlflow import MlflowClient

    outputs = smoke["outputs"]
    statuses = {p.name: json.loads((p / "status.json").read_text())["status"] for p in (outputs / "runs").iterdir()}
    assert sorted(statuses.values()) == ["killed", "killed", "succeeded"], statuses
    assert "marked run" in smoke["result"].stdout and "MLflow run(s) KILLED" in smoke["result"].stdout
    uri = f"sqlite:///{outputs / 'mlflow' / 'mlflow.db'}"
    runs = MlflowClient(tracking_uri=uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri=uri).search_experiments()])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert sum(r.info.status == "KILLED" and "lead2value.run_id" in r.data.tags for r in runs) == 2
