"""Reading user files and writing run data: every reader fails with a
:class:`~utils.core.contracts.DataContractError` that names the file and says what is
wrong (not found, empty, not UTF-8, truncated parquet, a header naming a column twice,
a separator it cannot tell ...). A CSV's separator is sniffed unless ``csv_sep`` names it.
What a file must hold is checked by the schemas (:mod:`utils.leads.schema`, :mod:`utils.clv.schema`).
"""
from __future__ import annotations

import codecs
import csv
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from utils.core.contracts import WRITTEN_AT, DataContractError, check_duplicate_headers, note
from utils.core.hashing import sha256_file

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
_CHUNK = 1 << 20


# --- reading ----------------------------------------------------------------------------------

# The csv_sep parameter's values; "auto" sniffs the separator from the file's first lines.
SEPARATORS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
_SNIFF_BYTES = 1 << 16
# Given a local path, pandas 2.1 opens the file itself and hands pyarrow a Python file object.
# pyarrow's dataset reader then holds Python objects (that file, the bytes it read), and one of
# its worker threads drops them just after read_parquet returns; if the process is exiting by
# then, CPython kills that thread inside a C++ destructor: "terminate called without an active
# exception", SIGABRT, exit 134, about once in 100 short processes (apache/arrow#34314). With a
# pyarrow filesystem pandas passes the path and Arrow reads the file natively: nothing of Python's
# to release, the same frame. bench/soak_parquet_exit.py counts the aborts.
_LOCAL_FS = pafs.LocalFileSystem()


def read_table(path: str | Path, sep: str = "auto") -> pd.DataFrame:
    """A CSV (UTF-8, optional BOM) or parquet file as a frame, or a clear error.

    ``sep`` is a name from :data:`SEPARATORS` or ``auto``: a CSV's separator is sniffed
    from its first lines (a separator other than the file type's usual one is noted
    and counted). A header that names a column twice is refused, never renamed. The
    frame notes when its file was last written (for dates that cannot have happened yet).
    """
    path = Path(path)
    if not path.is_file():
        raise DataContractError(str(path), None, "file not found")
    if path.stat().st_size == 0:
        raise DataContractError(str(path), None, "empty file (0 bytes)")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
    elif suffix in CSV_SUFFIXES:
        frame = _read_csv(path, sep, default="\t" if suffix == ".tsv" else ",")
    else:
        raise DataContractError(str(path), None, f"unsupported file type '{suffix}': give a .csv or .parquet file")
    frame.attrs[WRITTEN_AT] = pd.Timestamp.fromtimestamp(path.stat().st_mtime).isoformat()
    return frame


def read_parquet(path: str | Path, **kwargs) -> pd.DataFrame:
    """``pd.read_parquet`` of a local file, without the abort at interpreter exit (see ``_LOCAL_FS``)."""
    return pd.read_parquet(path, filesystem=_LOCAL_FS, **kwargs)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        names = [n for n in pq.read_schema(path).names if not n.startswith("__index_level_")]
        check_duplicate_headers(names, str(path))
        frame = read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:  # a damaged file fails in several ways
        if isinstance(error, DataContractError):
            raise
        raise DataContractError(str(path), None, f"not a readable parquet file (truncated or corrupt?): {error}") from None
    # A pandas index saved with the frame is not data.
    return frame.reset_index(drop=True)


def _read_csv(path: Path, sep: str, default: str) -> pd.DataFrame:
    check_utf8(path)
    if sep != "auto" and sep not in SEPARATORS:
        raise DataContractError(str(path), None, f"csv_sep={sep!r} is not one of auto, {', '.join(SEPARATORS)}")
    lines = _first_lines(path)
    if not lines:
        raise DataContractError(str(path), None, "empty file: no header line")
    chosen = SEPARATORS[sep] if sep != "auto" else sniff_separator(lines, default, str(path))
    check_duplicate_headers(next(csv.reader(lines[:1], delimiter=chosen)), str(path))
    try:
        frame = pd.read_csv(path, sep=chosen, encoding="utf-8-sig", low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataContractError(str(path), None, "empty file: no header line") from None
    except pd.errors.ParserError as error:
        raise DataContractError(str(path), None, f"not a readable CSV file (read as {_name(chosen)}-separated): "
                                                 f"{error}") from None
    if chosen != default:
        note(frame, "separator_sniffed" if sep == "auto" else "separator_given", 1,
             f"read as {_name(chosen)}-separated ({'sniffed from the first lines; set csv_sep to override' if sep == 'auto' else 'csv_sep'})")
    return frame


def _first_lines(path: Path) -> list[str]:
    """The file's first lines (without a last one the sample cut in half), BOM removed."""
    with open(path, "rb") as handle:
        sample = handle.read(_SNIFF_BYTES)
    text = sample.decode("utf-8-sig", errors="ignore")
    lines = text.splitlines()
    if len(sample) == _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]
    return [line for line in lines if line.strip()]


def sniff_separator(lines: list[str], default: str, file: str) -> str:
    """The separator that splits every sampled line into the same number (> 1) of fields.

    The file type's usual one wins when it works; another that alone works is used. When
    none or several do, the message says which one the header suggests and how to set it.
    """
    consistent = []
    for candidate in SEPARATORS.values():
        counts = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        if len(counts) == 1 and counts.pop() > 1:
            consistent.append(candidate)
    if default in consistent or (not consistent and default in lines[0]):
        return default
    if len(consistent) == 1:
        return consistent[0]
    header = lines[0]
    likely = max(consistent or SEPARATORS.values(), key=header.count)
    if header.count(likely) == 0:
        return default  # one column: the schema says which columns are missing
    raise DataContractError(file, None, f"this looks {_name(likely)}-separated ({header.count(likely)} "
                                        f"{likely!r} in the header), but the lines do not split evenly: "
                                        f"set csv_sep={_name(likely)}")


def _name(sep: str) -> str:
    return next((name for name, char in SEPARATORS.items() if char == sep), repr(sep))


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
