"""Reading any table with a clear error, stable parquet bytes, the raw snapshot."""
import hashlib

import numpy as np
import pandas as pd
import pytest

from utils.core import io
from utils.core.contracts import DataContractError


def test_unreadable_files_raise_clear_errors(tmp_path):
    with pytest.raises(DataContractError, match="file not found"):
        io.read_table(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataContractError, match="empty file"):
        io.read_table(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(DataContractError, match="no header"):
        io.read_table(tmp_path / "blank.csv")
    (tmp_path / "sheet.xlsx").write_bytes(b"PK")
    with pytest.raises(DataContractError, match="unsupported file type"):
        io.read_table(tmp_path / "sheet.xlsx")


def test_non_utf8_csv_names_the_byte(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("city,n\nmünchen,1\n".encode("latin-1"))
    with pytest.raises(DataContractError, match=r"not UTF-8 text: byte 0xfc at offset 8 \(line 2\)"):
        io.read_table(path)


def test_utf8_with_bom_is_read(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffcity,n\nmünchen,1\n".encode("utf-8"))
    assert list(io.read_table(path).columns) == ["city", "n"]


def test_truncated_parquet_raises(tmp_path):
    path = tmp_path / "t.parquet"
    io.write_parquet(pd.DataFrame({"a": range(1000)}), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataContractError, match="truncated or corrupt"):
        io.read_table(path)


def test_write_parquet_is_byte_stable(tmp_path):
    frame = pd.DataFrame({"d": pd.date_range("2021-01-01", periods=3), "x": [1.5, np.nan, 2.0], "s": ["a", None, "c"]})
    first, second = io.write_parquet(frame, tmp_path / "1.parquet"), io.write_parquet(frame, tmp_path / "2.parquet")
    assert first.read_bytes() == second.read_bytes()


def test_snapshot_records_hashes_rows_and_sources(tmp_path):
    (tmp_path / "abc.txt").write_bytes(b"abc")
    frame = pd.DataFrame({"a": [1, 2, 3]})
    leads = io.write_parquet(frame, tmp_path / "leads_raw.parquet")
    customers = io.write_parquet(frame, tmp_path / "clv_customers.parquet")
    snapshot = io.snapshot({"leads_raw": (leads, str(tmp_path / "abc.txt")), "clv_customers": (customers, "synthetic")})
    assert snapshot["leads_raw"]["rows"] == 3 and snapshot["clv_customers"]["source"] == "synthetic"
    assert snapshot["leads_raw"]["source_sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert snapshot["clv_customers"]["sha256"] == hashlib.sha256(customers.read_bytes()).hexdigest()
    assert "source_sha256" not in snapshot["clv_customers"]
    with pytest.raises(FileNotFoundError):
        io.snapshot({"absent": (tmp_path / "absent.parquet", "synthetic")})


def test_parquet_rows_reads_the_footer_only(tmp_path):
    path = io.write_parquet(pd.DataFrame({"a": range(7)}), tmp_path / "x.parquet")
    assert io.parquet_rows(path) == 7


def test_check_utf8_accepts_multibyte_characters_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "_CHUNK", 3)
    path = tmp_path / "x.csv"
    path.write_text("city\nBengaluru ಬೆಂಗಳೂರು\n", encoding="utf-8")
    io.check_utf8(path)
    path.write_bytes(b"city\nM\xfcnchen\n")
    with pytest.raises(DataContractError, match="line 2"):
        io.check_utf8(path)


def test_the_separator_is_sniffed_and_noted(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("a;b;c\n1;2,5;3\n4;5;6\n")
    frame = io.read_table(path)
    assert list(frame.columns) == ["a", "b", "c"] and frame["b"].tolist() == ["2,5", "5"]
    assert frame.attrs["lead2value.read_notes"][0][0] == "separator_sniffed"
    comma = tmp_path / "comma.csv"
    comma.write_text("a,b\n1,2\n")
    assert "lead2value.read_notes" not in io.read_table(comma).attrs


def test_a_separator_that_cannot_be_told_asks_for_csv_sep(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a;b;c\n1;2;3\n4;5\n")
    with pytest.raises(DataContractError, match="this looks semicolon-separated .* set csv_sep=semicolon"):
        io.read_table(path)
    frame = io.read_table(path, sep="comma")  # as told: one column, the schema will say what is missing
    assert list(frame.columns) == ["a;b;c"]
    with pytest.raises(DataContractError, match="csv_sep='space' is not one of auto, comma"):
        io.read_table(path, sep="space")


def test_csv_sep_is_used_as_given(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a|b\n1|2\n")
    frame = io.read_table(path, sep="pipe")
    assert list(frame.columns) == ["a", "b"] and frame.attrs["lead2value.read_notes"][0][0] == "separator_given"


def test_duplicated_headers_are_refused_not_renamed(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text(",city_mapped,x,city_mapped\n0,pune,1,delhi\n")
    with pytest.raises(DataContractError, match="duplicated header: 'city_mapped' \\(column 2\\)"):
        io.read_table(path)
    import pyarrow as pa
    import pyarrow.parquet as pq
    parquet = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1], [2]], names=["city_mapped", "city_mapped"]), parquet)
    with pytest.raises(DataContractError, match="duplicated header"):
        io.read_table(parquet)


def test_the_frame_notes_when_its_file_was_written(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    written = pd.Timestamp(io.read_table(path).attrs["lead2value.written_at"])
    assert abs(written - pd.Timestamp.now()) < pd.Timedelta(minutes=5)


def test_read_parquet_gives_the_frame_pandas_gives(tmp_path):
    frame = pd.DataFrame({"d": pd.date_range("2021-01-01", periods=3, tz="UTC"), "x": [1.5, np.nan, 2.0],
                          "s": ["a", None, "c"], "c": pd.Categorical(["u", "v", "u"]),
                          "n": pd.array([1, None, 3], dtype="Int64")})
    path = tmp_path / "x.parquet"
    frame.to_parquet(path)
    pd.testing.assert_frame_equal(io.read_parquet(path), pd.read_parquet(path), check_exact=True)
    pd.testing.assert_frame_equal(io.read_parquet(str(path), columns=["s"]), frame[["s"]])


def test_no_bare_pandas_parquet_reader_outside_the_helper():
    """pd.read_parquet(path) hands pyarrow a Python file: a short process may abort at exit (see io._LOCAL_FS)."""
    from utils.core.paths import PROJECT_ROOT

    sources = [*(PROJECT_ROOT / "utils").rglob("*.py"), *(PROJECT_ROOT / "bench").glob("bench_*.py"),
               PROJECT_ROOT / "run_all.py", *(PROJECT_ROOT / "notebooks").glob("*.ipynb")]
    bare = [str(f.relative_to(PROJECT_ROOT)) for f in sources
            if "pd.read_parquet(" in f.read_text(encoding="utf-8") and f.name != "io.py"]
    assert not bare, f"use utils.core.io.read_parquet in {bare}"
