import pytest

from utils.pipeline import catalog


def test_the_shipped_catalog_is_consistent():
    catalog.check()
    assert [s.name for s in catalog.STEPS] == ["00_data", "01_eda", "02_cleaning", "03_lead_model", "04_clv_model",
                                                "05_scoring"]
    assert all(s.notebook.is_file() for s in catalog.STEPS)


def test_upstream_steps_are_derived_from_what_a_step_reads():
    assert catalog.upstream("00_data") == ()
    assert catalog.upstream("03_lead_model") == ("00_data", "02_cleaning")  # leads_source: the model's lineage
    assert catalog.upstream("05_scoring") == ("00_data", "02_cleaning", "03_lead_model", "04_clv_model")
    assert catalog.ancestors("03_lead_model") == ("00_data", "02_cleaning")


def test_produces_and_locations(tmp_path):
    assert [d.name for d in catalog.produces("04_clv_model")] == ["clv_model"]
    scored = catalog.dataset("leads_scored")
    assert scored.files(tmp_path) == [tmp_path / "data" / "leads_scored.parquet", tmp_path / "data" / "leads_scored.csv"]
    assert [d.model for d in catalog.GATE_DATASETS] == ["lead_scoring", "clv"]


def test_unknown_names_list_the_known_ones():
    with pytest.raises(catalog.CatalogError, match="no dataset 'leads_cleen'.*leads_clean"):
        catalog.dataset("leads_cleen")
    with pytest.raises(catalog.CatalogError, match="no step '07_x'"):
        catalog.step("07_x")


def test_check_refuses_a_read_of_a_later_step(monkeypatch):
    broken = (catalog.Step("00_data", "x", ("leads_clean",)), *catalog.STEPS[1:])
    monkeypatch.setattr(catalog, "STEPS", broken)
    with pytest.raises(ValueError, match="00_data reads leads_clean, which 02_cleaning produces later"):
        catalog.check()


def test_a_step_is_found_by_name_or_number():
    assert catalog.step("03").name == catalog.step("3").name == catalog.step("03_lead_model").name == "03_lead_model"
    with pytest.raises(catalog.CatalogError):
        catalog.step("9")


def test_check_refuses_a_gate_whose_step_does_not_read_its_source_record(monkeypatch):
    blind = tuple(catalog.Step(s.name, s.purpose, tuple(r for r in s.reads if r != "leads_source"))
                  for s in catalog.STEPS)
    monkeypatch.setattr(catalog, "STEPS", blind)
    monkeypatch.setattr(catalog, "STEP_BY_NAME", {s.name: s for s in blind})
    with pytest.raises(ValueError, match="gate dataset lead_model: its step 03_lead_model must read.*leads_source"):
        catalog.check()
    assert {d.name: d.source for d in catalog.GATE_DATASETS} == {"lead_model": "leads_source", "clv_model": "clv_source"}


def test_the_step_after_a_step_in_run_order():
    names = [s.name for s in catalog.STEPS]
    assert [catalog.following(name) for name in names] == [*catalog.STEPS[1:], None]
    assert catalog.following("03") is catalog.step("04")
