"""Reading user files and writing run data: every reader fails with a
:class:`~utils.core.contracts.DataContractError` that names the file and says what is
wrong (not found, empty, not UTF-8, truncated parquet ...). What a file must hold is
checked by the schemas (:mod:`utils.leads.schema`, :mod:`utils.clv.schema`).
"""
from __future__ import annotations

import codecs
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from utils.core.contracts import DataContractError
from utils.core.hashing import sha256_file

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


# --- writing ----------------------------------------------------------------------------------


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write without the pandas index; same frame -> same bytes (no timestamps in the file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False, engine="pyarrow", compression="snappy")
    return path


def parquet_rows(path: str | Path) -> int:
    return int(pq.ParquetFile(path).metadata.num_rows)


def snapshot(files: Mapping[str, tuple[Path, str]]) -> dict[str, dict]:
    """{name: {sha256, rows, source[, source_sha256]}} for files just written.

    ``files`` maps a name to (the written file, "synthetic" or the user's path it came
    from); for a user file its own sha256 is recorded too, so a changed input is visible.
    """
    entries = {}
    for name, (file, source) in sorted(files.items()):
        file = Path(file)
        if not file.is_file():
            raise FileNotFoundError(f"snapshot: {file} was not written")
        entry = {"sha256": sha256_file(file), "rows": parquet_rows(file) if file.suffix == ".parquet" else None,
                 "source": str(source)}
        if source != "synthetic" and Path(source).is_file():
            entry["source_sha256"] = sha256_file(source)
        entries[name] = entry
    return entries
