import pytest

from utils.core.contracts import DataContractError
from utils.leads.synth import generate_leads
from utils.pipeline import preflight


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


def test_purchase_lines_that_belong_to_no_purchase_stop_the_run(tmp_path):
    customers, purchases, lines = (tmp_path / f"{name}.csv" for name in ("customers", "purchases", "lines"))
    customers.write_text("customer_id,signup_date,age,gender,country\n1,2021-01-01,30,F,USA\n")
    purchases.write_text("customer_id,order_id,timestamp,amount,n_items\n1,a,2021-01-02 10:00,12.5,2\n")
    lines.write_text("customer_id,order_id,timestamp,product,quantity,unit_price\n1,a,2021-01-02 10:00,P1,2,6.25\n")
    params = {"clv_customers_path": str(customers), "clv_purchases_path": str(purchases),
              "clv_purchase_lines_path": str(lines)}
    assert len(preflight.check_inputs(params)) == 1
    lines.write_text("customer_id,order_id,timestamp,product,quantity,unit_price\n1,b,2021-01-02 10:00,P1,2,6.25\n")
    with pytest.raises(DataContractError, match="lines.csv: column 'order_id': 1 line"):
        preflight.check_inputs(params)
