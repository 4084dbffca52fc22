"""The offline HTML dashboard: self-contained, complete, escaped, reproducible."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from utils.core import drift as drift_reference
from utils.core.contracts import DataContractError
from utils.scoring import dashboard, monitoring


def leads_frame(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "lead_id": np.arange(1000, 1000 + n),
            "created_date": pd.date_range("2022-01-01", periods=n, freq="h"),
            "first_platform_c": rng.choice(["Level0", "others"], n),
            "total_leads_droppped": rng.integers(1, 4, n).astype(float),
            "p_app_complete": np.linspace(0.0, 1.0, n),
            "model_name": "lead_scoring",
            "model_version": "4",
            "model_run_id": "run-lead",
        }
    )


def customers_frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "country": rng.choice(["United Kingdom", "EIRE"], n),
            "predicted_clv": rng.gamma(2.0, 50.0, n),
        }
    )


PROVENANCE = {
    "tables": {
        "leads_scored": {
            "model_name": "lead_scoring",
            "model_version": "4",
            "model_run_id": "run-lead",
            "rows": 120,
            "input": {"file": "leads_new.parquet", "sha256": "ab" * 32},
        },
        "customers_scored": {"model_name": "clv", "model_version": "2", "model_run_id": "run-clv", "rows": 50},
    }
}


def build(**kwargs) -> str:
    return dashboard.build_dashboard(leads_frame(), customers_frame(), PROVENANCE, **kwargs)


def embedded_table(page: str) -> dict:
    raw = re.search(r'<script type="application/json" id="top-leads-data">(.*?)</script>', page, re.DOTALL).group(1)
    return json.loads(raw)


def test_page_is_self_contained_with_plotly_embedded_once():
    page = build()
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=", page)
    assert "cdn.plot.ly/plotly" not in page.split("</head>")[1]  # no chart fetches the library
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()[:200]) == 1


def test_page_has_every_chart_and_section():
    page = build(group_columns=("country", "segment"))
    for div in ("score-distribution", "score-bands", "clv-deciles", "clv-by-country"):
        assert f'id="{div}"' in page
    assert 'id="clv-by-segment"' not in page  # groups the table lacks are left out, not invented
    assert 'id="drift"' not in page and "Drift per feature" not in page
    for text in ("leads scored", "junk leads", "expected L2AC", "Models and data", "run-clv", "abababababababab"):
        assert text in page


def test_kpis_follow_the_thresholds():
    page = build(junk_threshold=0.25, decision_threshold=0.5)
    scores = leads_frame()["p_app_complete"]
    assert f'{(scores < 0.25).mean():.1%}</div><div class="l">junk leads (score &lt; 0.25)' in page
    assert f'{(scores >= 0.5).mean():.1%}</div><div class="l">share at or above threshold 0.5' in page


def test_top_leads_table_holds_the_best_n_sorted():
    table = embedded_table(build(top_n=15))
    assert len(table["rows"]) == 15
    scores = [row[table["sortIndex"]] for row in table["rows"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(1.0)
    assert "model_run_id" not in table["columns"] and table["columns"][:2] == ["lead_id", "p_app_complete"]
    assert table["rows"][0][0] == 1119 and not table["numeric"][0]  # the id of the best lead, not a number to format


def test_dates_in_the_top_leads_table_read_as_dates():
    table = embedded_table(build(top_n=3))
    column = table["columns"].index("created_date")
    assert table["rows"][0][column] == "2022-01-05 23:00"


def test_leads_only_leaves_the_lifetime_value_out():
    page = dashboard.build_dashboard(leads_frame(), None, PROVENANCE)
    assert 'id="score-distribution"' in page and 'id="clv-deciles"' not in page and "customers scored" not in page


def test_text_from_the_data_cannot_break_out_of_the_page():
    leads = leads_frame().assign(first_platform_c="</script><script>alert(1)</script>")
    page = dashboard.build_dashboard(leads, customers_frame().assign(country="<b>x</b>"), PROVENANCE)
    body = page.split("</head>")[1]
    assert "<script>alert(1)" not in body and "<b>x</b>" not in body
    assert embedded_table(page)["rows"][0][3] == "</script><script>alert(1)</script>"  # the data itself is intact


def drift_tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    reference = drift_reference.build_reference(frame.iloc[:60])
    levels = monitoring.drift_thresholds(reference, 60, draws=500)
    return {"leads": monitoring.drift_table(reference, frame.iloc[60:], levels)}


def test_drift_section_and_banner_when_given():
    frame = leads_frame()[["first_platform_c", "total_leads_droppped"]]
    page = build(drift=drift_tables(frame))
    assert 'id="drift"' in page and "Drift per feature" in page and "total_leads_droppped" in page
    assert "fail above" in page and "Drift FAILURE" not in page
    shifted = frame.assign(first_platform_c=["Level0"] * 60 + ["LevelNew"] * 60)
    page = build(drift=drift_tables(shifted), drift_note="scores held")
    assert "Drift FAILURE" in page and "scores held" in page


def test_same_inputs_give_the_same_page(tmp_path):
    first = build(data_hashes={"leads_raw.parquet": {"sha256": "cd" * 32, "rows": 10, "source": "synthetic"}})
    assert first == build(data_hashes={"leads_raw.parquet": {"sha256": "cd" * 32, "rows": 10, "source": "synthetic"}})
    assert "cdcdcdcdcdcdcdcd" in first


def test_missing_score_column_is_a_contract_error():
    with pytest.raises(DataContractError, match="p_app_complete"):
        dashboard.build_dashboard(leads_frame().drop(columns="p_app_complete"), customers_frame(), PROVENANCE)
    with pytest.raises(DataContractError, match="predicted_clv"):
        dashboard.build_dashboard(leads_frame(), customers_frame().drop(columns="predicted_clv"), PROVENANCE)


def test_provenance_and_hash_tables():
    models = dashboard.provenance_table(PROVENANCE)
    assert list(models["version"]) == ["2", "4"] and models.loc[1, "input sha256"] == "ab" * 8
    hashes = dashboard.data_hash_table({"a.parquet": {"sha256": "ef" * 32, "rows": 3, "source": "synthetic"}})
    assert hashes.to_dict("records") == [{"file": "a.parquet", "rows": 3, "source": "synthetic", "sha256": "ef" * 8}]


def test_customer_segments_come_from_the_customer_table():
    scored = pd.DataFrame({"customer_id": [1, 2, 3], "predicted_clv": [1.0, 2.0, 3.0]})
    source = pd.DataFrame(
        {"customer_id": [1, 2, 3], "country": ["EIRE", "USA", None], "gender": ["f", "m", "f"], "age": [22, 40, None]}
    )
    out = dashboard.customer_segments(scored, source)
    assert list(out["country"][:2]) == ["EIRE", "USA"] and list(out["age_band"][:2]) == ["0-24", "35-44"]
    assert pd.isna(out["age_band"].iloc[2]) and list(out["predicted_clv"]) == [1.0, 2.0, 3.0]
    assert dashboard.customer_segments(scored, None).columns.tolist() == ["customer_id", "predicted_clv"]


def test_drift_chart_shows_the_worst_features_at_a_readable_height():
    table = pd.DataFrame(
        {
            "feature": [f"f{i}" for i in range(30)],
            "kind": "numeric",
            "psi": np.linspace(0, 0.3, 30),
            "unseen_share": 0.0,
            "warn_at": 0.1,
            "fail_at": 0.25,
            "status": "ok",
        }
    )
    fig = dashboard.drift_figure({"leads": table}, top=20)
    assert len(fig.data[0].y) == 20 and "leads.f29" in list(fig.data[0].y) and "leads.f0" not in list(fig.data[0].y)
    assert list(fig.data[1].x) == [0.25] * 20  # each feature's fail level beside its bar
    assert 'id="drift"' in dashboard._figure_html(fig, "drift") and fig.layout.height > 380
