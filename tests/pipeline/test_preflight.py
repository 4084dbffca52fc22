import pytest

from utils.pipeline import preflight
from utils.leads.synth import generate_leads
from utils.core.contracts import DataContractError


def test_no_user_files_means_nothing_to_check():
    assert preflight.check_inputs({"leads_path": "", "transactions_path": ""}) == []


def test_a_good_leads_file_gives_its_report(tmp_path):
    path = tmp_path / "leads.csv"
    generate_leads(200, random_seed=1).to_csv(path)
    (report,) = preflight.check_inputs({"leads_path": str(path)})
    assert report.rows == 200 and str(path) in report.file


def test_missing_purchases_with_customers_is_an_error(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,signup_date,age,gender,country\n1,2021-01-01,30,F,USA\n")
    with pytest.raises(DataContractError, match="purchases"):
        preflight.check_inputs({"clv_customers_path": str(path)})
