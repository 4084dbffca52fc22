"""The book of a run: every page written, every local link and image resolves, offline, and in a browser."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from tests.browser import check_pages
from utils.pipeline import book, catalog

# A 1x1 PNG.
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def fake_run(root: Path) -> Path:
    """A small run folder: two executed notebooks with markdown, code and outputs, figures, metrics, a manifest."""
    run = root / "runs" / "r1"
    (run / "notebooks").mkdir(parents=True)
    (run / "figures").mkdir()
    (run / "metrics").mkdir()
    (run / "figures" / "lead_gains.png").write_bytes(PIXEL)
    (run / "dashboard.html").write_text("<html><body>dashboard</body></html>")
    image = base64.b64encode(PIXEL).decode()
    for step in ("00_data", "03_lead_model"):
        cells = [
            {"cell_type": "markdown", "metadata": {}, "source": f"# {step[:2]} · Title of {step}\n\nIts **purpose**.\n"},
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": 1, "outputs": [],
             "source": "n: int = 3  # rows"},
            {"cell_type": "markdown", "metadata": {}, "source": "## A section\n\nText <b>bold</b>.\n\n## A section"},
            {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "print(1 < 2)", "outputs": [
                {"output_type": "stream", "name": "stdout", "text": "True\n"},
                {"output_type": "display_data", "metadata": {}, "data": {"image/png": image, "text/plain": "<Figure>"}},
                {"output_type": "execute_result", "metadata": {}, "execution_count": 2,
                 "data": {"text/html": "<table><tr><td>1</td></tr></table>", "text/plain": "x"}},
            ]},
        ]
        (run / "notebooks" / f"{step}.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}}))
    (run / "metrics" / "03_lead_model.json").write_text(json.dumps({"lead.auc_test": 0.81}))
    manifest = {"run_id": "r1", "status": "succeeded", "profile": "smoke", "git": {"commit": "abc", "dirty": False},
                "parameters": {"00_data": {"n_leads": 10}}, "packages": {"pandas": "2.1.4"},
                "steps": {"00_data": {"status": "executed", "seconds": 3.0, "outputs": {}},
                          "03_lead_model": {"status": "reused", "reused_from": "r0",
                                            "outputs": {"figures/lead_gains.png": "h"}}},
                "outputs": {"figures/lead_gains.png": "h" * 64}, "promotions": [], "aliases": {"lead_scoring": "1"}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def local_targets(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return [t for t in re.findall(r'(?:href|src)="([^"#]+)', text) if not t.startswith(("data:", "http"))]


def test_every_page_is_written_and_every_local_link_resolves(tmp_path):
    run = fake_run(tmp_path)
    index = book.build_book(run)
    pages = sorted((run / "book").glob("*.html"))
    assert {p.name for p in pages} == {"index.html", "00_data.html", "03_lead_model.html", "figures.html",
                                       "manifest.html", "teaching.html"}
    for page in pages:
        for target in local_targets(page):
            assert (page.parent / target).resolve().exists(), f"{page.name} links to missing {target}"
        remote = re.findall(r"""(?:src|href)="https?://[^"]*"|url\(["']?https?://""", page.read_text())
        assert not remote, f"{page.name} fetches from the network: {remote[:3]}"
    text = index.read_text()
    assert "Title of 03_lead_model" in text and "reused from r0" in text and "lead.auc_test" in text
    assert "<svg" in text and all(s.name in text for s in catalog.STEPS)


def test_a_notebook_page_has_contents_folded_code_and_its_outputs(tmp_path):
    run = fake_run(tmp_path)
    book.build_book(run)
    page = (run / "book" / "03_lead_model.html").read_text()
    anchors = re.findall(r'<a class="h\d" href="#([^"]+)"', page)
    assert anchors[:3] == ["03-title-of-03-lead-model", "a-section", "a-section-1"], "unique anchors, in order"
    assert all(f'id="{a}"' in page for a in anchors)
    assert "<details" in page and "print(1 &lt; 2)" in page, "code is escaped and foldable"
    assert '<img alt="figure" src="data:image/png;base64,' in page and "<td>1</td>" in page and "True" in page


def test_notebook_intro_reads_title_and_first_paragraph():
    notebook = {"cells": [{"cell_type": "markdown", "source": ["# 05 · Scoring\n", "\n", "One\nparagraph.\n\nNext."]}]}
    assert book.notebook_intro(notebook) == ("05 · Scoring", "One paragraph.")
    assert book.notebook_intro({"cells": []}) == ("", "")


def test_the_command_builds_the_latest_run_or_says_there_is_none(tmp_path, monkeypatch, capsys):
    run = fake_run(tmp_path)
    assert book.main([str(run)]) == 0 and (run / "book" / "index.html").exists()
    assert book.main([str(tmp_path / "nothing")]) == 2 and "no run at" in capsys.readouterr().err


@pytest.mark.browser
def test_the_book_opens_in_a_browser_with_every_image_loaded_and_no_console_error(tmp_path):
    run = fake_run(tmp_path)
    book.build_book(run)
    for name, seen in check_pages(sorted((run / "book").glob("*.html")), tmp_path / "profile").items():
        assert all(seen["images"]), f"{name}: an image did not load"
        assert seen["errors"] == [], f"{name}: {seen['errors']}"


def test_the_front_page_says_what_happened_to_each_champion_and_which_version_scored(tmp_path):
    run = fake_run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["models"] = {"lead_scoring": {
        "outcome": "champion stays version 3: 03_lead_model was reused from run r0; its gate decision is history",
        "scores_from": "as decided in run r0: serving lead_scoring v1, this run's candidate"}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    front = book.build_book(run).read_text(encoding="utf-8")
    assert "lead_scoring: champion stays version 3: 03_lead_model was reused from run r0" in front
    assert "as decided in run r0: serving lead_scoring v1, this run&#x27;s candidate" in front
