import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from utils import data
from utils.validate import INTERACTION_COLUMNS, LEADS_COLUMNS, DataContractError, validate_raw_leads


def raw_leads_csv(path, n=6, city=("mumbai", None, "ncr")):
    """A CSV shaped like the real export: an unnamed index column, dates as text."""
    frame = pd.DataFrame({
        "created_date": [f"2021-07-0{i + 1} 10:00:0{i}" for i in range(n)],
        "city_mapped": [city[i % len(city)] for i in range(n)],
        "first_platform_c": ["Level0"] * n, "first_utm_medium_c": ["Level2"] * n, "first_utm_source_c": ["Level7"] * n,
        "total_leads_droppped": [1.0, 2.0, np.nan, 1.0, 1.0, 3.0][:n], "referred_lead": [0.0, 1.0, np.nan, 0, 0, 0][:n],
        **{c: [np.nan] * n for c in INTERACTION_COLUMNS},
        "app_complete_flag": [0, 1] * (n // 2),
    })
    frame.loc[0, "download_button_clicked"] = 3.0
    frame.to_csv(path)  # index written as the unnamed first column
    return path


def test_read_leads_csv_gives_contract_dtypes(tmp_path):
    leads = data.read_leads(raw_leads_csv(tmp_path / "leads.csv"))
    assert list(leads.columns) == list(LEADS_COLUMNS)
    assert leads["created_date"].dtype == "datetime64[ns]"
    assert leads["total_leads_droppped"].dtype == "float64" and leads["1_on_1_industry_mentorship"].dtype == "float64"
    assert leads["app_complete_flag"].dtype == "int64" and leads["city_mapped"].dtype == object
    assert leads["city_mapped"].isna().sum() == 2 and leads["download_button_clicked"].iloc[0] == 3.0


def test_read_leads_parquet_round_trip(tmp_path):
    leads = data.read_leads(raw_leads_csv(tmp_path / "leads.csv"))
    data.write_parquet(leads, tmp_path / "leads.parquet")
    pd.testing.assert_frame_equal(data.read_leads(tmp_path / "leads.parquet"), leads)


def test_all_empty_city_column_is_read_as_text(tmp_path):
    leads = data.read_leads(raw_leads_csv(tmp_path / "leads.csv", city=(None,)))
    assert leads["city_mapped"].dtype == object and leads["city_mapped"].isna().all()


def test_read_leads_text_in_numeric_column_raises(tmp_path):
    path = raw_leads_csv(tmp_path / "leads.csv")
    text = path.read_text().splitlines()
    text[1] = text[1].replace(",1.0,0.0,", ",one,0.0,", 1)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataContractError, match="column 'total_leads_droppped'.*'one'"):
        data.read_leads(path)


def test_read_leads_created_before_drops_later_rows_before_parsing_them(tmp_path):
    path = raw_leads_csv(tmp_path / "leads.csv")
    text = path.read_text().splitlines()
    text[-1] = text[-1].replace(",3.0,0.0,", ",three,0.0,", 1)  # the last lead, created 2021-07-06
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataContractError, match="'three'"):
        data.read_leads(path)
    early = data.read_leads(path, created_before="2021-07-06")
    assert len(early) == 5 and early["created_date"].max() < pd.Timestamp("2021-07-06")
    assert early["total_leads_droppped"].dtype == "float64"
    full = data.read_leads(raw_leads_csv(tmp_path / "clean.csv"))
    pd.testing.assert_frame_equal(early, full.iloc[:5])
    assert len(data.read_leads(path, created_before="2021-07-01")) == 0


def test_header_only_file_reads_empty_and_fails_validation(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("," + ",".join(LEADS_COLUMNS) + "\n")
    leads = data.read_leads(path)
    assert len(leads) == 0
    with pytest.raises(DataContractError, match="no rows"):
        validate_raw_leads(leads, str(path))


def test_unreadable_files_raise_clear_errors(tmp_path):
    with pytest.raises(DataContractError, match="file not found"):
        data.read_table(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataContractError, match="empty file"):
        data.read_table(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(DataContractError, match="no header"):
        data.read_table(tmp_path / "blank.csv")
    (tmp_path / "sheet.xlsx").write_bytes(b"PK")
    with pytest.raises(DataContractError, match="unsupported file type"):
        data.read_table(tmp_path / "sheet.xlsx")


def test_non_utf8_csv_names_the_byte(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("city,n\nmünchen,1\n".encode("latin-1"))
    with pytest.raises(DataContractError, match=r"not UTF-8 text: byte 0xfc at offset 8 \(line 2\)"):
        data.read_table(path)


def test_utf8_with_bom_is_read(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffcity,n\nmünchen,1\n".encode("utf-8"))
    assert list(data.read_table(path).columns) == ["city", "n"]


def test_truncated_parquet_raises(tmp_path):
    path = tmp_path / "t.parquet"
    data.write_parquet(pd.DataFrame({"a": range(1000)}), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataContractError, match="truncated or corrupt"):
        data.read_table(path)


def test_read_clv_sources_and_empty_optional_sources(tmp_path):
    pd.DataFrame({"customer_id": [1, 2], "signup_date": ["2021-01-01", "2021-01-02"], "age": [30.0, np.nan],
                  "gender": ["f", None], "country": ["EIRE", "USA"]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"customer_id": [1], "order_id": [5], "timestamp": ["2021-01-03 10:00"], "amount": ["9.5"],
                  "n_items": [1]}).to_csv(tmp_path / "p.csv", index=False)
    sources = data.read_clv_sources({"customers": tmp_path / "c.csv", "purchases": tmp_path / "p.csv",
                                     "web_actions": "", "campaigns": None})
    customers, purchases = sources["customers"], sources["purchases"]
    assert customers["customer_id"].dtype == "int64" and str(customers["age"].dtype) == "Int64"
    assert customers["signup_date"].dtype == "datetime64[ns]" and purchases["amount"].dtype == "float64"
    assert purchases["order_id"].iloc[0] == 5 or purchases["order_id"].iloc[0] == "5"
    assert len(sources["web_actions"]) == 0 and sources["campaigns"]["sent_at"].dtype == "datetime64[ns]"
    with pytest.raises(DataContractError, match="customers"):
        data.read_clv_sources({"purchases": tmp_path / "p.csv"})


def test_split_latest_holds_out_the_newest_leads_without_target():
    leads = pd.DataFrame({"created_date": pd.date_range("2021-07-01", periods=20, freq="D")[::-1],
                          "app_complete_flag": [0, 1] * 10})
    earlier, new = data.split_latest(leads, 0.1)
    assert len(earlier) == 18 and len(new) == 2 and "app_complete_flag" not in new.columns
    assert new["created_date"].min() > earlier["created_date"].max()
    with pytest.raises(ValueError):
        data.split_latest(leads, 1.0)


def test_sha256_and_snapshot(tmp_path):
    (tmp_path / "abc.txt").write_bytes(b"abc")
    assert data.sha256_file(tmp_path / "abc.txt") == hashlib.sha256(b"abc").hexdigest()
    run = tmp_path / "run"
    frame = pd.DataFrame({"a": [1, 2, 3]})
    data.write_parquet(frame, run / "data" / "leads_raw.parquet")
    data.write_parquet(frame, run / "data" / "clv_customers.parquet")
    out = data.write_snapshot(run, {"leads_raw.parquet": str(tmp_path / "abc.txt"), "clv_customers.parquet": "synthetic"})
    snapshot = json.loads(out.read_text())
    assert out == run / "data" / "raw_snapshot.json"
    assert snapshot["leads_raw.parquet"]["rows"] == 3 and snapshot["clv_customers.parquet"]["source"] == "synthetic"
    assert snapshot["leads_raw.parquet"]["source_sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert snapshot["clv_customers.parquet"]["sha256"] == data.sha256_file(run / "data" / "clv_customers.parquet")
    with pytest.raises(FileNotFoundError):
        data.write_snapshot(run, {"absent.parquet": "synthetic"})


def test_write_parquet_is_byte_stable(tmp_path):
    frame = pd.DataFrame({"d": pd.date_range("2021-01-01", periods=3), "x": [1.5, np.nan, 2.0], "s": ["a", None, "c"]})
    first, second = data.write_parquet(frame, tmp_path / "1.parquet"), data.write_parquet(frame, tmp_path / "2.parquet")
    assert first.read_bytes() == second.read_bytes()


def test_real_leads_file_reads_and_validates(shared_data):
    path = shared_data / "codepro" / "leads_labelled_25k.csv"
    if not path.exists():
        pytest.skip(f"{path} absent")
    leads = data.read_leads(path)
    assert leads.shape == (24_991, 45) and list(leads.columns) == list(LEADS_COLUMNS)
    report = validate_raw_leads(leads, str(path))
    assert report.counts.get("duplicate_rows") == 8
