"""What the pre-flight knows before any notebook starts: files, and what the steps will make of them."""
import pandas as pd
import pytest

from tests.helpers import assert_contract_error
from utils.clv.synth import generate_clv
from utils.core.contracts import DataContractError
from utils.leads.synth import generate_leads
from utils.pipeline import preflight
from utils.pipeline.params import ParameterError

# The defaults of the notebooks that the checks read.
STEPS = {"train_share": 0.8, "cv_folds": 5, "compare_folds": 3, "min_holdout_leads": 200, "test_share": 0.3,
         "tuning_folds": 3, "min_holdout_customers": 100, "feature_window_days": 7, "horizon_days": 180,
         "n_leads": 20_000}


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate_leads(2_000, random_seed=3)


@pytest.fixture(scope="module")
def shop() -> dict[str, pd.DataFrame]:
    return generate_clv(800, random_seed=3)


def test_no_user_files_means_nothing_to_check():
    assert preflight.check_inputs({"leads_path": "", "transactions_path": ""}) == []


def test_a_good_leads_file_gives_its_report(tmp_path, leads):
    path = tmp_path / "leads.csv"
    leads.to_csv(path)
    (report,) = preflight.check_inputs({**STEPS, "leads_path": str(path)})
    assert report.rows == len(leads) and str(path) in report.file


def test_missing_purchases_with_customers_is_an_error(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,signup_date,age,gender,country\n1,2021-01-01,30,F,USA\n")
    with pytest.raises(DataContractError, match="purchases"):
        preflight.check_inputs({"clv_customers_path": str(path)})


def test_a_tiny_leads_file_is_refused_for_its_holdout(leads):
    with pytest.raises(ParameterError, match="holds 7 leads, fewer than min_holdout_leads=200"):
        preflight.check_lead_training(leads.head(40), STEPS, "leads.csv")
    preflight.check_lead_training(leads.head(40), {**STEPS, "min_holdout_leads": 5, "cv_folds": 2,
                                                   "compare_folds": 2}, "leads.csv")


def test_synthetic_leads_holdout_is_known_from_the_parameters():
    with pytest.raises(ParameterError, match="n_leads=300 with train_share=0.8 leaves a time holdout of 60 synthetic "
                                             "leads, fewer than min_holdout_leads=200.*raise n_leads"):
        preflight.check_synthetic_lead_holdout({**STEPS, "n_leads": 300})
    preflight.check_synthetic_lead_holdout({**STEPS, "n_leads": 1_000})


def test_a_holdout_of_one_class_is_refused(leads):
    ordered = leads.sort_values("created_date", kind="stable").reset_index(drop=True)
    late = ordered.index >= int(len(ordered) * 0.7)
    one_class_late = ordered.assign(app_complete_flag=ordered["app_complete_flag"].where(~late, 0))
    error = assert_contract_error("app_complete_flag", preflight.check_lead_training, one_class_late, STEPS, "l.csv")
    assert "time holdout" in str(error) and "only class 0" in str(error)


def test_too_few_of_the_rarer_class_for_the_folds_is_refused(leads):
    rare = leads.sort_values("created_date", kind="stable").reset_index(drop=True).assign(app_complete_flag=0)
    rare.loc[rare.index[:3], "app_complete_flag"] = 1
    rare.loc[int(len(rare) * 0.85), "app_complete_flag"] = 1  # the time holdout keeps both classes
    error = assert_contract_error("app_complete_flag", preflight.check_lead_training, rare,
                                  {**STEPS, "min_holdout_leads": 1}, "l.csv")
    assert "fewer than cv_folds=5" in str(error)


def test_customers_without_a_full_horizon_are_refused_naming_horizon_days(shop):
    with pytest.raises(ParameterError, match="no customer has a full horizon.*lower horizon_days \\(at most"):
        preflight.check_clv_training(shop, {**STEPS, "horizon_days": 3000}, "shop.parquet")
    preflight.check_clv_training(shop, STEPS, "shop.parquet")


def test_customers_who_never_spend_in_their_horizon_are_refused(shop):
    purchases = shop["purchases"].copy()
    first = purchases.groupby("customer_id")["timestamp"].transform("min")
    only_first_week = purchases[purchases["timestamp"] < first + pd.Timedelta(days=7)]
    customers = shop["customers"].assign(signup_date=pd.NaT)  # the reference date is the first purchase
    with pytest.raises(DataContractError, match="0 spent anything in their horizon"):
        preflight.check_clv_training({**shop, "customers": customers, "purchases": only_first_week}, STEPS, "shop")


def test_a_small_customer_test_part_is_refused(shop):
    with pytest.raises(ParameterError, match="fewer than min_holdout_customers=1,000"):
        preflight.check_clv_training(shop, {**STEPS, "min_holdout_customers": 1000}, "shop.parquet")


def test_without_the_min_holdout_parameters_only_the_structure_is_checked(leads):
    relaxed = {k: v for k, v in STEPS.items() if k != "min_holdout_leads"}
    preflight.check_lead_training(leads.head(300), relaxed, "leads.csv")
def test_purchase_lines_that_belong_to_no_purchase_stop_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "check_clv_training", lambda *args: None)  # one customer: files only
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


def test_a_run_check_merges_every_steps_parameters_and_prints_what_was_counted(tmp_path, capsys):
    path = tmp_path / "leads.csv"
    generate_leads(2_000, random_seed=3).to_csv(path)
    preflight.check_run({"00_data": {"leads_path": str(path)}, "03_lead_model": {"min_holdout_leads": 100}})
    assert f"input check: {path}: 2,000 rows" in capsys.readouterr().out
    with pytest.raises(ParameterError, match="min_holdout_leads=1,000"):  # 03's parameter reached the check
        preflight.check_run({"00_data": {"leads_path": str(path)}, "03_lead_model": {"min_holdout_leads": 1000}})
