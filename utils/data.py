"""Reading user files into the contract's dtypes, writing run data, and the raw snapshot.

Every reader fails with a :class:`~utils.validate.DataContractError` that names the file
and says what is wrong (not found, empty, not UTF-8, truncated parquet, text in a numeric
column ...). Content checks with counted warnings live in :mod:`utils.validate`.
"""
from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from utils import paths
from utils.fingerprint import sha256_file
from utils.validate import (
    CLV_SCHEMAS,
    LEADS_CATEGORICAL,
    LEADS_NUMERIC,
    LEADS_TARGET,
    DataContractError,
    as_datetime,
    as_number,
    as_whole_number,
)

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
_CHUNK = 1 << 20


# --- reading ----------------------------------------------------------------------------------


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (UTF-8, optional BOM) or parquet file as a frame, or a clear error."""
    path = Path(path)
    if not path.is_file():
        raise DataContractError(str(path), None, "file not found")
    if path.stat().st_size == 0:
        raise DataContractError(str(path), None, "empty file (0 bytes)")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    raise DataContractError(str(path), None, f"unsupported file type '{suffix}': give a .csv or .parquet file")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:  # a damaged file fails in several ways
        raise DataContractError(str(path), None, f"not a readable parquet file (truncated or corrupt?): {error}") from None
    # A pandas index saved with the frame is not data.
    return frame.reset_index(drop=True)


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    check_utf8(path)
    try:
        return pd.read_csv(path, sep=sep, encoding="utf-8-sig", low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataContractError(str(path), None, "empty file: no header line") from None
    except pd.errors.ParserError as error:
        raise DataContractError(str(path), None, f"not a readable CSV file: {error}") from None


def check_utf8(path: str | Path) -> None:
    """Raise if the file holds bytes that are not UTF-8, naming the first bad byte and its offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                # error.start may be negative when the bad sequence began in the previous block.
                start = max(error.start, 0)
                line = lines + block[:start].count(b"\n") + 1
                raise DataContractError(
                    str(path), None,
                    f"not UTF-8 text: byte 0x{block[start]:02x} at offset {offset + start:,} (line {line:,}); "
                    "save the file as UTF-8 (e.g. from Excel: 'CSV UTF-8')") from None
            offset += len(block)
            lines += block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataContractError(str(path), None, "not UTF-8 text: the file ends inside a character") from None


def read_leads(path: str | Path, created_before: str | pd.Timestamp | None = None) -> pd.DataFrame:
    """Raw CodePro leads (CSV with its unnamed index column, or parquet) in the contract's dtypes.

    ``created_before`` (a date): rows created on or after it, or without a date, are dropped
    right after the file is read, before any other column is parsed; nothing of theirs
    but ``created_date`` is ever looked at.
    """
    frame = read_table(path)
    first = str(frame.columns[0]) if len(frame.columns) else ""
    if first.startswith("Unnamed: 0") or first in ("", "index"):
        frame = frame.drop(columns=frame.columns[0])
    if created_before is not None:
        if "created_date" not in frame.columns:
            raise DataContractError(str(path), "created_date", "missing: needed to keep rows created before a date")
        created = as_datetime(frame["created_date"], str(path), "created_date")
        frame = frame.loc[(created < pd.Timestamp(created_before)).to_numpy()].reset_index(drop=True)
    return coerce_leads(frame, str(path))


def coerce_leads(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """created_date -> datetime64[ns], flags -> float64, levels -> object, target -> int64 (when complete)."""
    out = frame.copy()
    if "created_date" in out.columns:
        out["created_date"] = as_datetime(out["created_date"], file, "created_date")
    for column in LEADS_NUMERIC:
        if column in out.columns:
            out[column] = as_number(out[column], file, column)
    for column in LEADS_CATEGORICAL:
        if column in out.columns:
            # An all-empty column is read as float; levels are text.
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    if LEADS_TARGET in out.columns:
        target = as_number(out[LEADS_TARGET], file, LEADS_TARGET)
        complete = target.notna().all() and (target % 1 == 0).all()
        out[LEADS_TARGET] = target.astype("int64") if complete else target
    return out


def read_clv_sources(paths_by_source: Mapping[str, str | Path | None]) -> dict[str, pd.DataFrame]:
    """customers, web_actions, campaigns, purchases from user files, in the contract's dtypes.

    customers and purchases are required; an empty or absent path for web_actions or
    campaigns gives an empty frame (a shop's export often has neither).
    """
    frames = {}
    for name in CLV_SCHEMAS:
        path = paths_by_source.get(name)
        if not path:
            if name in ("customers", "purchases"):
                raise DataContractError(f"<{name}>", None, f"no file given for the CLV source '{name}'")
            frames[name] = empty_clv_frame(name)
            continue
        frames[name] = coerce_clv(name, read_table(path), str(path))
    return frames


def coerce_clv(name: str, frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """One CLV source in the contract's dtypes; columns outside the schema are kept as they are."""
    out = frame.copy()
    for column, kind in CLV_SCHEMAS[name].items():
        if column not in out.columns:
            continue
        values = out[column]
        if kind == "datetime":
            out[column] = as_datetime(values, file, column)
        elif kind == "number":
            out[column] = as_number(values, file, column)
        elif kind in ("id", "integer"):
            parsed = as_whole_number(values, file, column)
            out[column] = parsed.astype("int64") if parsed.notna().all() else parsed.astype("Int64")
        else:
            out[column] = values.astype(object).where(values.notna(), None)
    if name == "customers" and "age" in out.columns:
        out["age"] = out["age"].round().astype("Int64")
    return out


def empty_clv_frame(name: str) -> pd.DataFrame:
    dtypes = {"id": "int64", "datetime": "datetime64[ns]", "number": "float64", "integer": "int64", "text": object}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[k]) for c, k in CLV_SCHEMAS[name].items()})


def split_latest(leads: pd.DataFrame, share: float = 0.1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier leads, latest ``share`` of leads by created_date without the target).

    Stands in for "new leads" when a user gives labelled leads only: scoring then
    runs on leads that come after everything the model was trained on.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    ordered = leads.sort_values("created_date", kind="stable").reset_index(drop=True)
    cut = len(ordered) - max(1, round(len(ordered) * share))
    new = ordered.iloc[cut:].drop(columns=[LEADS_TARGET], errors="ignore").reset_index(drop=True)
    return ordered.iloc[:cut].reset_index(drop=True), new


# --- writing ----------------------------------------------------------------------------------


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write without the pandas index; same frame -> same bytes (no timestamps in the file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False, engine="pyarrow", compression="snappy")
    return path


def parquet_rows(path: str | Path) -> int:
    return int(pq.ParquetFile(path).metadata.num_rows)


def write_snapshot(run: str | Path, sources: Mapping[str, str]) -> Path:
    """Write ``<run>/data/raw_snapshot.json``: {file: {sha256, rows, source[, source_sha256]}}.

    ``sources`` maps each file written under ``<run>/data`` to "synthetic" or the user's
    path; for a user file its own sha256 is recorded too, so a changed input is visible.
    """
    folder = paths.data_dir(Path(run))
    snapshot = {}
    for name, source in sorted(sources.items()):
        file = folder / name
        if not file.is_file():
            raise FileNotFoundError(f"write_snapshot: {file} was not written")
        entry = {"sha256": sha256_file(file), "rows": parquet_rows(file) if file.suffix == ".parquet" else None,
                 "source": str(source)}
        if source != "synthetic" and Path(source).is_file():
            entry["source_sha256"] = sha256_file(source)
        snapshot[name] = entry
    out = folder / "raw_snapshot.json"
    out.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    return out
