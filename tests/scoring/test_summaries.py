import numpy as np
import pandas as pd
import pytest

from utils.core.contracts import DataContractError
from utils.scoring import summaries


def test_score_bands_are_left_closed_and_keep_one_in_top_band():
    bands = summaries.score_bands([0.0, 0.19, 0.2, 0.999, 1.0, np.nan])
    assert list(bands.astype(object)[:5]) == ["0-0.2", "0-0.2", "0.2-0.4", "0.8-1", "0.8-1"]
    assert pd.isna(bands[5])
    with pytest.raises(ValueError, match="increase"):
        summaries.score_bands([0.5], edges=(0, 0.5, 0.5, 1))


def test_band_summary_expected_l2ac_is_mean_probability():
    summary = summaries.band_summary([0.1, 0.1, 0.3, 0.9, 0.7])
    row = summary.set_index("band").loc["0-0.2"]
    assert row["leads"] == 2 and row["expected_l2ac"] == pytest.approx(0.1)
    assert summary["leads"].sum() == 5 and summary["share_of_leads"].sum() == pytest.approx(1)
    assert summary.set_index("band").loc["0.8-1", "expected_completions"] == pytest.approx(0.9)


def test_value_deciles_top_is_ten_and_ties_follow_row_order():
    assert list(summaries.value_deciles(np.arange(10.0))) == list(range(1, 11))
    assert list(summaries.value_deciles([5.0, 5.0])) == [5, 10]
    assert summaries.value_deciles([]).size == 0


def test_decile_summary_shares_add_up():
    values = np.r_[np.zeros(90), np.full(10, 100.0)]
    summary = summaries.decile_summary(values)
    assert summary["share_of_value"].sum() == pytest.approx(1)
    assert summary.loc[summary["decile"] == 10, "share_of_value"].item() == pytest.approx(1)
    assert summary["cumulative_share_from_top"].iloc[0] == pytest.approx(1)


def test_group_summary_pools_the_tail_and_counts_missing():
    frame = pd.DataFrame({"country": ["UK", "UK", "DE", "FR", None], "v": [10.0, 10.0, 5.0, 1.0, 2.0]})
    summary = summaries.group_summary(frame, "country", "v", top=2)
    assert list(summary["country"]) == ["UK", "DE", "other (2)"]
    assert summary["customers"].sum() == 5 and summary["total_predicted"].sum() == pytest.approx(28)
    with pytest.raises(DataContractError, match="segment"):
        summaries.group_summary(frame, "segment", "v")


def test_scored_leads_view_keeps_every_row_and_id_and_flags_duplicates():
    rows = {"created_date": pd.Timestamp("2022-02-15 10:31"), "city_mapped": "pune", "first_platform_c": "Level0",
            "first_utm_medium_c": "Level1", "first_utm_source_c": "Level2", "total_leads_droppped": 1.0,
            "referred_lead": 0.0, "chat_clicked": None}
    scored = pd.DataFrame([rows, rows, {**rows, "city_mapped": "ncr"}]).assign(
        lead_id=["a", "b", "c"], p_app_complete=[0.7, 0.7, 0.2], model_name="lead_scoring")
    view = summaries.scored_leads_view(scored, decision_threshold=0.5)
    assert list(view.columns[:5]) == ["lead_id", "p_app_complete", "score_band", "above_threshold", "duplicate"]
    assert view["lead_id"].tolist() == ["a", "b", "c"]
    assert view["duplicate"].tolist() == [False, True, False]  # scored twice, flagged once, never merged
    assert view["above_threshold"].tolist() == [True, True, False] and view["score_band"].tolist()[2] == "0.2-0.4"
    assert "chat_clicked" not in view and view["model_name"].iloc[0] == "lead_scoring"
    with pytest.raises(DataContractError, match="lead_id"):
        summaries.scored_leads_view(scored.drop(columns="lead_id"))
